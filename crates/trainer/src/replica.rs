//! [`Replica`]: a copy of the model in training, with its optimizer and the image features,
//! on one device. One device trains one replica; data-parallel training ([`crate::parallel`])
//! keeps one per device, all with the same weights.

use std::ops::Range;

use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use contracts::tables::FEATURE_DIM;
use decoder::{Captioner, Images, TeacherBatch, Trainable};
use kernels::clip::clip_global_norm;
use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::Optim;
use crate::data::Dataset;
use crate::trainer::Train;

/// A model with its optimizer and every image's pooled vector, on one device.
pub struct Replica<B: Backend> {
    pub model: Captioner<Train<B>>,
    pub optim: Optim<Train<B>>,
    /// Every image's raw vector on the device, once; batches select their rows.
    features: Tensor<B, 2>,
    pub device: B::Device,
}

/// What one optimizer step trains on: captions, their images' feature rows, and per-caption
/// weights (self-critical training's advantages) or none.
pub struct Work<'w> {
    pub rows: Vec<usize>,
    pub captions: Vec<&'w [u32]>,
    pub weights: Option<Vec<f32>>,
}

impl Work<'_> {
    /// Scored positions: every caption's tokens but its first.
    pub fn tokens(&self) -> usize {
        self.captions.iter().map(|c| c.len() - 1).sum()
    }

    /// Captions `range` of this work.
    pub fn part(&self, range: Range<usize>) -> Work<'_> {
        Work {
            rows: self.rows[range.clone()].to_vec(),
            captions: self.captions[range.clone()].to_vec(),
            weights: self.weights.as_ref().map(|w| w[range].to_vec()),
        }
    }

    fn teacher<A: Backend>(&self, device: &A::Device) -> TeacherBatch<A> {
        match &self.weights {
            Some(weights) => TeacherBatch::weighted(&self.captions, weights, device),
            None => TeacherBatch::new(&self.captions, device),
        }
    }
}

/// The size of the batch a part of [`Work`] belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Whole {
    pub tokens: usize,
    pub captions: usize,
}

impl<B: Backend> Replica<B> {
    pub fn new(
        model: Captioner<Train<B>>,
        optim: Optim<Train<B>>,
        data: &Dataset,
        device: &B::Device,
    ) -> Self {
        let features = Tensor::<B, 2>::from_data(
            TensorData::new(
                data.features.values().to_vec(),
                [data.features.len(), FEATURE_DIM],
            ),
            device,
        );
        Self {
            model,
            optim,
            features,
            device: device.clone(),
        }
    }

    /// A copy of this replica on `device`: the same weights (and parameter ids, which the
    /// all-reduce pairs gradients by) and the same optimizer state.
    pub fn fork(&self, device: &B::Device) -> Self {
        Self {
            model: self.model.clone().fork(device),
            optim: self.optim.clone(),
            features: self.features.clone().to_device(device),
            device: device.clone(),
        }
    }

    /// The mean loss of `work` and its gradients; with `whole`, `work` is a part of a larger
    /// batch, and both are its share of the whole's (see [`TeacherBatch::part_of`]).
    pub fn gradients(
        &self,
        data: &Dataset,
        work: &Work,
        whole: Option<Whole>,
        rng: Option<&mut ChaCha8Rng>,
    ) -> (f64, GradientsParams) {
        let images = autodiff(self.images(data, &work.rows));
        let mut teacher = work.teacher::<Train<B>>(&self.device);
        if let Some(whole) = whole {
            teacher = teacher.part_of(whole.tokens, whole.captions);
        }
        let (loss, grads) =
            self.model
                .loss_and_grads(&images, &teacher, rng.map(|r| r as &mut dyn RngCore));
        (loss.into_scalar().elem::<f64>(), grads)
    }

    /// One optimizer step with `grads`, clipped to a global norm of `clip_norm` (0: no
    /// clipping).
    pub fn update(
        mut self,
        mut grads: GradientsParams,
        learning_rate: f64,
        clip_norm: f64,
    ) -> Self {
        if clip_norm > 0.0 {
            clip_global_norm(&self.model, &mut grads, clip_norm);
        }
        self.model = self.optim.step(learning_rate, self.model, grads);
        self
    }

    /// The images of feature rows `rows`: their pooled vectors, and their grids when the
    /// model reads them.
    ///
    /// # Panics
    /// When the grid's temp file cannot be read back (a failing disk), with its error.
    pub fn images(&self, data: &Dataset, rows: &[usize]) -> Images<B> {
        let n = rows.len();
        let index = Tensor::<B, 1, Int>::from_data(
            TensorData::new(rows.iter().map(|&r| r as i64).collect::<Vec<_>>(), [n]),
            &self.device,
        );
        let pooled = self.features.clone().select(0, index);
        let grid = data.grid.as_ref().map(|store| {
            let values = store
                .read(rows)
                .unwrap_or_else(|e| panic!("reading the grid features back: {e}"));
            let shape = store.shape();
            Tensor::from_data(
                TensorData::new(values, [n, shape.regions(), shape.channels]),
                &self.device,
            )
        });
        Images { pooled, grid }
    }

    /// The model without autodiff, as validation and decoding use it.
    pub fn plain(&self) -> Captioner<B> {
        self.model.valid()
    }
}

/// The same images on the training backend.
pub fn autodiff<B: Backend>(images: Images<B>) -> Images<Train<B>> {
    Images {
        pooled: Tensor::from_inner(images.pooled),
        grid: images.grid.map(Tensor::from_inner),
    }
}
