//! The fused training loss (hand-written LSTM and output-layer backward) must give the loss and
//! gradients that plain autodiff gives for the reference `MergeModel::reference_logits`, with
//! dropout off and on (the reference draws the same masks in the same order).

use burn::backend::Autodiff;
use burn::module::{Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use decoder::captioner::Architecture;
use decoder::merge::{MergeConfig, MergeModel, cross_entropy};
use decoder::{CaptionModel, FeatureStats, Images, TeacherBatch, Trainable};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

type B = kernels::Cpu;
type AD = Autodiff<B>;

fn config(merge: bool, dropout: f64) -> MergeConfig {
    MergeConfig {
        vocab_size: 13,
        feature_dim: 6,
        embed_dim: 5,
        hidden_dim: 7,
        dropout,
        merge,
    }
}

fn features(batch: usize) -> Tensor<AD, 2> {
    let values: Vec<f32> = (0..batch * 6)
        .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
        .collect();
    Tensor::from_data(TensorData::new(values, [batch, 6]), &Default::default())
}

/// Dropout masks from `seed`, or none.
fn masks(seed: Option<u64>) -> Option<ChaCha8Rng> {
    seed.map(ChaCha8Rng::seed_from_u64)
}

/// Reference loss: autodiff through `reference_logits`, dropout drawn from `seed`.
fn reference(
    model: &MergeModel<AD>,
    batch: &TeacherBatch<AD>,
    seed: Option<u64>,
) -> (f32, GradientsParams) {
    let mut rng = masks(seed);
    let images = Images::pooled(features(batch.batch_size));
    let logits =
        model.reference_logits(&images, batch, rng.as_mut().map(|r| r as &mut dyn RngCore));
    let loss = cross_entropy(logits, batch.targets.clone());
    let value = loss.clone().into_scalar();
    (value, GradientsParams::from_grads(loss.backward(), model))
}

fn params<const D: usize>(model: &MergeModel<AD>) -> Vec<(&'static str, ParamId)> {
    let mut out = vec![
        ("image_proj.weight", model.image_proj.weight.id),
        ("embedding.weight", model.embedding.weight.id),
        ("lstm.input_weight", model.lstm.input_weight.id),
        ("lstm.hidden_weight", model.lstm.hidden_weight.id),
        ("output.weight", model.output.weight.id),
    ];
    if let Some(layer) = &model.output_image {
        out.push(("output_image.weight", layer.weight.id));
    }
    let _ = D;
    out
}

fn assert_close<const D: usize>(name: &str, a: Tensor<B, D>, b: Tensor<B, D>) {
    let a: Vec<f32> = a.into_data().to_vec().unwrap();
    let b: Vec<f32> = b.into_data().to_vec().unwrap();
    assert_eq!(a.len(), b.len(), "{name}");
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 2e-4 * scale,
            "{name}[{i}]: fused {x} vs autodiff {y} (max |g| {scale})"
        );
    }
}

/// Compares the fused pass with the reference and returns the fused gradients of the output
/// layer's weight (to tell dropout masks apart).
fn check(merge: bool, dropout: f64, seed: Option<u64>, captions: Vec<Vec<u32>>) -> Vec<f32> {
    let device = Default::default();
    let model = config(merge, dropout)
        .init::<AD>(&FeatureStats::identity(6), 5, &device)
        .unwrap();
    let refs: Vec<&[u32]> = captions.iter().map(Vec::as_slice).collect();
    let batch = TeacherBatch::<AD>::new(&refs, &device);
    let (expected_loss, expected) = reference(&model, &batch, seed);
    let mut rng = masks(seed);
    let (loss, grads) = model.loss_and_grads(
        &Images::pooled(features(captions.len())),
        &batch,
        rng.as_mut().map(|r| r as &mut dyn RngCore),
    );
    let loss: f32 = loss.into_scalar();
    assert!(
        (loss - expected_loss).abs() < 1e-5,
        "loss {loss} vs {expected_loss}"
    );
    for (name, id) in params::<2>(&model) {
        let a = grads
            .get::<B, 2>(id)
            .unwrap_or_else(|| panic!("fused: no gradient for {name}"));
        let b = expected
            .get::<B, 2>(id)
            .unwrap_or_else(|| panic!("autodiff: no gradient for {name}"));
        assert_close(name, a, b);
    }
    let biases: Vec<(&str, Param<Tensor<AD, 1>>)> = vec![
        ("image_proj.bias", model.image_proj.bias.clone().unwrap()),
        ("lstm.bias", model.lstm.bias.clone()),
        ("output.bias", model.output.bias.clone().unwrap()),
    ];
    for (name, param) in biases {
        let a = grads
            .get::<B, 1>(param.id)
            .unwrap_or_else(|| panic!("fused: no gradient for {name}"));
        let b = expected.get::<B, 1>(param.id).unwrap();
        assert_close(name, a, b);
    }
    if seed.is_none() {
        // The validation loss (no gradients, no dropout) agrees too.
        let inner = burn::module::AutodiffModule::valid(&model);
        let plain = TeacherBatch::<B>::new(&refs, &device);
        let f = features(captions.len()).inner();
        let value: f32 = inner.loss(&Images::pooled(f), &plain).into_scalar();
        assert!(
            (value - expected_loss).abs() < 1e-5,
            "validation loss {value} vs {expected_loss}"
        );
    }
    grads
        .get::<B, 2>(model.output.weight.id)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap()
}

fn padded() -> Vec<Vec<u32>> {
    vec![vec![1, 5, 6, 2], vec![1, 7, 8, 9, 10, 2], vec![1, 4, 2]]
}

#[test]
fn fused_gradients_match_autodiff_with_padding() {
    check(true, 0.0, None, padded());
}

#[test]
fn fused_gradients_match_autodiff_equal_lengths() {
    check(
        true,
        0.0,
        None,
        vec![vec![1, 5, 6, 11, 2], vec![1, 7, 8, 9, 2]],
    );
}

#[test]
fn fused_gradients_match_autodiff_without_merge() {
    check(
        false,
        0.0,
        None,
        vec![vec![1, 5, 6, 2], vec![1, 7, 8, 9, 12, 2]],
    );
}

#[test]
fn fused_gradients_match_autodiff_with_dropout_on() {
    let one = check(true, 0.5, Some(9), padded());
    check(false, 0.5, Some(9), padded());
    check(
        true,
        0.3,
        Some(2),
        vec![vec![1, 5, 6, 11, 2], vec![1, 7, 8, 9, 2]],
    );
    // Dropout is really on: other masks give other gradients.
    assert_ne!(
        one,
        check(true, 0.5, Some(10), padded()),
        "the masks made no difference"
    );
}
