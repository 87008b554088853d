//! Show-Attend-and-Tell style attention figures (Xu et al., 2015).
//!
//! The figure shows the photo the network saw, then one tile per generated
//! word with that word's attention map laid over the photo, so a reader can
//! check where the model looked when it chose each word.

use std::fmt;
use std::io;
use std::path::Path;

use font8x8::legacy::BASIC_LEGACY;
use image::{ImageFormat, Rgb, RgbImage};

/// Most tiles per row: keeps a long caption readable without a very wide figure.
const MAX_COLUMNS: u32 = 5;
/// White space around and between tiles, in pixels.
const MARGIN: u32 = 8;
/// Each font pixel becomes a square this wide: 8 px text is too small beside a 224 px tile.
const GLYPH_SCALE: u32 = 2;
/// Width and height of one drawn character.
const GLYPH_SIZE: u32 = 8 * GLYPH_SCALE;
/// Space above and below the text in a label strip.
const LABEL_PAD: u32 = 4;
/// Height of the white strip under each tile that holds its word.
const LABEL_HEIGHT: u32 = GLYPH_SIZE + 2 * LABEL_PAD;
/// Brightness kept where attention is zero: dark enough that the attended
/// region stands out, light enough that the rest of the scene stays legible.
pub const DIM: f32 = 0.25;
/// Warm tint added in proportion to attention, so the focus still reads on a pale photo.
const TINT: [f32; 3] = [56.0, 28.0, 0.0];
/// Label of the first, plain tile.
const PHOTO_LABEL: &str = "image";
const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);

/// One generated word and where the model looked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttendedWord {
    pub word: String,
    /// Row-major `grid_h * grid_w` weights (sum ~1).
    pub weights: Vec<f32>,
}

/// Why a figure could not be rendered or saved.
#[derive(Debug)]
pub enum AttentionMapError {
    /// A grid side is zero, so there is no map to upsample.
    EmptyGrid { grid: (usize, usize) },
    /// The photo has no pixels, so there is nothing to overlay.
    EmptyPhoto { width: u32, height: u32 },
    /// A word's map does not match the grid; usually the wrong layer or a transposed grid.
    WeightCount {
        word: String,
        grid: (usize, usize),
        actual: usize,
    },
    /// The PNG encoder rejected the figure.
    Encode(image::ImageError),
    /// Writing the file failed.
    Write(contracts::ContractError),
}

impl fmt::Display for AttentionMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyGrid { grid: (h, w) } => {
                write!(
                    f,
                    "attention grid {h}x{w} is empty: both sides must be at least 1"
                )
            }
            Self::EmptyPhoto { width, height } => {
                write!(f, "photo is empty ({width}x{height} pixels)")
            }
            Self::WeightCount {
                word,
                grid: (h, w),
                actual,
            } => write!(
                f,
                "word \"{word}\" has {actual} attention weights but the {h}x{w} grid needs {}",
                h * w
            ),
            Self::Encode(source) => write!(f, "cannot encode attention figure as PNG: {source}"),
            Self::Write(source) => write!(f, "cannot write attention figure {source}"),
        }
    }
}

impl std::error::Error for AttentionMapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Encode(source) => Some(source),
            // A write error's message already carries the OS reason.
            _ => None,
        }
    }
}

/// The figure: the plain photo, then one tile per word with its attention
/// map (`grid` is `(grid_h, grid_w)`) upsampled bilinearly to the photo size
/// and overlaid, each tile labelled underneath; at most five tiles a row.
pub fn render(
    photo: &RgbImage,
    grid: (usize, usize),
    words: &[AttendedWord],
) -> Result<RgbImage, AttentionMapError> {
    validate(photo, grid, words)?;
    let (tile_w, tile_h) = photo.dimensions();
    let (width, height) = figure_size(tile_w, tile_h, words.len() + 1);
    let mut figure = RgbImage::from_pixel(width, height, WHITE);
    place_tile(&mut figure, 0, photo, PHOTO_LABEL);
    for (index, word) in words.iter().enumerate() {
        let alpha = upsample(&normalised(&word.weights), grid, tile_w, tile_h);
        place_tile(&mut figure, index + 1, &overlay(photo, &alpha), &word.word);
    }
    Ok(figure)
}

/// Writes `figure` as a PNG, whole or not at all ([`contracts::atomic`]).
pub fn save_png(figure: &RgbImage, path: &Path) -> Result<(), AttentionMapError> {
    let mut png = Vec::new();
    figure
        .write_to(&mut io::Cursor::new(&mut png), ImageFormat::Png)
        .map_err(AttentionMapError::Encode)?;
    contracts::atomic::write_atomically(path, &png).map_err(AttentionMapError::Write)
}

/// Checks everything up front so a bad word fails before any drawing.
fn validate(
    photo: &RgbImage,
    grid: (usize, usize),
    words: &[AttendedWord],
) -> Result<(), AttentionMapError> {
    if grid.0 == 0 || grid.1 == 0 {
        return Err(AttentionMapError::EmptyGrid { grid });
    }
    let (width, height) = photo.dimensions();
    if width == 0 || height == 0 {
        return Err(AttentionMapError::EmptyPhoto { width, height });
    }
    match words.iter().find(|w| w.weights.len() != grid.0 * grid.1) {
        Some(bad) => Err(AttentionMapError::WeightCount {
            word: bad.word.clone(),
            grid,
            actual: bad.weights.len(),
        }),
        None => Ok(()),
    }
}

/// Figure size for `tiles` tiles of `tile_w x tile_h`, each with its label strip.
fn figure_size(tile_w: u32, tile_h: u32, tiles: usize) -> (u32, u32) {
    let tiles = tiles as u32;
    let columns = tiles.min(MAX_COLUMNS);
    let rows = tiles.div_ceil(MAX_COLUMNS);
    (
        MARGIN + columns * (tile_w + MARGIN),
        MARGIN + rows * (tile_h + LABEL_HEIGHT + MARGIN),
    )
}

/// Top-left corner of tile `index`, filling rows left to right.
fn tile_origin(index: usize, tile_w: u32, tile_h: u32) -> (u32, u32) {
    let (column, row) = (index as u32 % MAX_COLUMNS, index as u32 / MAX_COLUMNS);
    (
        MARGIN + column * (tile_w + MARGIN),
        MARGIN + row * (tile_h + LABEL_HEIGHT + MARGIN),
    )
}

fn place_tile(figure: &mut RgbImage, index: usize, tile: &RgbImage, label: &str) {
    let (x, y) = tile_origin(index, tile.width(), tile.height());
    image::imageops::replace(figure, tile, x.into(), y.into());
    draw_label(
        figure,
        label,
        x,
        y + tile.height() + LABEL_PAD,
        tile.width(),
    );
}

/// Scales a map so its peak is 1: soft-attention weights over 49 or 196 cells
/// are all small and would otherwise leave every tile nearly black.
/// Negative and NaN weights count as no attention; an all-zero map dims the whole tile.
fn normalised(weights: &[f32]) -> Vec<f32> {
    let peak = weights
        .iter()
        .copied()
        .filter(|w| w.is_finite())
        .fold(0.0, f32::max);
    weights
        .iter()
        .map(|&w| {
            let scaled = w / peak;
            if peak > 0.0 && !scaled.is_nan() {
                scaled.clamp(0.0, 1.0)
            } else {
                0.0
            }
        })
        .collect()
}

/// Where one output pixel falls between two cell centres along one axis.
#[derive(Debug, Clone, Copy)]
struct AxisSample {
    lo: usize,
    hi: usize,
    t: f32,
}

/// Samples for `pixels` output positions over `cells` cells, treating each
/// weight as sitting at its cell's centre so the map is not shifted half a
/// cell; pixels beyond the outer centres take the edge value.
fn axis_samples(cells: usize, pixels: u32) -> Vec<AxisSample> {
    let scale = cells as f32 / pixels as f32;
    let last = (cells - 1) as f32;
    (0..pixels)
        .map(|p| {
            let pos = ((p as f32 + 0.5) * scale - 0.5).clamp(0.0, last);
            let lo = pos.floor() as usize;
            AxisSample {
                lo,
                hi: (lo + 1).min(cells - 1),
                t: pos - lo as f32,
            }
        })
        .collect()
}

/// Bilinear upsampling of a row-major `(grid_h, grid_w)` map to `width x height`, row-major.
fn upsample(map: &[f32], (grid_h, grid_w): (usize, usize), width: u32, height: u32) -> Vec<f32> {
    let xs = axis_samples(grid_w, width);
    let ys = axis_samples(grid_h, height);
    let at = |row: usize, col: usize| map[row * grid_w + col];
    ys.iter()
        .flat_map(|y| {
            xs.iter().map(move |x| {
                let top = lerp(at(y.lo, x.lo), at(y.lo, x.hi), x.t);
                let bottom = lerp(at(y.hi, x.lo), at(y.hi, x.hi), x.t);
                lerp(top, bottom, y.t)
            })
        })
        .collect()
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

/// The photo dimmed where attention `alpha` (one value in [0, 1] per pixel,
/// row-major) is low and warmed where it is high.
fn overlay(photo: &RgbImage, alpha: &[f32]) -> RgbImage {
    let mut tile = photo.clone();
    for (pixel, &a) in tile.pixels_mut().zip(alpha) {
        let gain = DIM + (1.0 - DIM) * a;
        for (channel, tint) in pixel.0.iter_mut().zip(TINT) {
            *channel = (f32::from(*channel) * gain + tint * a).round().min(255.0) as u8;
        }
    }
    tile
}

/// Writes `text` centred in a `width`-wide strip whose text line starts at
/// `y`, cut to fit so a long word never runs into the next tile.
fn draw_label(figure: &mut RgbImage, text: &str, x: u32, y: u32, width: u32) {
    let label = fit_label(text, (width / GLYPH_SIZE) as usize);
    let text_width = label.chars().count() as u32 * GLYPH_SIZE;
    let left = x + (width - text_width) / 2;
    for (i, ch) in label.chars().enumerate() {
        draw_glyph(figure, ch, left + i as u32 * GLYPH_SIZE, y);
    }
}

/// Keeps at most `max_chars` characters, ending a cut word with '.' so a
/// reader can tell it was longer.
fn fit_label(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    text.chars()
        .take(max_chars.saturating_sub(1))
        .chain(std::iter::once('.'))
        .take(max_chars)
        .collect()
}

/// Draws one character scaled by `GLYPH_SCALE`; characters outside ASCII,
/// which the basic font lacks, show as '?'.
fn draw_glyph(figure: &mut RgbImage, ch: char, x: u32, y: u32) {
    let rows = BASIC_LEGACY
        .get(ch as usize)
        .unwrap_or(&BASIC_LEGACY[usize::from(b'?')]);
    for (dy, bits) in (0..).zip(rows) {
        // font8x8 stores the leftmost pixel of a row in the lowest bit.
        for dx in (0..8).filter(|dx| (bits >> dx) & 1 == 1) {
            fill_square(figure, x + dx * GLYPH_SCALE, y + dy * GLYPH_SCALE);
        }
    }
}

fn fill_square(figure: &mut RgbImage, x: u32, y: u32) {
    for py in y..y + GLYPH_SCALE {
        for px in x..x + GLYPH_SCALE {
            figure.put_pixel(px, py, BLACK);
        }
    }
}

/// A sibling name for the temporary file, so the final rename stays on one
/// filesystem and is atomic; the process id keeps concurrent writers apart.
#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    const PHOTO: u32 = 224;
    const GRID: (usize, usize) = (7, 7);

    fn grey_photo() -> RgbImage {
        RgbImage::from_pixel(PHOTO, PHOTO, Rgb([128, 128, 128]))
    }

    /// A map with all its weight on one cell of the 7x7 grid.
    fn peaked(word: &str, row: usize, col: usize) -> AttendedWord {
        let mut weights = vec![0.0; GRID.0 * GRID.1];
        weights[row * GRID.1 + col] = 1.0;
        AttendedWord {
            word: word.to_owned(),
            weights,
        }
    }

    fn words(n: usize) -> Vec<AttendedWord> {
        (0..n)
            .map(|i| peaked("w", i % GRID.0, i % GRID.1))
            .collect()
    }

    fn figure_dims(n_words: usize) -> (u32, u32) {
        render(&grey_photo(), GRID, &words(n_words))
            .unwrap()
            .dimensions()
    }

    /// Mean of all channels over a `size`-square region.
    fn mean_brightness(img: &RgbImage, x: u32, y: u32, size: u32) -> f32 {
        let sum: u32 = (y..y + size)
            .flat_map(|py| (x..x + size).map(move |px| (px, py)))
            .flat_map(|(px, py)| img.get_pixel(px, py).0)
            .map(u32::from)
            .sum();
        sum as f32 / (size * size * 3) as f32
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("attention_map_{name}_{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn figure_size_without_words_is_one_photo_tile() {
        let expected = (
            MARGIN + PHOTO + MARGIN,
            MARGIN + PHOTO + LABEL_HEIGHT + MARGIN,
        );
        assert_eq!(expected, (240, 264));
        assert_eq!(figure_dims(0), expected);
    }

    #[test]
    fn figure_size_with_one_word_is_two_tiles_wide() {
        let expected = (
            MARGIN + 2 * (PHOTO + MARGIN),
            MARGIN + PHOTO + LABEL_HEIGHT + MARGIN,
        );
        assert_eq!(expected, (472, 264));
        assert_eq!(figure_dims(1), expected);
    }

    #[test]
    fn figure_size_with_five_words_wraps_the_sixth_tile() {
        let expected = (
            MARGIN + MAX_COLUMNS * (PHOTO + MARGIN),
            MARGIN + 2 * (PHOTO + LABEL_HEIGHT + MARGIN),
        );
        assert_eq!(expected, (1168, 520));
        assert_eq!(figure_dims(5), expected);
    }

    #[test]
    fn figure_size_with_six_words_stays_two_rows() {
        assert_eq!(figure_dims(6), figure_dims(5));
    }

    #[test]
    fn top_left_peak_brightens_top_left_of_its_tile() {
        let figure = render(&grey_photo(), GRID, &[peaked("sky", 0, 0)]).unwrap();
        let (x, y) = tile_origin(1, PHOTO, PHOTO);
        let cell = PHOTO / GRID.1 as u32;
        let top_left = mean_brightness(&figure, x, y, cell);
        let bottom_right = mean_brightness(&figure, x + PHOTO - cell, y + PHOTO - cell, cell);
        assert!(
            top_left > bottom_right + 20.0,
            "top-left {top_left} vs bottom-right {bottom_right}"
        );
        // Far from the peak the photo is dimmed to DIM, not blacked out.
        let corner = figure.get_pixel(x + PHOTO - 1, y + PHOTO - 1).0[0];
        assert_eq!(corner, (128.0 * DIM) as u8);
    }

    /// A peak off the diagonal (row 1, column 5) shows in that cell of its tile, and no other
    /// cell is as bright: a transposed or mirrored map would light row 5, column 1.
    #[test]
    fn the_brightest_cell_of_a_tile_is_where_the_weights_peak() {
        let figure = render(&grey_photo(), GRID, &[peaked("kite", 1, 5)]).unwrap();
        let (x, y) = tile_origin(1, PHOTO, PHOTO);
        let cell = PHOTO / GRID.1 as u32;
        let brightness: Vec<f32> = (0..GRID.0 * GRID.1)
            .map(|k| {
                let (row, col) = ((k / GRID.1) as u32, (k % GRID.1) as u32);
                mean_brightness(&figure, x + col * cell, y + row * cell, cell)
            })
            .collect();
        let brightest = (0..brightness.len())
            .max_by(|&i, &j| brightness[i].total_cmp(&brightness[j]))
            .unwrap();
        assert_eq!(
            (brightest / GRID.1, brightest % GRID.1),
            (1, 5),
            "{brightness:?}"
        );
    }

    #[test]
    fn label_strips_have_dark_pixels() {
        let figure = render(&grey_photo(), GRID, &[peaked("dog", 3, 3)]).unwrap();
        for index in 0..2 {
            let (x, y) = tile_origin(index, PHOTO, PHOTO);
            let strip_top = y + PHOTO;
            let dark = (strip_top..strip_top + LABEL_HEIGHT)
                .flat_map(|py| (x..x + PHOTO).map(move |px| (px, py)))
                .filter(|&(px, py)| figure.get_pixel(px, py).0 == BLACK.0)
                .count();
            assert!(dark > 20, "tile {index} label has {dark} dark pixels");
        }
    }

    #[test]
    fn long_label_is_cut_to_tile_width() {
        let max = (PHOTO / GLYPH_SIZE) as usize;
        assert_eq!(max, 14);
        assert_eq!(fit_label("refrigerators!", max), "refrigerators!");
        assert_eq!(fit_label("refrigerator-freezer", max), "refrigerator-.");
        assert_eq!(fit_label("dog", 0), "");
    }

    #[test]
    fn upsample_interpolates_between_cell_centres() {
        assert_eq!(upsample(&[0.0, 1.0], (1, 2), 4, 1), [0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn normalised_scales_peak_to_one_and_drops_bad_weights() {
        assert_eq!(
            normalised(&[0.1, 0.2, -0.5, f32::NAN]),
            [0.5, 1.0, 0.0, 0.0]
        );
        assert_eq!(normalised(&[0.0, 0.0]), [0.0, 0.0]);
    }

    #[test]
    fn wrong_weight_count_names_word_and_sizes() {
        let bad = AttendedWord {
            word: "frisbee".to_owned(),
            weights: vec![0.5; 48],
        };
        let err = render(&grey_photo(), GRID, &[peaked("a", 0, 0), bad]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "word \"frisbee\" has 48 attention weights but the 7x7 grid needs 49"
        );
    }

    #[test]
    fn empty_grid_is_an_error() {
        let err = render(&grey_photo(), (0, 7), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "attention grid 0x7 is empty: both sides must be at least 1"
        );
    }

    #[test]
    fn empty_photo_is_an_error() {
        let err = render(&RgbImage::new(0, 224), GRID, &[]).unwrap_err();
        assert_eq!(err.to_string(), "photo is empty (0x224 pixels)");
    }

    #[test]
    fn save_png_round_trips_and_leaves_no_temp_file() {
        let dir = scratch_dir("save");
        let path = dir.join("figure.png");
        let figure = render(&grey_photo(), GRID, &words(6)).unwrap();
        save_png(&figure, &path).unwrap();
        let loaded = image::open(&path).unwrap();
        assert_eq!((loaded.width(), loaded.height()), figure.dimensions());
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["figure.png"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn save_png_below_a_file_names_the_path() {
        let dir = scratch_dir("below-file");
        fs::write(dir.join("photo"), b"").unwrap();
        let path = dir.join("photo/figure.png");
        let err = save_png(&RgbImage::new(4, 4), &path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot write attention figure {}: File exists (os error 17)",
                path.display()
            )
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
