//! Image decoding and torchvision's ImageNet preprocessing, for the ResNet featurizer.
//!
//! [`load_image`] decodes a file (JPEG, baseline or progressive; PNG; anything else the `image`
//! crate reads) under [decoding limits](decode_limits), turns it upright by its EXIF
//! orientation, and converts it to 8-bit RGB (grayscale replicated, alpha dropped, CMYK
//! converted), as torchvision's `pil_loader` does with `Image.convert("RGB")`. (Pillow does not
//! apply EXIF orientation; we do, so a phone photo is seen the right way up.)
//!
//! [`Preprocess`] then reproduces torchvision's classification preset on that PIL image:
//! `Resize(resize)` (shorter side to `resize`, the longer one to `int(resize * long / short)`,
//! Pillow's antialiased bilinear filter), `CenterCrop(crop)` (offsets rounded half to even, as
//! Python's `round`), `ToTensor()` and `Normalize(IMAGENET_MEAN, IMAGENET_STD)`. The resize is
//! `fast_image_resize`'s port of Pillow's convolution resampler, run in Pillow's order
//! (horizontal pass, 8-bit intermediate, vertical pass), and only over the part of the image
//! that survives the crop: the pixels are the ones torchvision computes, and a 1 x 10000
//! strip does not become a 256 x 2560000 image first.

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::error::{DecodingError, ImageFormatHint, LimitError, LimitErrorKind};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

/// ImageNet channel means (RGB), as in torchvision's presets.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB), as in torchvision's presets.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Largest width or height [`load_image`] accepts.
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// Most memory the decoder may allocate for one image.
pub const MAX_DECODE_ALLOC: u64 = 512 * 1024 * 1024;
/// Largest image file [`load_image`] reads (it reads the whole file before decoding).
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// An image that could not be loaded: the file and the decoder's reason.
#[derive(Debug, thiserror::Error)]
#[error("cannot load image {}: {}", path.display(), self.reason_text())]
pub struct ImageError {
    pub path: PathBuf,
    /// What the reader or decoder said (I/O error, unknown format, corrupt or truncated data,
    /// a limit exceeded, ...).
    pub reason: image::ImageError,
}

impl ImageError {
    /// The decoder's reason as one line: some decoders (the JPEG one) end theirs with a line
    /// break, which would leave an empty line in a report or on stderr.
    pub fn reason_text(&self) -> String {
        self.reason.to_string().trim_end().to_string()
    }
}

/// The decoder limits [`load_image`] uses: a decompression bomb is an error, not an OOM.
pub fn decode_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    limits
}

/// Decodes an image file to upright 8-bit RGB (see the module docs).
pub fn load_image(path: &Path) -> Result<RgbImage, ImageError> {
    decode(path).map_err(|reason| ImageError {
        path: path.to_owned(),
        reason,
    })
}

fn decode(path: &Path) -> Result<RgbImage, image::ImageError> {
    if std::fs::metadata(path)?.len() > MAX_FILE_BYTES {
        return Err(limit_error());
    }
    let bytes = std::fs::read(path)?;
    let mut reader = ImageReader::new(Cursor::new(&bytes)).with_guessed_format()?;
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_has_end(&bytes) {
        // The image crate's JPEG decoder fills missing data with grey instead of failing.
        return Err(image::ImageError::Decoding(DecodingError::new(
            ImageFormatHint::Exact(ImageFormat::Jpeg),
            "truncated JPEG: the image data has no end-of-image marker",
        )));
    }
    reader.limits(decode_limits());
    let mut decoder = reader.into_decoder()?;
    // A damaged EXIF block does not spoil the picture: keep it as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder)?;
    image.apply_orientation(orientation);
    Ok(match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.into_rgb8(),
    })
}

fn limit_error() -> image::ImageError {
    image::ImageError::Limits(LimitError::from_kind(LimitErrorKind::InsufficientMemory))
}

/// Whether a JPEG stream reaches its end-of-image marker after the first scan. Walks the marker
/// segments from SOI to the first SOS by their lengths (skipping embedded thumbnails, which
/// have EOI markers of their own), then looks for `FF D9` in the rest: inside entropy-coded
/// data a `FF` byte is always followed by `00` or a restart marker, so `FF D9` is the real end.
/// Streams whose structure is not understood are left to the decoder (`true`).
fn jpeg_has_end(data: &[u8]) -> bool {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return true;
    }
    let mut i = 2;
    while i + 1 < data.len() {
        if data[i] != 0xFF {
            return true;
        }
        let marker = data[i + 1];
        match marker {
            // Fill byte, or a marker without a length.
            0xFF => i += 1,
            0x01 | 0xD0..=0xD8 => i += 2,
            0xD9 => return true,
            _ => {
                let Some(len) = data.get(i + 2..i + 4) else {
                    return true;
                };
                let end = i + 2 + u16::from_be_bytes([len[0], len[1]]) as usize;
                if marker == 0xDA {
                    let scans = data.get(end..).unwrap_or_default();
                    return scans.windows(2).any(|w| w == [0xFF, 0xD9]);
                }
                i = end;
            }
        }
    }
    true
}

/// torchvision's ImageNet classification preset: resize the shorter side to `resize`, center
/// crop `crop` x `crop`, scale to [0, 1], normalize with the ImageNet mean and std.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preprocess {
    /// Target length of the shorter side (256 for IMAGENET1K_V1 weights, 232 for V2).
    pub resize: u32,
    /// Side of the square center crop (224).
    pub crop: u32,
}

impl Preprocess {
    /// The preset of torchvision's `ResNet50_Weights.IMAGENET1K_V1`.
    pub const V1: Self = Self {
        resize: 256,
        crop: 224,
    };
    /// The preset of torchvision's `ResNet50_Weights.IMAGENET1K_V2`.
    pub const V2: Self = Self {
        resize: 232,
        crop: 224,
    };

    pub fn new(resize: u32, crop: u32) -> Self {
        Self { resize, crop }
    }

    /// Number of `f32` values [`Self::to_tensor_data`] returns: `3 * crop * crop`.
    pub fn tensor_len(&self) -> usize {
        3 * self.crop as usize * self.crop as usize
    }

    /// Loads, resizes, crops and normalizes one image: `[3, crop, crop]` values, CHW order.
    pub fn load(&self, path: &Path) -> Result<Vec<f32>, ImageError> {
        Ok(self.to_tensor_data(&load_image(path)?))
    }

    /// The whole preset on a decoded image: `[3, crop, crop]` values in CHW order, ready to be
    /// stacked into an `[N, 3, crop, crop]` batch.
    pub fn to_tensor_data(&self, image: &RgbImage) -> Vec<f32> {
        normalize(&self.resize_and_crop(image))
    }

    /// `Resize(resize)` then `CenterCrop(crop)`: a `crop` x `crop` RGB image (black where the
    /// resized image is smaller than the crop, as torchvision pads).
    pub fn resize_and_crop(&self, image: &RgbImage) -> RgbImage {
        let (w, h) = image.dimensions();
        let crop = self.crop;
        let mut out = RgbImage::new(crop, crop);
        if w == 0 || h == 0 || crop == 0 || self.resize == 0 {
            return out;
        }
        let (rw, rh) = resized_size(w, h, self.resize);
        let (left, top) = (crop_offset(rw, crop), crop_offset(rh, crop));
        // The part of the crop window that lies on the resized image, in resized pixels.
        let (x0, x1) = (
            left.max(0) as u32,
            (left + crop as i64).min(rw as i64) as u32,
        );
        let (y0, y1) = (top.max(0) as u32, (top + crop as i64).min(rh as i64) as u32);
        let visible = if (rw, rh) == (w, h) {
            // torchvision returns the image unchanged when it already has the size.
            image::imageops::crop_imm(image, x0, y0, x1 - x0, y1 - y0).to_image()
        } else {
            let x_axis = Axis::new(w, rw, x0, x1);
            let y_axis = Axis::new(h, rh, y0, y1);
            resample(image, x_axis, y_axis)
        };
        let (dx, dy) = (x0 as i64 - left, y0 as i64 - top);
        image::imageops::replace(&mut out, &visible, dx, dy);
        out
    }
}

impl Default for Preprocess {
    fn default() -> Self {
        Self::V1
    }
}

impl fmt::Display for Preprocess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "resize {} bilinear (antialiased), center crop {}",
            self.resize, self.crop
        )
    }
}

/// torchvision's `_compute_resized_output_size` for an int size: the shorter side becomes
/// `size`, the longer `int(size * long / short)`; returns `(width, height)`.
pub fn resized_size(width: u32, height: u32, size: u32) -> (u32, u32) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    // Python's `int(a * b / c)`: exact product, correctly rounded division, truncation.
    let new_long = ((size as u64 * long as u64) as f64 / short as f64) as u32;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// Offset of the crop window along one side, as torchvision's `center_crop`: the window starts
/// at `int(round((side - crop) / 2.0))` (Python rounds halves to even), or, when the side is
/// shorter than the crop, at minus the left/top padding `(crop - side) // 2`.
pub fn crop_offset(side: u32, crop: u32) -> i64 {
    if crop > side {
        return -(((crop - side) / 2) as i64);
    }
    let d = (side - crop) as i64;
    let half = d / 2;
    // d / 2 is half + 0.5 when d is odd: round to the even neighbour.
    if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// ToTensor + Normalize: 8-bit RGB (HWC) -> normalized `f32` in CHW order, with torchvision's
/// float operations (`(v / 255 - mean) / std`, each rounded to f32).
pub fn normalize(image: &RgbImage) -> Vec<f32> {
    let mut lut = [[0f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (v, out) in table.iter_mut().enumerate() {
            *out = (v as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
    let plane = image.width() as usize * image.height() as usize;
    let mut out = vec![0f32; 3 * plane];
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in image.as_raw().chunks_exact(3).enumerate() {
        r[i] = lut[0][px[0] as usize];
        g[i] = lut[1][px[1] as usize];
        b[i] = lut[2][px[2] as usize];
    }
    out
}

/// How one axis is resampled: `src` pixels scaled to `dst`, of which the output keeps
/// `[keep0, keep1)`.
#[derive(Debug, Clone, Copy)]
struct Axis {
    src: u32,
    dst: u32,
    keep0: u32,
    keep1: u32,
}

impl Axis {
    fn new(src: u32, dst: u32, keep0: u32, keep1: u32) -> Self {
        Self {
            src,
            dst,
            keep0,
            keep1,
        }
    }

    fn scale(&self) -> f64 {
        self.src as f64 / self.dst as f64
    }

    fn unchanged(&self) -> bool {
        self.src == self.dst
    }

    /// The kept output range, as a window `(start, length)` on the source axis.
    fn source_window(&self) -> (f64, f64) {
        let scale = self.scale();
        let start = self.keep0 as f64 * scale;
        let end = if self.keep1 == self.dst {
            self.src as f64
        } else {
            self.keep1 as f64 * scale
        };
        (start, end - start)
    }

    /// Source pixels the bilinear filter reads for the kept outputs (Pillow's support is the
    /// scale when downsampling, 1 when upsampling).
    fn source_span(&self) -> (u32, u32) {
        let radius = self.scale().max(1.0);
        let (start, len) = self.source_window();
        let first = (start - radius).floor().max(0.0) as u32;
        let last = ((start + len + radius).ceil() as u32).min(self.src);
        (first, last)
    }
}

/// Pillow's `resize(BILINEAR)`, restricted to the kept window: horizontal pass into an 8-bit
/// intermediate over the rows the vertical pass needs, then the vertical pass.
fn resample(image: &RgbImage, x: Axis, y: Axis) -> RgbImage {
    let (out_w, out_h) = (x.keep1 - x.keep0, y.keep1 - y.keep0);
    let alg = ResizeAlg::Convolution(FilterType::Bilinear);
    let mut resizer = Resizer::new();
    let src = ImageRef::new(
        image.width(),
        image.height(),
        image.as_raw(),
        PixelType::U8x3,
    )
    .expect("an RgbImage buffer holds width * height RGB pixels");

    // Horizontal pass (skipped when the width does not change, as Pillow does).
    let (row0, row1) = if y.unchanged() {
        (y.keep0, y.keep1)
    } else {
        y.source_span()
    };
    let rows = row1 - row0;
    let horizontal = if x.unchanged() {
        let cropped = image::imageops::crop_imm(image, x.keep0, row0, out_w, rows).to_image();
        Image::from_vec_u8(out_w, rows, cropped.into_raw(), PixelType::U8x3)
            .expect("an RgbImage buffer holds width * height RGB pixels")
    } else {
        let (left, width) = x.source_window();
        let options =
            ResizeOptions::new()
                .resize_alg(alg)
                .crop(left, row0 as f64, width, rows as f64);
        let mut dst = Image::new(out_w, rows, PixelType::U8x3);
        resizer
            .resize(&src, &mut dst, &options)
            .expect("the crop window lies inside the image and both images are RGB8");
        dst
    };
    if y.unchanged() {
        return to_rgb_image(horizontal);
    }

    // Vertical pass over the intermediate rows [row0, row1).
    let (top, height) = y.source_window();
    let options =
        ResizeOptions::new()
            .resize_alg(alg)
            .crop(0.0, top - row0 as f64, out_w as f64, height);
    let mut dst = Image::new(out_w, out_h, PixelType::U8x3);
    resizer
        .resize(&horizontal, &mut dst, &options)
        .expect("the crop window lies inside the image and both images are RGB8");
    to_rgb_image(dst)
}

fn to_rgb_image(image: Image<'_>) -> RgbImage {
    let (w, h) = (image.width(), image.height());
    RgbImage::from_raw(w, h, image.into_vec()).expect("an RGB8 buffer of width * height pixels")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_size_matches_torchvision() {
        // torchvision: Resize(256) on 500x375 (w x h) gives 341x256, on 375x500 gives 256x341.
        assert_eq!(resized_size(500, 375, 256), (341, 256));
        assert_eq!(resized_size(375, 500, 256), (256, 341));
        assert_eq!(resized_size(512, 600, 256), (256, 300));
        assert_eq!(resized_size(300, 300, 232), (232, 232));
        assert_eq!(resized_size(1, 3, 256), (256, 768));
    }

    #[test]
    fn crop_offset_rounds_half_to_even() {
        assert_eq!(crop_offset(256, 224), 16);
        assert_eq!(crop_offset(341, 224), 58); // 58.5 -> 58
        assert_eq!(crop_offset(343, 224), 60); // 59.5 -> 60
        assert_eq!(crop_offset(224, 224), 0);
        assert_eq!(crop_offset(220, 224), -2); // padded by 2 on the left
        assert_eq!(crop_offset(221, 224), -1); // padded 1 left, 2 right
    }

    #[test]
    fn jpeg_end_is_searched_after_the_first_scan() {
        // SOI, an APP1 segment whose payload holds FF D9 (as an EXIF thumbnail does), SOS.
        let head = [0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD9, 0x00, 0x00];
        let sos = [0xFF, 0xDA, 0x00, 0x04, 0x01, 0x02];
        let data = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56];
        let stream = |tail: &[u8]| [&head[..], &sos, &data, tail].concat();
        assert!(jpeg_has_end(&stream(&[0xFF, 0xD9])));
        assert!(jpeg_has_end(&stream(&[0xFF, 0xD9, 0x00, 0x00]))); // trailing bytes are fine
        assert!(!jpeg_has_end(&stream(&[])));
        assert!(!jpeg_has_end(&stream(&[0xFF])));
        // Not a JPEG, or not understood: left to the decoder.
        assert!(jpeg_has_end(b"GIF89a"));
        assert!(jpeg_has_end(&[0xFF, 0xD8, 0x00]));
    }

    #[test]
    fn normalize_is_chw_with_torchvision_values() {
        let image = RgbImage::from_raw(2, 1, vec![0, 128, 255, 10, 20, 30]).unwrap();
        let t = normalize(&image);
        assert_eq!(t.len(), 6);
        assert_eq!(t[0], (0.0 - 0.485) / 0.229);
        assert_eq!(t[1], (10.0 / 255.0 - 0.485f32) / 0.229);
        assert_eq!(t[2], (128.0 / 255.0 - 0.456f32) / 0.224);
        assert_eq!(t[5], (30.0 / 255.0 - 0.406f32) / 0.225);
    }
}
