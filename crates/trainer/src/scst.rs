//! Self-critical sequence training (Rennie et al. 2017): after the cross-entropy epochs, the
//! model is trained on its own samples, rewarded with their CIDEr-D.
//!
//! For each train image the model samples `trainer.scst_samples` captions (multinomial, from
//! the epoch's seeded generator); each sample's advantage is its CIDEr-D against the image's
//! train references minus a baseline: the mean reward of the image's other samples, or the
//! reward of its greedy caption. The loss `-(r - b) * sum_t log p(w_t)` over the sampled
//! tokens is a cross-entropy on the samples with each caption weighted by its advantage, so it
//! runs on the same fused kernel as teacher forcing. Sampling and the loss both use the model
//! without dropout, so the gradient is REINFORCE's for the distribution that was sampled.

use contracts::Vocabulary;
use decoder::Sampled;
use metrics::CiderD;

/// The rewards of one step's samples and what the update weighs them by.
#[derive(Debug, Clone, PartialEq)]
pub struct Rewards {
    /// CIDEr-D of each sample, image by image (`samples` per image).
    pub rewards: Vec<f64>,
    /// Reward minus baseline, in the same order.
    pub advantages: Vec<f64>,
}

impl Rewards {
    /// Scores `samples` (`per_image` consecutive samples of each of `images`, indices into the
    /// scorer's reference sets) and subtracts the baseline: for `Mean`, the mean of the image's
    /// other samples; for `Greedy`, `greedy_rewards[i]`.
    pub fn new(
        scorer: &CiderD<'_>,
        vocab: &Vocabulary,
        images: &[usize],
        samples: &[Sampled],
        per_image: usize,
        greedy_rewards: Option<&[f64]>,
    ) -> Self {
        let rewards: Vec<f64> = samples
            .iter()
            .enumerate()
            .map(|(i, s)| reward(scorer, vocab, images[i / per_image], &s.tokens))
            .collect();
        let advantages = rewards
            .chunks(per_image)
            .enumerate()
            .flat_map(|(image, group)| {
                let total: f64 = group.iter().sum();
                group.iter().map(move |&r| match greedy_rewards {
                    Some(greedy) => r - greedy[image],
                    None => r - (total - r) / (per_image - 1) as f64,
                })
            })
            .collect();
        Self {
            rewards,
            advantages,
        }
    }

    pub fn mean_reward(&self) -> f64 {
        mean(&self.rewards)
    }

    pub fn mean_advantage(&self) -> f64 {
        mean(&self.advantages)
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// CIDEr-D of a caption's word ids against image `image`'s references.
pub fn reward(scorer: &CiderD<'_>, vocab: &Vocabulary, image: usize, ids: &[u32]) -> f64 {
    let words: Vec<&str> = ids.iter().filter_map(|&id| vocab.token(id)).collect();
    scorer.score(image, &words)
}

/// The per-caption weights of the weighted cross-entropy whose gradient is REINFORCE's
/// `-(1/N) sum_n A_n sum_t grad log p(w_nt)`: the kernel averages over the `tokens` scored
/// positions, so each caption's positions weigh `A_n * tokens / N`.
pub fn caption_weights(advantages: &[f64], sequences: &[Vec<u32>]) -> Vec<f32> {
    let tokens: usize = sequences.iter().map(|s| s.len() - 1).sum();
    let scale = tokens as f64 / sequences.len() as f64;
    advantages.iter().map(|&a| (a * scale) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::optim::{GradientsParams, Optimizer};
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Int, Tensor, TensorData};
    use decoder::attention::AttentionConfig;
    use decoder::captioner::Architecture;
    use decoder::merge::{MergeConfig, MergeModel};
    use decoder::{
        Captioner, CaptionerConfig, FeatureStats, Images, SampledPolicy, TeacherBatch, Trainable,
        banned_tokens,
    };
    use kernels::Cpu;

    type AD = Autodiff<Cpu>;

    fn model() -> MergeModel<AD> {
        let config = MergeConfig {
            vocab_size: 9,
            feature_dim: 6,
            embed_dim: 5,
            hidden_dim: 7,
            dropout: 0.0,
            merge: true,
        };
        config
            .init::<AD>(&FeatureStats::identity(6), 4, &Default::default())
            .unwrap()
    }

    /// Both decoders, as the trainer holds them.
    fn captioners() -> Vec<Captioner<AD>> {
        let merge = CaptionerConfig::Merge(MergeConfig {
            vocab_size: 9,
            feature_dim: 6,
            embed_dim: 5,
            hidden_dim: 7,
            dropout: 0.0,
            merge: true,
        });
        let attention = CaptionerConfig::Attention(AttentionConfig {
            vocab_size: 9,
            feature_dim: 6,
            embed_dim: 5,
            hidden_dim: 7,
            attention_dim: 3,
            dropout: 0.0,
            attention_reg: 1.0,
        });
        [merge, attention]
            .iter()
            .map(|c| {
                c.init(&FeatureStats::identity(6), 4, &Default::default())
                    .unwrap()
            })
            .collect()
    }

    /// `n` images of 4 regions, and their mean as the pooled vector.
    fn images(n: usize) -> Images<AD> {
        let values: Vec<f32> = (0..n * 4 * 6)
            .map(|i| ((i * 7 % 5) as f32 - 2.0) / 2.0)
            .collect();
        let grid =
            Tensor::<AD, 3>::from_data(TensorData::new(values, [n, 4, 6]), &Default::default());
        Images {
            pooled: grid.clone().mean_dim(1).reshape([n, 6]),
            grid: Some(grid),
        }
    }

    /// A caption that ended, one cut at the length limit, and one that ended at once.
    fn sequences() -> Vec<Vec<u32>> {
        vec![vec![1, 5, 6, 2], vec![1, 7, 8], vec![1, 2]]
    }

    /// `-(1/N) sum_n A_n sum_t log p(w_nt)` by autodiff through the reference forward pass, `p`
    /// the sampled policy: the softmax renormalised over the tokens sampling allows.
    fn reinforce(model: &MergeModel<AD>, advantages: &[f64]) -> GradientsParams {
        let device = Default::default();
        let sequences = sequences();
        let steps = sequences.iter().map(|s| s.len() - 1).max().unwrap();
        let mut inputs = vec![0i64; sequences.len() * steps];
        for (n, s) in sequences.iter().enumerate() {
            for t in 0..s.len() - 1 {
                inputs[n * steps + t] = i64::from(s[t]);
            }
        }
        let inputs = Tensor::<AD, 2, Int>::from_data(
            TensorData::new(inputs, [sequences.len(), steps]),
            &device,
        );
        // The policy that was sampled: the softmax without the banned tokens.
        let mut mask = vec![0f32; 9];
        for token in banned_tokens(true) {
            mask[token as usize] = f32::NEG_INFINITY;
        }
        let mask = Tensor::<AD, 1>::from_data(TensorData::new(mask, [9]), &device);
        let logits = model.forward(images(3).pooled, inputs, None);
        let log_probs = log_softmax(logits + mask.unsqueeze::<3>(), 2);
        let mut loss = Tensor::<AD, 1>::zeros([1], &device);
        for (n, s) in sequences.iter().enumerate() {
            for t in 0..s.len() - 1 {
                let picked = log_probs
                    .clone()
                    .slice([n..n + 1, t..t + 1, s[t + 1] as usize..s[t + 1] as usize + 1])
                    .reshape([1]);
                let factor = -advantages[n] / sequences.len() as f64;
                loss = loss + picked.mul_scalar(factor);
            }
        }
        GradientsParams::from_grads(loss.backward(), model)
    }

    /// The self-critical step's gradients, as the trainer forms them.
    fn weighted<M: Trainable<AD>>(model: &M, advantages: &[f64]) -> GradientsParams {
        let sequences = sequences();
        let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
        let weights = caption_weights(advantages, &sequences);
        let policy = SampledPolicy {
            banned: banned_tokens(true),
        };
        let batch = TeacherBatch::<AD>::self_critical(&refs, &weights, policy, &Default::default());
        model.loss_and_grads(&images(3), &batch, None).1
    }

    /// Every parameter's gradient, in module order (zeros where one has none).
    fn gradients<M: Module<AD>>(model: &M, grads: &GradientsParams) -> Vec<Vec<f32>> {
        struct Collect<'a>(&'a GradientsParams, Vec<Vec<f32>>);
        impl ModuleVisitor<AD> for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AD, D>>) {
                let values = match self.0.get::<Cpu, D>(param.id) {
                    Some(grad) => grad.into_data().to_vec().unwrap(),
                    None => vec![0.0; param.val().shape().num_elements()],
                };
                self.1.push(values);
            }
        }
        let mut collect = Collect(grads, Vec::new());
        model.visit(&mut collect);
        collect.1
    }

    #[test]
    fn the_weighted_cross_entropy_gradient_is_reinforce() {
        let model = model();
        let advantages = [0.7, -1.3, 0.4];
        let ours = gradients(&model, &weighted(&model, &advantages));
        let expected = gradients(&model, &reinforce(&model, &advantages));
        let mut compared = 0;
        for (a, b) in ours.iter().zip(&expected) {
            let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 2e-4 * scale, "{x} vs {y}");
                compared += 1;
            }
        }
        assert!(compared > 100 && expected.iter().flatten().any(|&g| g != 0.0));
    }

    #[test]
    fn baselines_subtract_the_other_samples_mean_or_the_greedy_reward() {
        let references = vec![vec![vec!["a", "dog"]], vec![vec!["a", "cat"]]];
        let scorer = CiderD::new(&references);
        let vocab = Vocabulary::with_words(["a", "dog", "cat"]);
        let sampled = |tokens: &[u32]| Sampled {
            tokens: tokens.to_vec(),
            ended: true,
        };
        let samples = [
            sampled(&[4, 5]),
            sampled(&[4, 6]),
            sampled(&[4, 6]),
            sampled(&[4, 5]),
        ];
        let mean = Rewards::new(&scorer, &vocab, &[0, 1], &samples, 2, None);
        let r = mean.rewards.clone();
        assert!(r[0] > r[1] && r[2] > r[3], "{r:?}");
        assert_eq!(
            mean.advantages,
            [r[0] - r[1], r[1] - r[0], r[2] - r[3], r[3] - r[2]]
        );
        let greedy = Rewards::new(&scorer, &vocab, &[0, 1], &samples, 2, Some(&[1.0, 2.0]));
        assert_eq!(
            greedy.advantages,
            [r[0] - 1.0, r[1] - 1.0, r[2] - 2.0, r[3] - 2.0]
        );
    }

    #[test]
    fn a_constant_reward_leaves_the_model_unchanged() {
        // Three identical samples of one image: equal rewards, zero advantages.
        let references = vec![vec![vec!["a", "dog"]], vec![vec!["a", "cat"]]];
        let scorer = CiderD::new(&references);
        let vocab = Vocabulary::with_words(["a", "dog", "cat"]);
        let same = Sampled {
            tokens: vec![4, 5],
            ended: true,
        };
        let rewards = Rewards::new(
            &scorer,
            &vocab,
            &[0],
            &[same.clone(), same.clone(), same],
            3,
            None,
        );
        assert!(rewards.mean_reward() > 0.0);
        assert!(rewards.advantages.iter().all(|&a| a == 0.0));
        for model in captioners() {
            let kind = model.config().kind();
            let before = gradients(&model, &GradientsParams::new());
            let grads = weighted(&model, &rewards.advantages);
            assert!(
                gradients(&model, &grads)
                    .iter()
                    .flatten()
                    .all(|&g| g == 0.0),
                "{kind}"
            );
            let mut optim = kernels::adam::Adam::new(1e-8).init::<AD, Captioner<AD>>();
            let stepped = optim.step(1e-3, model.clone(), grads);
            struct Values(Vec<Vec<f32>>);
            impl ModuleVisitor<AD> for Values {
                fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AD, D>>) {
                    self.0.push(param.val().into_data().to_vec().unwrap());
                }
            }
            let (mut a, mut b) = (Values(Vec::new()), Values(Vec::new()));
            model.visit(&mut a);
            stepped.visit(&mut b);
            assert_eq!(a.0, b.0, "{kind}");
            assert_eq!(before.len(), a.0.len(), "{kind}");
        }
    }
}
