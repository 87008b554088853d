//! The Transformer: decoding with the key/value cache against the full teacher-forced pass
//! (beams reordered on the way), its training gradients (autodiff body, fused vocabulary
//! layer) against autodiff alone with dropout on, and decoding that returns each word's
//! cross-attention.

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use decoder::captioner::Architecture;
use decoder::transformer::{TransformerConfig, TransformerModel};
use decoder::{
    BeamConfig, CaptionModel, DecodeState, FeatureStats, Images, TeacherBatch, Trainable,
    beam_search, greedy_attended,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

type B = kernels::Cpu;
type AD = Autodiff<B>;

const VOCAB: usize = 11;
const FEATURES: usize = 6;
/// A 3x3 grid.
const REGIONS: usize = 9;

fn model<BB: Backend>(dropout: f64, seed: u64) -> TransformerModel<BB> {
    let config = TransformerConfig {
        vocab_size: VOCAB,
        feature_dim: FEATURES,
        d_model: 8,
        heads: 2,
        feed_forward: 12,
        encoder_layers: 2,
        decoder_layers: 2,
        dropout,
    };
    let stats = FeatureStats {
        mean: vec![0.3; FEATURES],
        std: vec![0.7; FEATURES],
    };
    config
        .init::<BB>(&stats, seed, &Default::default())
        .unwrap()
}

fn images<BB: Backend>(batch: usize) -> Images<BB> {
    let grid: Vec<f32> = (0..batch * REGIONS * FEATURES)
        .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
        .collect();
    let grid = Tensor::<BB, 3>::from_data(
        TensorData::new(grid, [batch, REGIONS, FEATURES]),
        &Default::default(),
    );
    Images {
        pooled: grid.clone().mean_dim(1).reshape([batch, FEATURES]),
        grid: Some(grid),
    }
}

/// `[steps, batch]` time-major tokens of `captions` (equal lengths).
fn time_major<BB: Backend>(captions: &[Vec<i64>]) -> Tensor<BB, 2, Int> {
    let steps = captions[0].len();
    let values: Vec<i64> = (0..steps)
        .flat_map(|t| captions.iter().map(move |c| c[t]))
        .collect();
    Tensor::from_data(
        TensorData::new(values, [steps, captions.len()]),
        &Default::default(),
    )
}

fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Step by step with the cache, the rows reordered as beam search reorders them after the
/// second word, against one teacher-forced pass over the whole captions.
#[test]
fn cached_decoding_gives_the_full_passs_log_probabilities() {
    let model = model::<B>(0.1, 3);
    let images = images::<B>(3);
    let captions: Vec<Vec<i64>> = vec![
        vec![1, 5, 7, 3, 9, 4],
        vec![1, 4, 10, 6, 6, 8],
        vec![1, 6, 2, 5, 9, 10],
    ];
    // After step 2, row r continues caption `order[r]`'s prefix.
    let order = [2usize, 0, 0];
    let followed: Vec<Vec<i64>> = (0..3)
        .map(|r| {
            let mut caption = captions[order[r]][..2].to_vec();
            caption.extend_from_slice(&captions[r][2..]);
            caption
        })
        .collect();
    let full = |captions: &[Vec<i64>], row_images: &[usize]| -> Vec<f32> {
        let index = Tensor::<B, 1, Int>::from_data(
            TensorData::new(
                row_images.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                [row_images.len()],
            ),
            &Default::default(),
        );
        let grid = images.grid.clone().unwrap().select(0, index);
        log_softmax(model.logits(grid, time_major(captions)), 2)
            .into_data()
            .to_vec()
            .unwrap()
    };
    // Before the reordering row r is caption r; after it, `followed[r]`.
    let before = full(&captions, &[0, 1, 2]);
    let after = full(&followed, &order);
    let steps = captions[0].len();
    let mut state = model.start(&images);
    let mut worst = 0f32;
    for t in 0..steps {
        if t == 2 {
            let index = Tensor::<B, 1, Int>::from_data(
                TensorData::new(order.iter().map(|&r| r as i64).collect::<Vec<_>>(), [3]),
                &Default::default(),
            );
            state = state.select(index);
        }
        let (rows, expected) = if t < 2 {
            (&captions, &before)
        } else {
            (&followed, &after)
        };
        let tokens: Vec<i64> = rows.iter().map(|c| c[t]).collect();
        let tokens = Tensor::from_data(TensorData::new(tokens, [3]), &Default::default());
        let (log_probs, next) = model.step(tokens, state);
        state = next;
        let log_probs: Vec<f32> = log_probs.into_data().to_vec().unwrap();
        for row in 0..3 {
            let at = (row * steps + t) * VOCAB;
            let difference = largest_difference(
                &log_probs[row * VOCAB..(row + 1) * VOCAB],
                &expected[at..at + VOCAB],
            );
            worst = worst.max(difference);
        }
    }
    eprintln!("largest difference, cached against full: {worst:e}");
    assert!(worst <= 1e-5, "cached decoding differs by {worst}");
}

/// Every float parameter's id, in module order.
fn param_ids(model: &TransformerModel<AD>) -> Vec<(ParamId, usize)> {
    struct Ids(Vec<(ParamId, usize)>);
    impl ModuleVisitor<AD> for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AD, D>>) {
            self.0.push((param.id, D));
        }
    }
    let mut ids = Ids(Vec::new());
    model.visit(&mut ids);
    ids.0
}

fn grad_values(grads: &burn::optim::GradientsParams, id: ParamId, rank: usize) -> Option<Vec<f32>> {
    let data = match rank {
        1 => grads.get::<B, 1>(id).map(|t| t.into_data()),
        2 => grads.get::<B, 2>(id).map(|t| t.into_data()),
        _ => unreachable!("parameters are vectors and matrices"),
    };
    data.map(|d| d.to_vec().unwrap())
}

fn trained_and_reference(seed: u64) -> Vec<(Vec<f32>, Vec<f32>)> {
    let model = model::<AD>(0.3, 3);
    let captions: Vec<Vec<u32>> = vec![vec![1, 5, 7, 3, 9, 2], vec![1, 4, 10, 2], vec![1, 6, 2]];
    let refs: Vec<&[u32]> = captions.iter().map(Vec::as_slice).collect();
    let batch = TeacherBatch::<AD>::new(&refs, &Default::default());
    let images = images::<AD>(captions.len());
    let (_, trained) =
        model.loss_and_grads(&images, &batch, Some(&mut ChaCha8Rng::seed_from_u64(seed)));
    let objective =
        model.reference_objective(&images, &batch, Some(&mut ChaCha8Rng::seed_from_u64(seed)));
    let reference = burn::optim::GradientsParams::from_grads(objective.backward(), &model);
    param_ids(&model)
        .into_iter()
        .filter_map(|(id, rank)| {
            let reference = grad_values(&reference, id, rank)?;
            let trained = grad_values(&trained, id, rank).expect("training misses a gradient");
            Some((trained, reference))
        })
        .collect()
}

#[test]
fn training_gradients_match_autodiff_with_dropout_on() {
    let pairs = trained_and_reference(9);
    // Every trained parameter (not the standardisation constants): the region projection's
    // 2; per encoder layer 2 norms x 2, 4 projections x 2, 2 feed-forward layers x 2 = 16;
    // its norm's 2; the embedding; per decoder layer 3 norms x 2, 8 projections x 2,
    // 2 feed-forward layers x 2 = 26; its norm's 2; the output layer's 2.
    assert_eq!(pairs.len(), 2 + 2 * 16 + 2 + 1 + 2 * 26 + 2 + 2);
    for (k, (trained, reference)) in pairs.iter().enumerate() {
        let scale = reference.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
        for (i, (a, b)) in trained.iter().zip(reference).enumerate() {
            assert!(
                (a - b).abs() <= 2e-4 * scale + 1e-6,
                "parameter {k}[{i}]: trained {a} vs autodiff {b} (max |g| {scale})"
            );
        }
    }
    let other = trained_and_reference(10);
    assert!(
        pairs.iter().zip(&other).any(|((a, _), (b, _))| a != b),
        "dropout masks made no difference"
    );
}

#[test]
fn the_validation_loss_is_the_trained_cross_entropy() {
    let model = model::<AD>(0.0, 7);
    let captions: Vec<Vec<u32>> = vec![vec![1, 5, 7, 2], vec![1, 4, 2]];
    let refs: Vec<&[u32]> = captions.iter().map(Vec::as_slice).collect();
    let (loss, _) = model.loss_and_grads(
        &images::<AD>(2),
        &TeacherBatch::<AD>::new(&refs, &Default::default()),
        None,
    );
    let plain = model.valid();
    let validation = CaptionModel::loss(
        &plain,
        &images::<B>(2),
        &TeacherBatch::<B>::new(&refs, &Default::default()),
    );
    let (a, b): (f32, f32) = (loss.into_scalar(), validation.into_scalar());
    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
}

#[test]
fn decoding_returns_one_cross_attention_map_per_word() {
    let model = model::<B>(0.0, 5);
    let images = images::<B>(3);
    let greedy = greedy_attended(&model, &images, 6, true);
    for (tokens, attention) in &greedy {
        assert_eq!(attention.len(), tokens.len());
        for weights in attention {
            assert_eq!(weights.len(), REGIONS);
            let sum: f32 = weights.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "weights sum to {sum}");
        }
    }
    let config = BeamConfig {
        beam_size: 1,
        max_len: 6,
        length_alpha: 0.0,
        suppress_unk: true,
    };
    for ((tokens, attention), hypothesis) in
        greedy.iter().zip(beam_search(&model, &images, &config))
    {
        assert_eq!(&hypothesis.tokens, tokens, "beam 1 is greedy");
        assert_eq!(&hypothesis.attention, attention);
    }
}

/// A grid that is not square has no 2-D positions: the message says what the model reads.
#[test]
#[should_panic(expected = "the transformer reads a square grid of regions, not 6")]
fn a_grid_that_is_not_square_is_refused() {
    let model = model::<B>(0.0, 5);
    let grid = Tensor::<B, 3>::zeros([1, 6, FEATURES], &Default::default());
    model.start(&Images {
        pooled: grid.clone().mean_dim(1).reshape([1, FEATURES]),
        grid: Some(grid),
    });
}

/// `scripts/transformer_reference.py` builds the same model in PyTorch from the exported
/// weights and must give the same teacher-forced logits (1e-4) and greedy captions.
#[test]
fn pytorch_gives_the_same_logits_and_greedy_captions_from_the_exported_weights() {
    let config = TransformerConfig {
        vocab_size: 13,
        feature_dim: FEATURES,
        d_model: 16,
        heads: 4,
        feed_forward: 24,
        encoder_layers: 2,
        decoder_layers: 2,
        dropout: 0.1,
    };
    let stats = FeatureStats {
        mean: (0..FEATURES).map(|c| c as f32 * 0.1 - 0.2).collect(),
        std: (0..FEATURES).map(|c| 0.5 + c as f32 * 0.2).collect(),
    };
    let model = config.init::<B>(&stats, 11, &Default::default()).unwrap();
    let images = images::<B>(4);
    let tokens: Vec<i64> = (0..4 * 7)
        .map(|i| {
            if i % 7 == 0 {
                1
            } else {
                (i * 5 % 9 + 4) as i64
            }
        })
        .collect();
    let tokens =
        Tensor::<B, 2, Int>::from_data(TensorData::new(tokens, [4, 7]), &Default::default());
    let dir = tempfile::tempdir().unwrap();
    decoder::transformer::write_reference_check(
        &model,
        images.grid.unwrap(),
        tokens,
        8,
        dir.path(),
    )
    .unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/transformer_reference.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let run = std::process::Command::new(&python)
        .arg(&script)
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("{report}");
    assert!(run.status.success(), "{report}");
    assert!(
        report.contains("greedy captions: 4 of 4 the same"),
        "{report}"
    );
}
