//! Data-parallel steps, gradient by gradient: after the all-reduce every replica must hold the
//! gradient the whole batch has on one device, for both decoders, for a cross-entropy batch
//! and for a weighted self-critical one, with 2 and 3 devices (and an idle one when the batch
//! is smaller than the devices). Comparing parameters' gradients rather than epoch losses
//! makes the bound relative to each gradient, also where a self-critical loss is near zero.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use contracts::WorkDir;
use contracts::config::{
    AttentionSettings, DecoderKind, ModelConfig, TrainerConfig, TransformerSettings,
};
use decoder::{CaptionerConfig, SampledPolicy, banned_tokens};
use trainer::Dataset;
use trainer::parallel::{Peers, reduced_gradients};
use trainer::replica::Replica;
use trainer::step::{Train, Work};
use trainer::trainer::adam;

type B = models::backend::Cpu;
type AD = Train<B>;

/// Every parameter's gradient in module order (`None` where one has none).
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

/// The largest difference between `split` and `one`, relative to each parameter's largest
/// gradient; panics when a parameter has a gradient in one and not the other. A parameter
/// whose gradient is under `ZERO` of the model's largest on both sides counts as equal: its
/// exact gradient is 0 and its float one rounding noise, as for the attention score's bias
/// (a softmax ignores a shift shared by every score), measured at 1e-10 to 2e-7 of the
/// largest.
fn worst(one: &[Option<Vec<f32>>], split: &[Option<Vec<f32>>], what: &str) -> f32 {
    const ZERO: f32 = 1e-6;
    let largest = |grads: &[f32]| grads.iter().fold(0f32, |m, x| m.max(x.abs()));
    let model_largest = one
        .iter()
        .flatten()
        .map(|a| largest(a))
        .fold(0f32, f32::max);
    let mut worst = 0f32;
    for (k, (a, b)) in one.iter().zip(split).enumerate() {
        match (a, b) {
            (Some(a), Some(b)) => {
                let scale = largest(a);
                if scale.max(largest(b)) < ZERO * model_largest {
                    continue;
                }
                for (x, y) in a.iter().zip(b) {
                    worst = worst.max((x - y).abs() / scale);
                }
            }
            (None, None) => {}
            _ => panic!("{what}: parameter {k} has a gradient on one side only"),
        }
    }
    worst
}

#[test]
fn replicas_hold_the_whole_batchs_gradient_after_the_all_reduce() {
    let fixture = common::dataset_with_grid([2, 1, 0], 21);
    let data = Dataset::load(&WorkDir::new(fixture.work_dir()), true).unwrap();
    let device = Default::default();
    let stats = data.train_feature_stats().unwrap();
    for &decoder in DecoderKind::ALL {
        let model = ModelConfig {
            decoder,
            embed_dim: 8,
            hidden_dim: 12,
            dropout: 0.0,
            attention: AttentionSettings {
                dim: 16,
                doubly_stochastic: 1.0,
            },
            transformer: TransformerSettings {
                d_model: 16,
                heads: 4,
                feed_forward: 32,
                encoder_layers: 1,
                decoder_layers: 1,
                dropout: 0.0,
            },
            ..ModelConfig::default()
        };
        let config = CaptionerConfig::from_pipeline(&model, data.vocab.len());
        let model = config.init::<AD>(&stats, 3, &device).unwrap();
        let replica = Replica::new(model, adam(&TrainerConfig::default()).init(), &device);
        for (batch, devices) in [(7, 2), (7, 3), (2, 3)] {
            let captions = &data.train[..batch];
            // Advantages of both signs, as self-critical weights are.
            let weights: Vec<f32> = (0..batch).map(|i| 0.8 - 0.35 * i as f32).collect();
            for sampled in [
                None,
                Some((
                    weights,
                    SampledPolicy {
                        banned: banned_tokens(true),
                    },
                )),
            ] {
                let kind = if sampled.is_some() {
                    "self-critical"
                } else {
                    "cross-entropy"
                };
                let work = Work {
                    rows: captions.iter().map(|c| c.image).collect(),
                    captions: captions.iter().map(|c| c.tokens.as_slice()).collect(),
                    sampled,
                };
                let what = format!("{decoder:?}, {kind}, {batch} captions on {devices} devices");
                let (loss, whole) = replica.gradients(&data, &work, None, None);
                let one = gradients(&replica.model, &whole);
                let peers = Peers::<B>::register(&vec![device; devices]).unwrap();
                let replicas = (0..devices).map(|_| replica.fork(&device)).collect();
                let (reduced, step) = reduced_gradients(replicas, &data, &work, None);
                drop(peers);
                assert!(
                    (step.loss - loss).abs() <= 1e-5 * loss.abs().max(1e-3),
                    "{what}: loss {} against {loss}",
                    step.loss
                );
                assert_eq!(reduced.len(), devices);
                for (peer, (split, grads)) in reduced.iter().enumerate() {
                    let worst = worst(&one, &gradients(&split.model, grads), &what);
                    assert!(
                        worst <= 1e-5,
                        "{what}, device {peer}: {worst:e} of the largest"
                    );
                }
            }
        }
    }
}
