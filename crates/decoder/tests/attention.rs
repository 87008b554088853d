//! The attention model: its training gradients (fused vocabulary layer) against plain autodiff
//! with dropout on, the doubly stochastic regulariser against hand-computed values, and
//! decoding that returns each word's attention.

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId};
use burn::tensor::{Int, Tensor, TensorData};
use decoder::attention::training::attention_regulariser;
use decoder::attention::{AttentionConfig, AttentionModel};
use decoder::captioner::Architecture;
use decoder::{
    BeamConfig, FeatureStats, Images, TeacherBatch, Trainable, beam_search, greedy_attended,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

type B = kernels::Cpu;
type AD = Autodiff<B>;

const FEATURES: usize = 6;
const REGIONS: usize = 4;

fn config(dropout: f64) -> AttentionConfig {
    AttentionConfig {
        vocab_size: 11,
        feature_dim: FEATURES,
        embed_dim: 5,
        hidden_dim: 7,
        attention_dim: 3,
        dropout,
        attention_reg: 1.0,
    }
}

fn model<BB: burn::tensor::backend::Backend>(dropout: f64, seed: u64) -> AttentionModel<BB> {
    let stats = FeatureStats {
        mean: vec![0.3; FEATURES],
        std: vec![0.7; FEATURES],
    };
    config(dropout)
        .init::<BB>(&stats, seed, &Default::default())
        .unwrap()
}

fn images<BB: burn::tensor::backend::Backend>(batch: usize) -> Images<BB> {
    let device = Default::default();
    let grid: Vec<f32> = (0..batch * REGIONS * FEATURES)
        .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
        .collect();
    let grid =
        Tensor::<BB, 3>::from_data(TensorData::new(grid, [batch, REGIONS, FEATURES]), &device);
    Images {
        pooled: grid.clone().mean_dim(1).reshape([batch, FEATURES]),
        grid: Some(grid),
    }
}

/// Every float parameter's id, in module order.
fn param_ids(model: &AttentionModel<AD>) -> Vec<(ParamId, usize)> {
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

fn fused_and_reference(seed: u64) -> Vec<(Vec<f32>, Vec<f32>)> {
    let model = model::<AD>(0.5, 3);
    let captions: Vec<Vec<u32>> = vec![vec![1, 5, 7, 3, 9, 2], vec![1, 4, 10, 2], vec![1, 6, 2]];
    let refs: Vec<&[u32]> = captions.iter().map(Vec::as_slice).collect();
    let batch = TeacherBatch::<AD>::new(&refs, &Default::default());
    let images = images::<AD>(captions.len());
    let (_, fused) =
        model.loss_and_grads(&images, &batch, Some(&mut ChaCha8Rng::seed_from_u64(seed)));
    let objective =
        model.reference_objective(&images, &batch, Some(&mut ChaCha8Rng::seed_from_u64(seed)));
    let reference = burn::optim::GradientsParams::from_grads(objective.backward(), &model);
    param_ids(&model)
        .into_iter()
        .filter_map(|(id, rank)| {
            let reference = grad_values(&reference, id, rank)?;
            let fused = grad_values(&fused, id, rank).expect("fused pass misses a gradient");
            Some((fused, reference))
        })
        .collect()
}

#[test]
fn fused_gradients_match_autodiff_with_dropout_on() {
    let pairs = fused_and_reference(9);
    // Every trained parameter has a gradient (not the standardisation constants): six linear
    // layers' weights and biases, the embedding, the LSTM's three tensors and its context
    // weights, the output layer's two.
    assert_eq!(pairs.len(), 19);
    for (k, (fused, reference)) in pairs.iter().enumerate() {
        let scale = reference.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
        for (i, (a, b)) in fused.iter().zip(reference).enumerate() {
            assert!(
                (a - b).abs() <= 2e-4 * scale + 1e-6,
                "parameter {k}[{i}]: fused {a} vs autodiff {b} (max |g| {scale})"
            );
        }
    }
    // Dropout is really on: other masks give other gradients.
    let other = fused_and_reference(10);
    assert!(
        pairs.iter().zip(&other).any(|((a, _), (b, _))| a != b),
        "dropout masks made no difference"
    );
}

#[test]
fn the_regulariser_counts_each_captions_own_steps() {
    let device = Default::default();
    // [2 steps, 2 captions, 2 regions]; caption 1 has one real step.
    let alphas = Tensor::<B, 3>::from_data(
        TensorData::new(vec![0.25, 0.75, 0.5, 0.5, 0.5, 0.5, 0.9, 0.1], [2, 2, 2]),
        &device,
    );
    let inputs =
        Tensor::<B, 2, Int>::from_data(TensorData::new(vec![1i64, 1, 5, 0], [2, 2]), &device);
    // Caption 0 looked (0.75, 1.25), caption 1 (0.5, 0.5): squares 0.0625 0.0625 0.25 0.25.
    let value: f32 = attention_regulariser(alphas, inputs, 2.0).into_scalar();
    assert!((value - 2.0 * 0.625 / 4.0).abs() < 1e-6, "{value}");
}

#[test]
fn decoding_returns_one_attention_map_per_word() {
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
    let beams = beam_search(&model, &images, &config);
    for ((tokens, attention), hypothesis) in greedy.iter().zip(&beams) {
        assert_eq!(&hypothesis.tokens, tokens, "beam 1 is greedy");
        assert_eq!(&hypothesis.attention, attention);
    }
    // A wider beam keeps each hypothesis's own maps.
    let wide = beam_search(
        &model,
        &images,
        &BeamConfig {
            beam_size: 3,
            ..config
        },
    );
    assert!(wide.iter().all(|h| h.attention.len() == h.tokens.len()));
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
    let validation = decoder::CaptionModel::loss(
        &plain,
        &images::<B>(2),
        &TeacherBatch::<B>::new(&refs, &Default::default()),
    );
    let (a, b): (f32, f32) = (loss.into_scalar(), validation.into_scalar());
    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
}

#[test]
fn parts_of_a_batch_add_up_to_the_whole() {
    let model = model::<AD>(0.0, 4);
    let captions: Vec<Vec<u32>> = vec![vec![1, 5, 7, 3, 9, 2], vec![1, 4, 10, 2], vec![1, 6, 2]];
    let refs: Vec<&[u32]> = captions.iter().map(Vec::as_slice).collect();
    let device = Default::default();
    let whole = TeacherBatch::<AD>::new(&refs, &device);
    let (loss, grads) = model.loss_and_grads(&images::<AD>(3), &whole, None);
    for split in [1, 2] {
        let mut total = 0f32;
        let mut sums: Vec<Option<Vec<f32>>> = Vec::new();
        for part in [0..split, split..3] {
            let batch = TeacherBatch::<AD>::new(&refs[part.clone()], &device)
                .part_of(whole.tokens, whole.batch_size);
            let all = images::<AD>(3);
            let index = Tensor::<AD, 1, Int>::from_data(
                TensorData::new(
                    part.clone().map(|i| i as i64).collect::<Vec<_>>(),
                    [part.len()],
                ),
                &device,
            );
            let images = Images {
                pooled: all.pooled.select(0, index.clone()),
                grid: all.grid.map(|g| g.select(0, index)),
            };
            let (part_loss, part_grads) = model.loss_and_grads(&images, &batch, None);
            total += part_loss.into_scalar();
            for (k, (id, rank)) in param_ids(&model).into_iter().enumerate() {
                let values = grad_values(&part_grads, id, rank);
                if sums.len() <= k {
                    sums.push(values);
                } else if let (Some(sum), Some(values)) = (&mut sums[k], values) {
                    sum.iter_mut().zip(values).for_each(|(s, v)| *s += v);
                }
            }
        }
        let loss: f32 = loss.clone().into_scalar();
        assert!(
            (loss - total).abs() < 1e-5,
            "split at {split}: {loss} vs {total}"
        );
        for (k, (id, rank)) in param_ids(&model).into_iter().enumerate() {
            let (Some(expected), Some(sum)) = (grad_values(&grads, id, rank), &sums[k]) else {
                continue;
            };
            for (i, (a, b)) in expected.iter().zip(sum).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5,
                    "split at {split}, parameter {k}[{i}]: {a} vs {b}"
                );
            }
        }
    }
}
