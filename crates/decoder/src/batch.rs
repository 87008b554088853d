//! Captions laid out for teacher forcing.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use contracts::vocab::PAD;

/// A batch of captions on the device, time-major, with the positions the loss scores.
///
/// Caption `b` (`<start> w1 .. wn <end>`) gives inputs `<start> w1 .. wn` and targets
/// `w1 .. wn <end>`; positions past its end are padding and are not scored.
#[derive(Debug, Clone)]
pub struct TeacherBatch<B: Backend> {
    /// `[steps, batch]` input tokens, `PAD` after a caption's last input.
    pub inputs: Tensor<B, 2, Int>,
    /// `[tokens]` the targets of the scored positions, in row order.
    pub targets: Tensor<B, 1, Int>,
    /// `[tokens]` the rows (`t * batch + b`) of the scored positions; `None` when the captions
    /// have equal lengths and every position is scored.
    pub rows: Option<Tensor<B, 1, Int>>,
    /// `[tokens]` the caption (`b`) of each scored row; `None` with `rows`.
    pub row_captions: Option<Tensor<B, 1, Int>>,
    pub batch_size: usize,
    pub steps: usize,
    /// Number of scored positions (the loss is their mean).
    pub tokens: usize,
    /// `[tokens]` each scored position's weight in the mean (its caption's, see
    /// [`Self::weighted`]); `None`: all 1.
    pub weights: Option<Vec<f32>>,
    /// This batch's share of the captions whose mean the per-caption terms (the attention
    /// regulariser) take: 1, or less for a part of a split batch ([`Self::part_of`]).
    pub caption_share: f64,
    /// Set for captions the model sampled itself ([`Self::self_critical`]).
    pub sampled: Option<SampledPolicy>,
}

/// The distribution self-critical captions were drawn from: the model's softmax without the
/// tokens sampling bans. The loss scores the captions with the log-probabilities of that same
/// distribution (renormalised over the allowed tokens), so that its gradient is REINFORCE's
/// for the policy that was sampled; with the full softmax every banned token would get
/// `advantage * p` of gradient and, under mostly negative advantages, be pushed up step after
/// step. The objective is REINFORCE alone: per-caption regularisers of teacher forcing (the
/// attention model's doubly stochastic term) are left out, so that a constant reward leaves
/// every model unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledPolicy {
    /// Tokens that were never drawn (`<pad>`, `<start>`, and `<unk>` with `suppress_unk`).
    pub banned: Vec<u32>,
}

impl<B: Backend> TeacherBatch<B> {
    /// Lays out whole captions `<start> w1 .. wn <end>`, each at least two tokens long.
    ///
    /// # Panics
    /// On an empty batch or a caption shorter than two tokens (the trainer checks both when it
    /// reads `tokens.parquet`).
    pub fn new(captions: &[&[u32]], device: &B::Device) -> Self {
        Self::layout(captions, None, device)
    }

    /// Captions the model sampled, every position of caption `b` weighing `weights[b]` in the
    /// loss: self-critical training's `-(r - b) * sum log p` as a weighted cross-entropy over
    /// the distribution `policy` describes.
    pub fn self_critical(
        captions: &[&[u32]],
        weights: &[f32],
        policy: SampledPolicy,
        device: &B::Device,
    ) -> Self {
        assert_eq!(captions.len(), weights.len(), "one weight per caption");
        let mut batch = Self::layout(captions, Some(weights), device);
        batch.sampled = Some(policy);
        batch
    }

    /// The vocabulary columns the loss's softmax leaves out.
    pub fn banned_columns(&self) -> Vec<usize> {
        self.sampled
            .as_ref()
            .map(|policy| policy.banned.iter().map(|&t| t as usize).collect())
            .unwrap_or_default()
    }

    fn layout(captions: &[&[u32]], weights: Option<&[f32]>, device: &B::Device) -> Self {
        assert!(!captions.is_empty(), "empty batch");
        assert!(
            captions.iter().all(|c| c.len() >= 2),
            "a caption needs <start> and <end>"
        );
        let batch_size = captions.len();
        let steps = captions.iter().map(|c| c.len() - 1).max().unwrap_or(0);
        let mut inputs = vec![i64::from(PAD); steps * batch_size];
        let mut targets = Vec::with_capacity(steps * batch_size);
        let mut rows = Vec::with_capacity(steps * batch_size);
        let mut row_captions = Vec::with_capacity(steps * batch_size);
        let mut row_weights = Vec::new();
        for t in 0..steps {
            for (b, caption) in captions.iter().enumerate() {
                if t + 1 < caption.len() {
                    inputs[t * batch_size + b] = i64::from(caption[t]);
                    targets.push(i64::from(caption[t + 1]));
                    rows.push((t * batch_size + b) as i64);
                    row_captions.push(b as i64);
                    if let Some(weights) = weights {
                        row_weights.push(weights[b]);
                    }
                }
            }
        }
        let tokens = targets.len();
        let padded = tokens < steps * batch_size;
        let int1 = |values: Vec<i64>| {
            Tensor::<B, 1, Int>::from_data(TensorData::new(values, [tokens]), device)
        };
        Self {
            inputs: Tensor::from_data(TensorData::new(inputs, [steps, batch_size]), device),
            targets: int1(targets),
            rows: padded.then(|| int1(rows)),
            row_captions: padded.then(|| int1(row_captions)),
            batch_size,
            steps,
            tokens,
            weights: weights.map(|_| row_weights),
            caption_share: 1.0,
            sampled: None,
        }
    }

    /// This batch as one part of a larger one of `whole_tokens` scored positions and
    /// `whole_captions` captions, split across devices: its means become its share of the
    /// whole's means, so that the parts' losses and gradients add up to the whole's.
    pub fn part_of(mut self, whole_tokens: usize, whole_captions: usize) -> Self {
        let share = self.tokens as f32 / whole_tokens as f32;
        let weights = self
            .weights
            .take()
            .unwrap_or_else(|| vec![1.0; self.tokens]);
        self.weights = Some(weights.into_iter().map(|w| w * share).collect());
        self.caption_share = self.batch_size as f64 / whole_captions as f64;
        self
    }
}

impl<B: AutodiffBackend> TeacherBatch<B> {
    /// The same batch on the inner backend, where the hand-written passes run.
    pub fn inner(&self) -> TeacherBatch<B::InnerBackend> {
        TeacherBatch {
            inputs: self.inputs.clone().inner(),
            targets: self.targets.clone().inner(),
            rows: self.rows.clone().map(Tensor::inner),
            row_captions: self.row_captions.clone().map(Tensor::inner),
            batch_size: self.batch_size,
            steps: self.steps,
            tokens: self.tokens,
            weights: self.weights.clone(),
            caption_share: self.caption_share,
            sampled: self.sampled.clone(),
        }
    }
}
