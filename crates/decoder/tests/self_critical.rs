//! Self-critical batches, for every decoder: the fused training pass must give the gradient of
//! REINFORCE on the distribution that was sampled (the softmax renormalised over the tokens
//! sampling allows), computed here by burn's autodiff alone, and a batch whose advantages are
//! all zero (a constant reward) must give no gradient at all, regulariser included.

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Tensor, TensorData};
use decoder::attention::{AttentionConfig, AttentionModel};
use decoder::captioner::Architecture;
use decoder::merge::{MergeConfig, MergeModel};
use decoder::transformer::{TransformerConfig, TransformerModel};
use decoder::{FeatureStats, Images, SampledPolicy, TeacherBatch, Trainable, banned_tokens};

type B = kernels::Cpu;
type AD = Autodiff<B>;

const VOCAB: usize = 11;
const FEATURES: usize = 6;
const REGIONS: usize = 4;

/// What the test needs of a model besides training: its logits through autodiff alone.
trait Reference: Trainable<AD> + AutodiffModule<AD> {
    fn logits(&self, images: &Images<AD>, batch: &TeacherBatch<AD>) -> Tensor<AD, 2>;
}

impl Reference for MergeModel<AD> {
    fn logits(&self, images: &Images<AD>, batch: &TeacherBatch<AD>) -> Tensor<AD, 2> {
        self.reference_logits(images, batch, None)
    }
}

impl Reference for AttentionModel<AD> {
    fn logits(&self, images: &Images<AD>, batch: &TeacherBatch<AD>) -> Tensor<AD, 2> {
        self.reference_logits(images, batch, None)
    }
}

impl Reference for TransformerModel<AD> {
    fn logits(&self, images: &Images<AD>, batch: &TeacherBatch<AD>) -> Tensor<AD, 2> {
        self.reference_logits(images, batch, None)
    }
}

fn stats() -> FeatureStats {
    FeatureStats {
        mean: vec![0.3; FEATURES],
        std: vec![0.7; FEATURES],
    }
}

fn merge() -> MergeModel<AD> {
    let config = MergeConfig {
        vocab_size: VOCAB,
        feature_dim: FEATURES,
        embed_dim: 5,
        hidden_dim: 7,
        dropout: 0.5,
        merge: true,
    };
    config.init(&stats(), 4, &Default::default()).unwrap()
}

fn attention() -> AttentionModel<AD> {
    let config = AttentionConfig {
        vocab_size: VOCAB,
        feature_dim: FEATURES,
        embed_dim: 5,
        hidden_dim: 7,
        attention_dim: 3,
        dropout: 0.5,
        attention_reg: 1.0,
    };
    config.init(&stats(), 4, &Default::default()).unwrap()
}

fn transformer() -> TransformerModel<AD> {
    let config = TransformerConfig {
        vocab_size: VOCAB,
        feature_dim: FEATURES,
        d_model: 8,
        heads: 2,
        feed_forward: 12,
        encoder_layers: 1,
        decoder_layers: 2,
        dropout: 0.1,
    };
    config.init(&stats(), 4, &Default::default()).unwrap()
}

fn images(batch: usize) -> Images<AD> {
    let grid: Vec<f32> = (0..batch * REGIONS * FEATURES)
        .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
        .collect();
    let grid = Tensor::<AD, 3>::from_data(
        TensorData::new(grid, [batch, REGIONS, FEATURES]),
        &Default::default(),
    );
    Images {
        pooled: grid.clone().mean_dim(1).reshape([batch, FEATURES]),
        grid: Some(grid),
    }
}

/// Sampled captions: one that ended, one cut at the length limit, one that ended at once.
fn samples() -> Vec<Vec<u32>> {
    vec![vec![1, 5, 6, 9, 2], vec![1, 7, 8], vec![1, 2]]
}

/// The self-critical batch of `samples()` with caption weights `weights`.
fn batch(weights: &[f32]) -> TeacherBatch<AD> {
    let samples = samples();
    let refs: Vec<&[u32]> = samples.iter().map(Vec::as_slice).collect();
    let policy = SampledPolicy {
        banned: banned_tokens(true),
    };
    TeacherBatch::self_critical(&refs, weights, policy, &Default::default())
}

/// `-(1/tokens) sum over scored positions of weight * log p(target)`, `p` the softmax
/// renormalised over the tokens that are not banned, by autodiff.
fn reinforce<M: Reference>(model: &M, weights: &[f32]) -> GradientsParams {
    let batch = batch(weights);
    let mut mask = vec![0f32; VOCAB];
    for token in banned_tokens(true) {
        mask[token as usize] = f32::NEG_INFINITY;
    }
    let mask = Tensor::<AD, 1>::from_data(TensorData::new(mask, [VOCAB]), &Default::default());
    let logits = model.logits(&images(3), &batch) + mask.unsqueeze_dim(0);
    let targets = batch.targets.clone().reshape([batch.tokens, 1]);
    let picked = log_softmax(logits, 1)
        .gather(1, targets)
        .reshape([batch.tokens]);
    let row_weights = batch.weights.clone().unwrap();
    let row_weights = Tensor::<AD, 1>::from_data(
        TensorData::new(row_weights, [batch.tokens]),
        &Default::default(),
    );
    let loss = (picked * row_weights).neg().mean();
    GradientsParams::from_grads(loss.backward(), model)
}

fn fused<M: Reference>(model: &M, weights: &[f32]) -> GradientsParams {
    model.loss_and_grads(&images(3), &batch(weights), None).1
}

/// Every parameter's gradient, in module order (`None` where one has none).
fn gradients<M: Module<AD>>(model: &M, grads: &GradientsParams) -> Vec<Option<Vec<f32>>> {
    struct Collect<'a>(&'a GradientsParams, Vec<Option<Vec<f32>>>);
    impl ModuleVisitor<AD> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AD, D>>) {
            let values = self
                .0
                .get::<B, D>(param.id)
                .map(|grad| grad.into_data().to_vec().unwrap());
            self.1.push(values);
        }
    }
    let mut collect = Collect(grads, Vec::new());
    model.visit(&mut collect);
    collect.1
}

/// Per-caption weights with mixed signs, as advantages are.
const WEIGHTS: [f32; 3] = [0.9, -1.7, 0.4];

fn the_step_is_reinforce_on_the_sampled_policy<M: Reference>(name: &str, model: M) {
    let ours = gradients(&model, &fused(&model, &WEIGHTS));
    let expected = gradients(&model, &reinforce(&model, &WEIGHTS));
    let mut compared = 0;
    for (k, (a, b)) in ours.iter().zip(&expected).enumerate() {
        let Some(b) = b else { continue };
        let a = a
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no gradient for parameter {k}"));
        let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 2e-4 * scale + 1e-7,
                "{name} parameter {k}[{i}]: fused {x} vs autodiff {y} (max |g| {scale})"
            );
            compared += 1;
        }
    }
    assert!(compared > 200, "{name}: {compared} values compared");
    // The banned tokens' output rows get no gradient: they are outside the policy.
    let output_bias = ours
        .iter()
        .flatten()
        .find(|g| g.len() == VOCAB)
        .expect("the output layer's bias");
    for token in banned_tokens(true) {
        assert_eq!(output_bias[token as usize], 0.0, "{name}: token {token}");
    }
}

#[test]
fn the_merge_models_self_critical_step_is_reinforce_on_the_sampled_policy() {
    the_step_is_reinforce_on_the_sampled_policy("merge", merge());
}

#[test]
fn the_attention_models_self_critical_step_is_reinforce_on_the_sampled_policy() {
    the_step_is_reinforce_on_the_sampled_policy("attention", attention());
}

#[test]
fn the_transformers_self_critical_step_is_reinforce_on_the_sampled_policy() {
    the_step_is_reinforce_on_the_sampled_policy("transformer", transformer());
}

fn zero_advantages_give_no_gradient<M: Reference>(name: &str, model: M) {
    let grads = gradients(&model, &fused(&model, &[0.0; 3]));
    let nonzero: Vec<usize> = grads
        .iter()
        .enumerate()
        .filter(|(_, g)| g.as_ref().is_some_and(|g| g.iter().any(|&x| x != 0.0)))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        nonzero,
        Vec::<usize>::new(),
        "{name}: parameters with a gradient"
    );
}

#[test]
fn a_constant_reward_gives_the_merge_model_no_gradient() {
    zero_advantages_give_no_gradient("merge", merge());
}

#[test]
fn a_constant_reward_gives_the_attention_model_no_gradient_regulariser_included() {
    zero_advantages_give_no_gradient("attention", attention());
}

#[test]
fn a_constant_reward_gives_the_transformer_no_gradient() {
    zero_advantages_give_no_gradient("transformer", transformer());
}

/// The same captions teacher-forced keep the attention model's regulariser: its gradient
/// reaches the attention layers even with every caption weighing zero.
#[test]
fn teacher_forcing_keeps_the_attention_regulariser() {
    let model = attention();
    let samples = samples();
    let refs: Vec<&[u32]> = samples.iter().map(Vec::as_slice).collect();
    let mut teacher = TeacherBatch::<AD>::new(&refs, &Default::default());
    teacher.weights = Some(vec![0.0; teacher.tokens]);
    let grads = model.loss_and_grads(&images(3), &teacher, None).1;
    let score = grads
        .get::<B, 2>(model.score.weight.id)
        .unwrap()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert!(score.iter().any(|&g| g != 0.0), "{score:?}");
}
