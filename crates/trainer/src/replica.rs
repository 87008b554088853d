//! [`Replica`]: a copy of the model in training, with its optimizer and the image features,
//! on one device. One device trains one replica; data-parallel training ([`crate::parallel`])
//! keeps one per device, all with the same weights.

use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor};
use decoder::{Captioner, Images, Trainable};
use kernels::clip::{clip_global_norm, zeroed};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::Optim;
use crate::data::Dataset;
use crate::step::{Train, Whole, Work};

/// A model with its optimizer, on one device. The features stay in the [`Dataset`]'s host
/// tables: each batch sends its own rows.
pub struct Replica<B: Backend> {
    pub model: Captioner<Train<B>>,
    pub optim: Optim<Train<B>>,
    pub device: B::Device,
}

impl<B: Backend> Replica<B> {
    pub fn new(model: Captioner<Train<B>>, optim: Optim<Train<B>>, device: &B::Device) -> Self {
        Self {
            model,
            optim,
            device: device.clone(),
        }
    }

    /// A copy of this replica on `device`: the same weights (and parameter ids, which the
    /// all-reduce pairs gradients by) and the same optimizer state.
    pub fn fork(&self, device: &B::Device) -> Self {
        Self {
            model: self.model.clone().fork(device),
            optim: self.optim.clone(),
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

    /// Zero gradients for every parameter that `work`'s gradients have: an idle replica's
    /// share of a step (a batch smaller than the device list). They come from the gradient
    /// of `work`'s first caption, so that the parameter set is the one the other replicas
    /// all-reduce, and are exact zeros whatever that gradient held.
    pub fn zero_gradients(&self, data: &Dataset, work: &Work) -> GradientsParams {
        let (_, grads) = self.gradients(data, &work.part(0..1), None, None);
        zeroed(&self.model, grads)
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
        Images::from_rows(
            data.features.values(),
            data.grid.as_deref(),
            rows,
            &self.device,
        )
        .unwrap_or_else(|e| panic!("reading the grid features back: {e}"))
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
