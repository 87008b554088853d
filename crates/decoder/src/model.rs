//! The caption-model abstraction: what the trainer, the search, the evaluator and `caption`
//! need of a model, whichever it is.
//!
//! A caption model is two things: [`CaptionModel`] for decoding and validation (start from a
//! batch of images, step word by word, score a teacher-forced batch) and [`Trainable`] for
//! training (the teacher-forced loss and every parameter's gradient).

use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use contracts::ContractError;
use contracts::grid::GridStore;
use contracts::tables::FEATURE_DIM;
use rand::RngCore;

use crate::TeacherBatch;

/// A batch of images as a caption model reads them.
#[derive(Debug, Clone)]
pub struct Images<B: Backend> {
    /// `[batch, feature_dim]` pooled ResNet50 vectors, raw (a model standardises them).
    pub pooled: Tensor<B, 2>,
    /// `[batch, regions, feature_dim]` the feature map before pooling, region-major, raw; only
    /// the attention model reads it.
    pub grid: Option<Tensor<B, 3>>,
}

impl<B: Backend> Images<B> {
    /// Pooled vectors only.
    pub fn pooled(pooled: Tensor<B, 2>) -> Self {
        Self { pooled, grid: None }
    }

    /// Rows `rows` of the stored features: the pooled vectors of `pooled` (row-major,
    /// [`FEATURE_DIM`] each), and the grids of `grid` when the model reads them. The one place
    /// a decoder's input is built from the featurizer's outputs (the trainer's batches, the
    /// evaluator's split), so the host tables are the only copy of the features.
    pub fn from_rows(
        pooled: &[f32],
        grid: Option<&GridStore>,
        rows: &[usize],
        device: &B::Device,
    ) -> Result<Self, ContractError> {
        let n = rows.len();
        let mut values = Vec::with_capacity(n * FEATURE_DIM);
        for &row in rows {
            values.extend_from_slice(&pooled[row * FEATURE_DIM..(row + 1) * FEATURE_DIM]);
        }
        let pooled = Tensor::from_data(TensorData::new(values, [n, FEATURE_DIM]), device);
        let grid = match grid {
            Some(store) => {
                let shape = store.shape();
                Some(Tensor::from_data(
                    TensorData::new(store.read(rows)?, [n, shape.regions(), shape.channels]),
                    device,
                ))
            }
            None => None,
        };
        Ok(Self { pooled, grid })
    }

    /// The images of a network's output, for `caption`: the pooled vectors `[batch, channels]`
    /// and the feature map `[batch, channels, height, width]`, laid out as the grid's regions
    /// (row-major over the map, as the featurizer stores them).
    pub fn from_network(pooled: Tensor<B, 2>, map: Tensor<B, 4>) -> Self {
        let [images, channels, height, width] = map.dims();
        let grid = map
            .reshape([images, channels, height * width])
            .swap_dims(1, 2);
        Self {
            pooled,
            grid: Some(grid),
        }
    }

    pub fn len(&self) -> usize {
        self.pooled.dims()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What decoding carries from one step to the next, for a batch of partial captions.
pub trait DecodeState<B: Backend>: Sized {
    /// Keeps the rows `indices` (`[n]`, repeats allowed): copies an image's state to its
    /// beams or samples, drops finished captions, reorders beams.
    fn select(self, indices: Tensor<B, 1, Int>) -> Self;

    /// `[rows, regions]` where the last step looked, for a model with attention.
    fn attention(&self) -> Option<Tensor<B, 2>> {
        None
    }
}

/// What decoding and validation need of a caption model.
pub trait CaptionModel<B: Backend> {
    type State: DecodeState<B>;

    /// Tokens it can produce, special tokens included.
    fn vocab_size(&self) -> usize;

    /// Starts decoding `images`; the state holds one row per image.
    fn start(&self, images: &Images<B>) -> Self::State;

    /// One decoding step: each row's previous token (`[rows]`, `<start>` first) ->
    /// `[rows, vocab]` log-probabilities of the next, and the new state.
    fn step(&self, tokens: Tensor<B, 1, Int>, state: Self::State) -> (Tensor<B, 2>, Self::State);

    /// Mean cross-entropy of the batch's scored tokens, without dropout and without
    /// gradients (the validation loss); `[1]`.
    fn loss(&self, images: &Images<B>, batch: &TeacherBatch<B>) -> Tensor<B, 1>;
}

/// Training a caption model: one teacher-forced batch's loss and gradients.
pub trait Trainable<B: AutodiffBackend>: CaptionModel<B> {
    /// The batch's mean cross-entropy (`[1]`, on the inner backend) and the gradient of every
    /// parameter, ready for `Optimizer::step`. Dropout masks are drawn from `rng`; `None`
    /// trains without dropout.
    fn loss_and_grads(
        &self,
        images: &Images<B>,
        batch: &TeacherBatch<B>,
        rng: Option<&mut (dyn RngCore + '_)>,
    ) -> (Tensor<B::InnerBackend, 1>, GradientsParams);
}
