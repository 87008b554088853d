//! A small synthetic dataset written with the contracts writers: images with a colour, a shape
//! and a background, captions from templates, and 2048-d features that encode the attributes.
//!
//! Features are `offset + scale * (P^T onehot + noise)` with a fixed random projection `P`,
//! large per-dimension offsets and small scales, like raw CNN features whose informative part
//! is small next to each dimension's typical value: standardisation is what makes them usable.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use contracts::tables::{
    CAPTIONS_FILE, CaptionRow, CaptionsTable, FEATURE_DIM, FEATURES_DIR, Features, FeaturesTable,
    TOKENS_FILE, TokenRow, TokensTable, VOCAB_FILE, VocabRow, VocabTable, write,
};
use contracts::{PipelineConfig, Provenance, Split, Stage};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const COLOURS: [&str; 4] = ["red", "green", "blue", "yellow"];
pub const SHAPES: [&str; 3] = ["circle", "square", "triangle"];
pub const BACKGROUNDS: [&str; 2] = ["black", "white"];
const WORDS: [&str; 15] = [
    "a",
    "on",
    "background",
    "there",
    "is",
    "with",
    "red",
    "green",
    "blue",
    "yellow",
    "circle",
    "square",
    "triangle",
    "black",
    "white",
];

/// One image: its name, split and attribute indices.
#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub split: Split,
    pub attributes: [usize; 3],
}

impl Image {
    pub fn captions(&self) -> Vec<String> {
        let [c, s, b] = self.attributes;
        let (c, s, b) = (COLOURS[c], SHAPES[s], BACKGROUNDS[b]);
        vec![
            format!("a {c} {s} on a {b} background"),
            format!("a {c} {s} on a {b} background"),
            format!("there is a {c} {s} on a {b} background"),
            format!("a {b} background with a {c} {s}"),
            format!("a {c} {s} on a {b} background"),
        ]
    }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub images: Vec<Image>,
    pub features: Features,
}

impl Fixture {
    pub fn work_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn model_dir(&self) -> PathBuf {
        self.dir.path().join(contracts::artifacts::MODEL_DIR)
    }

    /// A config with a tiny model that learns this dataset in seconds.
    pub fn config(&self, epochs: usize) -> PipelineConfig {
        let mut config = PipelineConfig::default();
        config.paths.work_dir = self.work_dir();
        config.model.embed_dim = 24;
        config.model.hidden_dim = 48;
        config.model.dropout = 0.1;
        config.trainer.epochs = epochs;
        config.trainer.batch_size = 32;
        config.trainer.learning_rate = 0.01;
        config.trainer.patience = 50;
        config.trainer.seed = 11;
        config.evaluator.max_len = 12;
        config
    }

    /// Raw feature vector of `image` (index into `images`).
    pub fn feature(&self, image: usize) -> &[f32] {
        self.features.row(image)
    }
}

/// `per_combo` images of every attribute combination in each split (train, val, test).
pub fn dataset(per_combo: [usize; 3], seed: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut images = Vec::new();
    for (split, count) in [Split::Train, Split::Val, Split::Test]
        .into_iter()
        .zip(per_combo)
    {
        for c in 0..COLOURS.len() {
            for s in 0..SHAPES.len() {
                for b in 0..BACKGROUNDS.len() {
                    for k in 0..count {
                        let name = format!("{split}_{c}{s}{b}_{k}.jpg");
                        images.push(Image {
                            name,
                            split,
                            attributes: [c, s, b],
                        });
                    }
                }
            }
        }
    }
    // Fixed projection of the 9 attribute one-hots, offsets and scales per dimension.
    let attributes = COLOURS.len() + SHAPES.len() + BACKGROUNDS.len();
    let gauss = |rng: &mut ChaCha8Rng| {
        let (u, v): (f32, f32) = (rng.random::<f32>().max(1e-7), rng.random());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    };
    let projection: Vec<f32> = (0..attributes * FEATURE_DIM)
        .map(|_| gauss(&mut rng))
        .collect();
    let offsets: Vec<f32> = (0..FEATURE_DIM)
        .map(|_| rng.random_range(0.0..8.0))
        .collect();
    let scales: Vec<f32> = (0..FEATURE_DIM)
        .map(|_| rng.random_range(0.005..0.05))
        .collect();
    let mut features = Features::default();
    for image in &images {
        let [c, s, b] = image.attributes;
        let hot = [c, COLOURS.len() + s, COLOURS.len() + SHAPES.len() + b];
        for d in 0..FEATURE_DIM {
            let signal: f32 = hot.iter().map(|&a| projection[a * FEATURE_DIM + d]).sum();
            let noise = 0.3 * gauss(&mut rng);
            features
                .features
                .push((offsets[d] + scales[d] * (signal + noise)).max(0.0));
        }
        features.images.push(image.name.clone());
    }
    write_inputs(dir.path(), &images, &features, &[]);
    Fixture {
        dir,
        images,
        features,
    }
}

/// [`dataset`] with a 2x2 grid beside the pooled vectors, for the attention decoder. The
/// answer is in one region only, at a random place: the image's own attributes (colour, shape
/// and background signals, summed) plus a marker that says "here". Another region holds the
/// negated attributes, and the remaining two a random combination and its negation, none of
/// them marked. The regions' mean (the pooled vector, as ResNet50's is, and the attention
/// model's initial state) is thus the marker's quarter plus noise, the same for every image:
/// a model that does not attend to the marked region cannot caption the image.
pub fn dataset_with_grid(per_combo: [usize; 3], seed: u64) -> Fixture {
    let fixture = dataset(per_combo, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
    let gauss = |rng: &mut ChaCha8Rng| {
        let (u, v): (f32, f32) = (rng.random::<f32>().max(1e-7), rng.random());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    };
    let sizes = [COLOURS.len(), SHAPES.len(), BACKGROUNDS.len()];
    let projections: Vec<Vec<f32>> = sizes
        .iter()
        .map(|&n| (0..n * FEATURE_DIM).map(|_| gauss(&mut rng)).collect())
        .collect();
    let marker: Vec<f32> = (0..FEATURE_DIM).map(|_| 2.0 * gauss(&mut rng)).collect();
    let shape = contracts::grid::GridShape {
        channels: FEATURE_DIM,
        height: 2,
        width: 2,
    };
    let regions = shape.regions();
    let mut grids = contracts::grid::Grids::new(shape);
    let mut pooled = Features::default();
    for image in &fixture.images {
        // Regions in a random order: the answer, its negation, a random combination and its
        // negation.
        let mut order: Vec<usize> = (0..regions).collect();
        order.shuffle(&mut rng);
        let decoy = [0, 1, 2].map(|a| rng.random_range(0..sizes[a]));
        let mut grid = vec![0f32; shape.len()];
        for (k, &region) in order.iter().enumerate() {
            let (attributes, sign) = match k {
                0 | 1 => (image.attributes, if k == 0 { 1.0 } else { -1.0 }),
                _ => (decoy, if k == 2 { 1.0 } else { -1.0 }),
            };
            for d in 0..FEATURE_DIM {
                let mut signal: f32 = sign
                    * (0..3)
                        .map(|a| projections[a][attributes[a] * FEATURE_DIM + d])
                        .sum::<f32>();
                if k == 0 {
                    signal += marker[d];
                }
                grid[d * regions + region] = signal + 0.3 * gauss(&mut rng);
            }
        }
        pooled.features.extend(
            grid.chunks(regions)
                .map(|channel| channel.iter().sum::<f32>() / regions as f32),
        );
        pooled.images.push(image.name.clone());
        grids.images.push(image.name.clone());
        grids.values.extend(grid);
    }
    let dir = fixture.dir.path();
    write_inputs(dir, &fixture.images, &pooled, &[]);
    let grid_dir = dir.join(contracts::artifacts::GRID_DIR);
    std::fs::create_dir_all(&grid_dir).unwrap();
    contracts::grid::write_grid_part(
        &grid_dir.join("part-00000.parquet"),
        &grids,
        &Provenance::new(Stage::Featurizer, ()),
    )
    .unwrap();
    Fixture {
        features: pooled,
        ..fixture
    }
}

/// The vocabulary rows: specials, then the words.
pub fn vocab_rows(extra: &[&str]) -> Vec<VocabRow> {
    ["<pad>", "<start>", "<end>", "<unk>"]
        .iter()
        .chain(WORDS.iter())
        .chain(extra.iter())
        .enumerate()
        .map(|(id, token)| VocabRow {
            token_id: id as u32,
            token: token.to_string(),
            count: 1,
        })
        .collect()
}

pub fn encode(caption: &str) -> Vec<u32> {
    let vocab = vocab_rows(&[]);
    let mut ids = vec![1];
    ids.extend(
        caption
            .split(' ')
            .map(|w| vocab.iter().find(|r| r.token == w).unwrap().token_id),
    );
    ids.push(2);
    ids
}

/// Writes captions, vocabulary, tokens and features (one part) under `dir`; `extra_tokens`
/// are added to tokens.parquet as they are.
pub fn write_inputs(dir: &Path, images: &[Image], features: &Features, extra_tokens: &[TokenRow]) {
    let captions: Vec<CaptionRow> = images
        .iter()
        .flat_map(|image| {
            image
                .captions()
                .into_iter()
                .enumerate()
                .map(|(i, clean)| CaptionRow {
                    image: image.name.clone(),
                    caption_idx: i as u8,
                    split: image.split,
                    raw: clean.clone(),
                    clean,
                })
        })
        .collect();
    let captions_path = dir.join(CAPTIONS_FILE);
    write::<CaptionsTable>(
        &captions_path,
        &captions,
        &Provenance::new(Stage::Cleaner, ()),
    )
    .unwrap();
    let mut tokens: Vec<TokenRow> = captions
        .iter()
        .map(|c| TokenRow {
            image: c.image.clone(),
            caption_idx: c.caption_idx,
            split: c.split,
            token_ids: encode(&c.clean),
        })
        .collect();
    tokens.extend(extra_tokens.iter().cloned());
    let provenance = Provenance::new(Stage::Tokenizer, ())
        .with_input(CAPTIONS_FILE, &captions_path)
        .unwrap();
    write::<VocabTable>(&dir.join(VOCAB_FILE), &vocab_rows(&[]), &provenance).unwrap();
    write::<TokensTable>(&dir.join(TOKENS_FILE), &tokens, &provenance).unwrap();
    let part = dir.join(FEATURES_DIR).join("part-00000.parquet");
    write::<FeaturesTable>(&part, features, &Provenance::new(Stage::Featurizer, ())).unwrap();
}

/// `metrics.csv` without the timing columns (seconds, captions_per_s).
pub fn metrics_without_timing(model_dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(model_dir.join("metrics.csv")).unwrap();
    text.lines()
        .map(|line| line.split(',').take(10).collect::<Vec<_>>().join(","))
        .collect()
}
