//! The attention decoder end to end on a small synthetic set: the featurizer writes the grid
//! beside the features, the trainer and the evaluator read it, `eval/attention.parquet` and the
//! grid open in pyarrow, and `caption --attention-dir` draws one figure per photo.

use std::path::Path;
use std::sync::OnceLock;

use contracts::tables::{AttentionTable, read};
use imagecaptioning::{check_with_pyarrow, describe, prepare_work_dir, run, run_ok, tempdir};

const ATTENTION: [&str; 2] = ["--set", "model.decoder=attention"];

/// One trained attention work dir shared by the tests of this file.
fn trained() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempdir();
        let cwd = dir.path();
        prepare_work_dir(
            cwd,
            40,
            4,
            &[["--weights", "random"].as_slice(), &ATTENTION].concat(),
        );
        let tiny = [
            "--set",
            "model.embed_dim=16",
            "--set",
            "model.hidden_dim=32",
            "--set",
            "model.attention.dim=8",
            "--set",
            "trainer.epochs=2",
        ];
        let work = ["--work-dir", "work"];
        run_ok(
            "trainer",
            cwd,
            &[work.as_slice(), &ATTENTION, &tiny].concat(),
        );
        run_ok("evaluator", cwd, &work);
        dir
    })
    .path()
}

#[test]
fn the_grid_and_the_attention_weights_open_in_pyarrow() {
    let cwd = trained();
    assert!(cwd.join("work/grid/_SUCCESS").is_file());
    check_with_pyarrow(
        cwd,
        &[
            Path::new("work/grid"),
            Path::new("work/eval/attention.parquet"),
        ],
    );
    let (rows, _) = read::<AttentionTable>(&cwd.join("work/eval/attention.parquet")).unwrap();
    assert!(!rows.is_empty());
    for row in &rows {
        assert_eq!(row.weights.len(), 49, "{row:?}");
        let sum: f32 = row.weights.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "{row:?}");
    }
    let report = std::fs::read_to_string(cwd.join("work/eval/report.html")).unwrap();
    assert!(report.contains(
        "<h2>Where the model looked</h2>\n<p class=\"context\">Each word of the caption with its soft attention over the grid (brighter: more weight), for the gallery images.</p>"
    ));
}

#[test]
fn caption_draws_one_figure_per_photo_with_a_tile_per_word() {
    let cwd = trained();
    let out = run_ok(
        "caption",
        cwd,
        &[
            "--work-dir",
            "work",
            "--attention-dir",
            "maps",
            "synthetic/Images/synth_00000.png",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let caption = stdout.trim().split('\t').nth(1).expect("image<TAB>caption");
    let tiles = caption.split(' ').filter(|w| !w.is_empty()).count() as u32 + 1;
    let figure = image::open(cwd.join("maps/synth_00000.png"))
        .unwrap_or_else(|e| panic!("{e}; {}", describe(&out)))
        .to_rgb8();
    // Tiles of the 224 px network view, 8 px margins, a 24 px label strip, 5 to a row.
    let (columns, rows) = (tiles.min(5), tiles.div_ceil(5));
    assert_eq!(
        figure.dimensions(),
        (8 + columns * 232, 8 + rows * (224 + 24 + 8)),
        "caption {caption:?}"
    );
    // Not blank: the photo tile has more than one colour, and so has each word's tile.
    for tile in 0..tiles {
        let (x, y) = (8 + (tile % 5) * 232, 8 + (tile / 5) * 256);
        let first = figure.get_pixel(x, y);
        let varied = (0..224)
            .step_by(7)
            .flat_map(|dy| (0..224).step_by(7).map(move |dx| (dx, dy)))
            .any(|(dx, dy)| figure.get_pixel(x + dx, y + dy) != first);
        assert!(varied, "tile {tile} is one flat colour");
    }
}

/// On a flat grey photo every cell of a word's tile shows only its attention: the tile is the
/// photo dimmed to `DIM` where the word's weight is 0 and kept where it peaks (the blue channel
/// gets no tint). Each of the 49 cells, read back at its centre, must give the word's weight
/// over its peak, as `caption --json` reports it, and the brightest cell is where it peaks.
#[test]
fn each_word_tile_is_bright_where_its_weights_peak() {
    let cwd = trained();
    image::RgbImage::from_pixel(240, 240, image::Rgb([128, 128, 128]))
        .save(cwd.join("grey.png"))
        .unwrap();
    let out = run_ok(
        "caption",
        cwd,
        &[
            "--work-dir",
            "work",
            "--json",
            "--attention-dir",
            "grey_maps",
            "grey.png",
        ],
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let attention: Vec<Vec<f32>> = serde_json::from_value(line["attention"].clone()).unwrap();
    assert!(!attention.is_empty(), "{line}");
    let figure = image::open(cwd.join("grey_maps/grey.png"))
        .unwrap()
        .to_rgb8();
    let dim = models::attention_map::DIM;
    for (word, weights) in attention.iter().enumerate() {
        assert_eq!(weights.len(), 49);
        let peak = weights.iter().copied().fold(0f32, f32::max);
        let tile = word as u32 + 1;
        let (x, y) = (8 + (tile % 5) * 232, 8 + (tile / 5) * 256);
        // Pixel 32 c + 15 is a 64th of a cell from cell c's centre: its value, nearly.
        let shown: Vec<f32> = (0..49u32)
            .map(|cell| {
                let (row, column) = (cell / 7, cell % 7);
                let blue = figure.get_pixel(x + 32 * column + 15, y + 32 * row + 15)[2];
                (f32::from(blue) / 128.0 - dim) / (1.0 - dim)
            })
            .collect();
        for (cell, (&w, &a)) in weights.iter().zip(&shown).enumerate() {
            assert!(
                (w / peak - a).abs() < 0.03,
                "word {word}, cell {cell}: weight {:.3} of the peak, shown {a:.3}",
                w / peak
            );
        }
        let brightest = (0..49)
            .max_by(|&i, &j| shown[i].total_cmp(&shown[j]))
            .unwrap();
        assert!(
            weights[brightest] >= 0.97 * peak,
            "word {word}: brightest cell {brightest} has weight {} of peak {peak}",
            weights[brightest]
        );
    }
}

#[test]
fn without_the_grid_the_trainer_says_which_stage_makes_it() {
    let cwd = trained();
    let copy = tempdir();
    for name in ["captions.parquet", "vocab.parquet", "tokens.parquet"] {
        std::fs::copy(cwd.join("work").join(name), copy.path().join(name)).unwrap();
    }
    let features = copy.path().join("features");
    std::fs::create_dir_all(&features).unwrap();
    std::fs::copy(
        cwd.join("work/features/part-00000.parquet"),
        features.join("part-00000.parquet"),
    )
    .unwrap();
    let work = copy.path().display().to_string();
    let out = run(
        "trainer",
        cwd,
        &[["--work-dir", work.as_str()].as_slice(), &ATTENTION].concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .trim()
            .lines()
            .last()
            .unwrap(),
        format!(
            "error: {}/grid does not exist; run the featurizer stage (`make features`)",
            work
        )
    );
}
