//! What one optimizer step is made of, below the replicas that take it and the trainer that
//! orders it: the training backend, the [`Work`] of a step (and [`Whole`], the batch a part of
//! it belongs to), and the [`StepLoss`] it reports.

use std::ops::Range;

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use decoder::{SampledPolicy, TeacherBatch};

/// The training backend over `B`.
pub type Train<B> = Autodiff<B>;

/// One step's mean loss and the number of target tokens it averaged over.
#[derive(Debug, Clone, Copy)]
pub struct StepLoss {
    pub loss: f64,
    pub tokens: usize,
}

/// What one optimizer step trains on: captions and their images' feature rows, and for
/// self-critical training the per-caption weights (advantages) with the distribution the
/// captions were sampled from.
pub struct Work<'w> {
    pub rows: Vec<usize>,
    pub captions: Vec<&'w [u32]>,
    pub sampled: Option<(Vec<f32>, SampledPolicy)>,
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
            sampled: self
                .sampled
                .as_ref()
                .map(|(weights, policy)| (weights[range].to_vec(), policy.clone())),
        }
    }

    /// The captions laid out for the loss, on `device`.
    pub fn teacher<A: Backend>(&self, device: &A::Device) -> TeacherBatch<A> {
        match &self.sampled {
            Some((weights, policy)) => {
                TeacherBatch::self_critical(&self.captions, weights, policy.clone(), device)
            }
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
