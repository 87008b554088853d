//! The seed's CNN-RNN "merge" model: image projection, word embedding, LSTM and the merge
//! output layer. Its training loss and gradients are in [`training`].
//!
//! ```text
//! features [B, F] -> standardise -> Linear F->E -> ReLU -> dropout = image embedding [B, E]
//! LSTM over [image embedding, emb(<start>), emb(w1) .. emb(wn)]
//! logits at step t>0 = Linear([dropout(h_t) ; dropout(image embedding)]) -> next token
//! ```
//!
//! The output layer over the concatenation `[h ; image]` is stored as two matrices
//! (`output` for `h`, `output_image` for the image part): the same function, but the image
//! part is computed once per caption instead of once per word. As a consequence the dropout
//! mask of the image part is drawn once per caption and shared by its words.

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::RngCore;
use serde::{Deserialize, Serialize};

mod training;

/// The names the registry ([`crate::captioner`]) knows the model by.
pub use self::{MergeConfig as Config, MergeModel as Model, MergeState as State};

use contracts::config::ModelConfig;
use contracts::tables::FEATURE_DIM;
use kernels::lstm::{Lstm, LstmState};

use crate::captioner::{Architected, Architecture, ShapeMismatch};
use crate::dropout::dropout;
use crate::init::Initializer;
use crate::model::{CaptionModel, DecodeState, Images};
use crate::{DecoderError, FeatureStats, TeacherBatch};

/// The architecture: everything needed to rebuild the network before loading its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeConfig {
    /// Vocabulary size, special tokens included (rows of `vocab.parquet`).
    pub vocab_size: usize,
    /// Length of an image feature vector (2048 for ResNet50).
    pub feature_dim: usize,
    /// Word and image embedding size (the LSTM's input size).
    pub embed_dim: usize,
    /// LSTM hidden size.
    pub hidden_dim: usize,
    /// Dropout probability after the image projection and before the output layer.
    pub dropout: f64,
    /// Join the image embedding with the LSTM output before the vocabulary projection.
    pub merge: bool,
}

/// For logs, after `merge decoder: `.
impl std::fmt::Display for MergeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "embed {}, hidden {}, vocabulary {}, merge {}, dropout {}",
            self.embed_dim, self.hidden_dim, self.vocab_size, self.merge, self.dropout
        )
    }
}

impl Architecture for MergeConfig {
    type Model<B: Backend> = MergeModel<B>;

    fn from_pipeline(model: &ModelConfig, vocab_size: usize) -> Self {
        Self {
            vocab_size,
            feature_dim: FEATURE_DIM,
            embed_dim: model.embed_dim,
            hidden_dim: model.hidden_dim,
            dropout: model.dropout,
            merge: model.merge.join_image,
        }
    }

    fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    fn validate(&self) -> Result<(), DecoderError> {
        crate::init::check_sizes(
            self.vocab_size,
            &[
                ("feature_dim", self.feature_dim),
                ("embed_dim", self.embed_dim),
                ("hidden_dim", self.hidden_dim),
            ],
            self.dropout,
        )
    }

    /// A freshly initialised model, every weight drawn from `seed` (PyTorch's default
    /// initialisation: embeddings N(0, 1); linear and LSTM weights and biases
    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the LSTM's fan_in the hidden size).
    fn init<B: Backend>(
        &self,
        stats: &FeatureStats,
        seed: u64,
        device: &B::Device,
    ) -> Result<MergeModel<B>, DecoderError> {
        self.validate()?;
        crate::init::check_stats(stats, self.feature_dim, ("feature", "dimensions"))?;
        let mut init = Initializer::<B>::new(seed, device);
        let (f, e, h, v) = (
            self.feature_dim,
            self.embed_dim,
            self.hidden_dim,
            self.vocab_size,
        );
        let image_proj = init.linear(f, e, true);
        let embedding = Embedding {
            weight: init.normal([v, e]),
        };
        let lstm = Lstm {
            input_weight: init.uniform([e, 4 * h], h),
            hidden_weight: init.uniform([h, 4 * h], h),
            bias: init.uniform([4 * h], h),
        };
        // The merged layer's fan-in is h + e, split over its two parts.
        let fan_in = if self.merge { h + e } else { h };
        let output = Linear {
            weight: init.uniform([h, v], fan_in),
            bias: Some(init.uniform([v], fan_in)),
        };
        let output_image = self.merge.then(|| Linear {
            weight: init.uniform([e, v], fan_in),
            bias: None,
        });
        let (feature_mean, feature_inv_std) = init.standardisation(stats);
        Ok(MergeModel {
            feature_mean,
            feature_inv_std,
            image_proj,
            embedding,
            lstm,
            output,
            output_image,
            dropout: self.dropout,
        })
    }
}

/// The merge model. Build it with [`MergeConfig::init`] or load it with
/// [`crate::load_captioner`].
#[derive(Module, Debug)]
pub struct MergeModel<B: Backend> {
    /// `[feature_dim]` train-split mean of each feature dimension (a constant).
    pub feature_mean: Param<Tensor<B, 1>>,
    /// `[feature_dim]` 1 / train-split std of each dimension (a constant).
    pub feature_inv_std: Param<Tensor<B, 1>>,
    /// `feature_dim -> embed_dim`, followed by ReLU.
    pub image_proj: Linear<B>,
    /// `[vocab_size, embed_dim]`
    pub embedding: Embedding<B>,
    pub lstm: Lstm<B>,
    /// `hidden_dim -> vocab_size`: the LSTM part of the output layer (with its bias).
    pub output: Linear<B>,
    /// `embed_dim -> vocab_size`: the image part of the merged output layer (`None` without
    /// `merge`).
    pub output_image: Option<Linear<B>>,
    pub dropout: f64,
}

/// What decoding carries from one step to the next, for a batch of partial captions.
#[derive(Debug, Clone)]
pub struct MergeState<B: Backend> {
    pub lstm: LstmState<B>,
    /// `[batch, vocab]` the image's contribution to the logits (merge model), computed once.
    pub image_logits: Option<Tensor<B, 2>>,
}

impl<B: Backend> DecodeState<B> for MergeState<B> {
    fn select(self, indices: Tensor<B, 1, Int>) -> Self {
        Self {
            image_logits: self.image_logits.map(|l| l.select(0, indices.clone())),
            lstm: self.lstm.select(indices),
        }
    }
}

impl<B: Backend> Architected<B> for MergeModel<B> {
    type Config = MergeConfig;

    fn config(&self) -> MergeConfig {
        let [vocab_size, embed_dim] = self.embedding.weight.dims();
        MergeConfig {
            vocab_size,
            feature_dim: self.feature_mean.dims()[0],
            embed_dim,
            hidden_dim: self.lstm.hidden_dim(),
            dropout: self.dropout,
            merge: self.output_image.is_some(),
        }
    }

    fn feature_stats(&self) -> FeatureStats {
        FeatureStats::from_constants(&self.feature_mean, &self.feature_inv_std)
    }

    /// Every tensor's shape, named as in the record.
    fn check_shapes(&self, config: &MergeConfig) -> Result<(), ShapeMismatch> {
        let (f, e, h, v) = (
            config.feature_dim,
            config.embed_dim,
            config.hidden_dim,
            config.vocab_size,
        );
        let mut checks: Vec<(&str, Vec<usize>, Vec<usize>)> = vec![
            ("feature_mean", vec![f], self.feature_mean.dims().to_vec()),
            (
                "feature_inv_std",
                vec![f],
                self.feature_inv_std.dims().to_vec(),
            ),
            (
                "image_proj.weight",
                vec![f, e],
                self.image_proj.weight.dims().to_vec(),
            ),
            (
                "embedding.weight",
                vec![v, e],
                self.embedding.weight.dims().to_vec(),
            ),
            (
                "lstm.input_weight",
                vec![e, 4 * h],
                self.lstm.input_weight.dims().to_vec(),
            ),
            (
                "lstm.hidden_weight",
                vec![h, 4 * h],
                self.lstm.hidden_weight.dims().to_vec(),
            ),
            ("lstm.bias", vec![4 * h], self.lstm.bias.dims().to_vec()),
            (
                "output.weight",
                vec![h, v],
                self.output.weight.dims().to_vec(),
            ),
        ];
        let bias = |l: &Linear<B>| {
            l.bias
                .as_ref()
                .map(|b| b.dims().to_vec())
                .unwrap_or_default()
        };
        checks.push(("image_proj.bias", vec![e], bias(&self.image_proj)));
        checks.push(("output.bias", vec![v], bias(&self.output)));
        let image = self
            .output_image
            .as_ref()
            .map(|l| l.weight.dims().to_vec())
            .unwrap_or_default();
        checks.push((
            "output_image.weight",
            if config.merge { vec![e, v] } else { vec![] },
            image,
        ));
        match checks
            .into_iter()
            .find(|(_, expected, found)| expected != found)
        {
            Some((name, expected, found)) => Err((name.to_string(), expected, found)),
            None => Ok(()),
        }
    }
}

impl<B: Backend> MergeModel<B> {
    /// Image embedding: `[batch, feature_dim]` raw features -> `[batch, embed_dim]`
    /// (standardised, projected, ReLU; no dropout).
    pub fn embed_image(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        let standardised = kernels::standardise::standardise(
            features,
            self.feature_mean.val(),
            self.feature_inv_std.val(),
        );
        relu(self.image_proj.forward(standardised))
    }

    /// Teacher-forced logits for every input position, the reference form of the network.
    ///
    /// - `features`: `[batch, feature_dim]` raw image vectors.
    /// - `inputs`: `[batch, steps]` tokens `<start> w1 .. wn` (padding allowed after).
    /// - `rng`: dropout masks are drawn from it; `None` for no dropout.
    /// - returns `[batch, steps, vocab]`: at position t the logits of token t+1.
    pub fn forward(
        &self,
        features: Tensor<B, 2>,
        inputs: Tensor<B, 2, Int>,
        mut rng: Option<&mut (dyn RngCore + '_)>,
    ) -> Tensor<B, 3> {
        let [batch, steps] = inputs.dims();
        let image = self.embed_image(features);
        // [steps, batch]: time-major tokens, [steps, batch, embed_dim] their embeddings.
        let words = self.embedding.forward(inputs.swap_dims(0, 1));
        let first = dropout(image.clone(), self.dropout, rng.as_deref_mut());
        // [steps * batch, hidden] rows t * batch + b.
        let (hidden, _) = self.lstm.forward_after(first, words);
        let logits = self.output_logits(hidden, &image, None, rng);
        // [steps, batch, vocab] -> [batch, steps, vocab]
        logits
            .reshape([steps, batch, self.output.weight.dims()[1]])
            .swap_dims(0, 1)
    }

    /// The logits of `batch`'s scored positions, `[tokens, vocab]` in row order, all through
    /// autodiff: the reference the fused training pass is tested against. Dropout masks are
    /// drawn from `rng` in the fused pass's order and shapes (the LSTM's image input, the
    /// output layer's image input, the scored rows), so both see the same masks.
    pub fn reference_logits(
        &self,
        images: &Images<B>,
        batch: &TeacherBatch<B>,
        mut rng: Option<&mut (dyn RngCore + '_)>,
    ) -> Tensor<B, 2> {
        let p = self.dropout;
        let image = self.embed_image(images.pooled.clone());
        let first = dropout(image.clone(), p, rng.as_deref_mut());
        let image_out = self
            .output_image
            .as_ref()
            .map(|_| dropout(image, p, rng.as_deref_mut()));
        // [steps * batch, hidden] rows t * batch + b; [tokens, hidden] the scored ones.
        let (hidden, _) = self
            .lstm
            .forward_after(first, self.embedding.forward(batch.inputs.clone()));
        let rows = match &batch.rows {
            Some(index) => hidden.select(0, index.clone()),
            None => hidden,
        };
        let [tokens, _] = rows.dims();
        let logits = self.output.forward(dropout(rows, p, rng));
        match (&self.output_image, image_out) {
            (Some(layer), Some(image)) => {
                // Each row's caption: given, or `row % batch` when every position is scored.
                let captions = batch.row_captions.clone().unwrap_or_else(|| {
                    let all: Vec<i64> = (0..tokens as i64)
                        .map(|r| r % batch.batch_size as i64)
                        .collect();
                    Tensor::from_data(TensorData::new(all, [tokens]), &logits.device())
                });
                logits + layer.forward(image).select(0, captions)
            }
            _ => logits,
        }
    }

    /// Logits of `hidden` rows (`[rows, hidden]`, time-major over the batch) with the image
    /// part added: `row_captions` names each row's caption; `None` means all `steps * batch`
    /// rows in order.
    fn output_logits(
        &self,
        hidden: Tensor<B, 2>,
        image: &Tensor<B, 2>,
        row_captions: Option<&Tensor<B, 1, Int>>,
        mut rng: Option<&mut (dyn RngCore + '_)>,
    ) -> Tensor<B, 2> {
        let [rows, _] = hidden.dims();
        let [batch, _] = image.dims();
        // [rows, vocab]
        let logits = self
            .output
            .forward(dropout(hidden, self.dropout, rng.as_deref_mut()));
        let Some(output_image) = &self.output_image else {
            return logits;
        };
        // [batch, vocab]: once per caption.
        let image_logits = output_image.forward(dropout(image.clone(), self.dropout, rng));
        match row_captions {
            Some(index) => logits + image_logits.select(0, index.clone()),
            None => {
                let vocab = image_logits.dims()[1];
                // [steps, batch * vocab] + [1, batch * vocab]
                let merged = logits.reshape([rows / batch, batch * vocab])
                    + image_logits.reshape([1, batch * vocab]);
                merged.reshape([rows, vocab])
            }
        }
    }
}

impl<B: Backend> CaptionModel<B> for MergeModel<B> {
    type State = MergeState<B>;

    fn vocab_size(&self) -> usize {
        self.embedding.weight.dims()[0]
    }

    /// Runs the image step.
    fn start(&self, images: &Images<B>) -> MergeState<B> {
        let image = self.embed_image(images.pooled.clone());
        let lstm = self.lstm.step(image.clone(), None);
        let image_logits = self.output_image.as_ref().map(|l| l.forward(image));
        MergeState { lstm, image_logits }
    }

    fn step(
        &self,
        tokens: Tensor<B, 1, Int>,
        state: MergeState<B>,
    ) -> (Tensor<B, 2>, MergeState<B>) {
        let [batch] = tokens.dims();
        // [batch, 1, embed_dim] -> [batch, embed_dim]
        let words = self
            .embedding
            .forward(tokens.reshape([batch, 1]))
            .squeeze_dim::<2>(1);
        let lstm = self.lstm.step(words, Some(state.lstm));
        // [batch, vocab]
        let mut logits = self.output.forward(lstm.hidden.clone());
        if let Some(image_logits) = &state.image_logits {
            logits = logits + image_logits.clone();
        }
        (
            log_softmax(logits, 1),
            MergeState {
                lstm,
                image_logits: state.image_logits,
            },
        )
    }

    /// Training uses [`Trainable::loss_and_grads`](crate::Trainable::loss_and_grads).
    fn loss(&self, images: &Images<B>, batch: &TeacherBatch<B>) -> Tensor<B, 1> {
        let [steps, batch_size] = batch.inputs.dims();
        let image = self.embed_image(images.pooled.clone());
        // [steps + 1, batch, embed]: the image step, then the words.
        let inputs = Tensor::cat(
            vec![
                image.clone().unsqueeze_dim::<3>(0),
                self.embedding.forward(batch.inputs.clone()),
            ],
            0,
        );
        let hidden = self.lstm.run_sequence(inputs);
        let hidden_dim = self.lstm.hidden_dim();
        // [steps * batch, hidden] outputs of the word steps; [tokens, hidden] the scored ones.
        let mut rows = hidden
            .narrow(0, 1, steps)
            .reshape([steps * batch_size, hidden_dim]);
        if let Some(index) = &batch.rows {
            rows = rows.select(0, index.clone());
        }
        let image = self.output_image.as_ref().map(|_| image);
        kernels::cross_entropy::loss(crate::output::logits(
            &self.output,
            self.output_image.as_ref(),
            rows,
            image,
            batch,
        ))
    }
}

/// Mean over rows of `-log softmax(logits)[target]`: `[rows, vocab]`, `[rows]` -> `[1]`. The
/// reference the fused training loss is tested against.
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let [rows, _] = logits.dims();
    // [rows, 1]: the shift keeps exp() finite; it cancels out, so no gradient flows through it.
    let max = logits.clone().detach().max_dim(1);
    let shifted = logits - max;
    let log_sum_exp = shifted.clone().exp().sum_dim(1).log();
    let picked = shifted.gather(1, targets.reshape([rows, 1]));
    (log_sum_exp - picked).mean()
}
