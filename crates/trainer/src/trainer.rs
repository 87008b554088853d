//! [`Trainer`]: a caption model, its optimizer, the trainer state and the data, with what a
//! training loop does to them: step, validate, save. The loop ([`crate::train`]) and the
//! benchmark ([`crate::bench`]) drive the same type.

use std::path::Path;

use anyhow::{Context, Result};
use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use contracts::config::{ScstBaseline, TrainerConfig};
use contracts::tables::FEATURE_DIM;
use contracts::{ModelDir, PipelineConfig};
use decoder::{
    CaptionModel, Captioner, CaptionerConfig, FeatureStats, Images, Sampled, Skipped, TeacherBatch,
    Trainable, greedy, sample,
};
use kernels::adam::Adam;
use kernels::clip::clip_global_norm;
use metrics::CiderD;
use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{
    Optim, RunInputs, SortedOptimRecord, check_resumable, sorted, trained_info, unsorted,
};
use crate::data::{Dataset, References, sorted_batches};
use crate::scst::{self, Rewards, caption_weights};
use crate::state::{TrainerState, init_seed};

/// The training backend over `B`.
pub type Train<B> = Autodiff<B>;

/// Images per greedy-decoding call during validation.
const DECODE_BATCH: usize = 256;

/// A model in training, with everything a step needs.
pub struct Trainer<'a, B: Backend> {
    model: Captioner<Train<B>>,
    optim: Optim<Train<B>>,
    /// Epochs, metrics, learning-rate decays and early stopping so far.
    pub state: TrainerState,
    data: &'a Dataset,
    inputs: RunInputs,
    config: &'a PipelineConfig,
    /// Every image's raw vector on the device, once; batches select their rows.
    features: Tensor<B, 2>,
    device: B::Device,
}

/// One step's mean loss and the number of target tokens it averaged over.
#[derive(Debug, Clone, Copy)]
pub struct StepLoss {
    pub loss: f64,
    pub tokens: usize,
}

/// The validation metrics of an epoch.
#[derive(Debug, Clone, Copy)]
pub struct Validation {
    /// Mean loss per target token over the val captions, without dropout.
    pub loss: f64,
    /// Corpus BLEU-4 of greedy captions of the val images.
    pub bleu4: f64,
    /// Corpus CIDEr-D of the same captions.
    pub cider: f64,
    /// How many of them repeat a word or a word pair.
    pub repeats: usize,
}

/// One self-critical step: the policy loss, the samples' rewards and their token count.
#[derive(Debug, Clone)]
pub struct ScstStepOutcome {
    pub loss: f64,
    pub rewards: Rewards,
    pub tokens: usize,
}

/// Adam as PyTorch computes it, with `trainer.adam_epsilon`; clipping is global (see
/// [`clip_global_norm`]), not burn's per-tensor clipping.
pub fn adam(trainer: &TrainerConfig) -> Adam {
    Adam::new(trainer.adam_epsilon as f32)
}

impl<'a, B: Backend> Trainer<'a, B> {
    /// A new model, initialised from `trainer.seed`.
    pub fn start(
        config: &'a PipelineConfig,
        data: &'a Dataset,
        device: &B::Device,
    ) -> Result<Self> {
        let inputs = run_inputs(config, data);
        let stats = if config.model.standardize {
            data.train_feature_stats()?
        } else {
            FeatureStats::identity(FEATURE_DIM)
        };
        let model =
            inputs
                .model
                .init::<Train<B>>(&stats, init_seed(config.trainer.seed), device)?;
        let state = TrainerState::new(&config.trainer);
        Ok(Self::assemble(
            config,
            data,
            inputs,
            model,
            adam(&config.trainer).init(),
            state,
            device,
        ))
    }

    /// The run saved in the checkpoint `path`, after checking it was trained with this
    /// architecture and these inputs.
    pub fn resume(
        config: &'a PipelineConfig,
        data: &'a Dataset,
        path: &Path,
        device: &B::Device,
    ) -> Result<Self> {
        let inputs = run_inputs(config, data);
        let (model, record, info) =
            decoder::load_checkpoint::<Train<B>, SortedOptimRecord<Train<B>>>(path, device)?;
        let state = check_resumable(path, &info, &inputs, &config.model, &config.trainer)?;
        let optim = adam(&config.trainer).init().load_record(unsorted(record));
        Ok(Self::assemble(
            config, data, inputs, model, optim, state, device,
        ))
    }

    fn assemble(
        config: &'a PipelineConfig,
        data: &'a Dataset,
        inputs: RunInputs,
        model: Captioner<Train<B>>,
        optim: Optim<Train<B>>,
        state: TrainerState,
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
            state,
            data,
            inputs,
            config,
            features,
            device: device.clone(),
        }
    }

    /// The configuration of the run.
    pub fn config(&self) -> &'a PipelineConfig {
        self.config
    }

    /// The data it trains on.
    pub fn data(&self) -> &'a Dataset {
        self.data
    }

    /// The architecture being trained.
    pub fn model_config(&self) -> &CaptionerConfig {
        &self.inputs.model
    }

    pub fn num_params(&self) -> usize {
        self.model.num_params()
    }

    /// One optimizer step on the train captions `batch` (indices into `data.train`), dropout
    /// drawn from `rng`.
    pub fn step(
        mut self,
        batch: &[usize],
        learning_rate: f64,
        rng: &mut ChaCha8Rng,
    ) -> (Self, StepLoss) {
        let captions = &self.data.train;
        let rows: Vec<usize> = batch.iter().map(|&i| captions[i].image).collect();
        let images = autodiff(self.images(&rows));
        let tokens: Vec<&[u32]> = batch
            .iter()
            .map(|&i| captions[i].tokens.as_slice())
            .collect();
        let teacher = TeacherBatch::<Train<B>>::new(&tokens, &self.device);
        let (loss, mut grads) =
            self.model
                .loss_and_grads(&images, &teacher, Some(rng as &mut dyn RngCore));
        if self.config.trainer.clip_norm > 0.0 {
            clip_global_norm(&self.model, &mut grads, self.config.trainer.clip_norm);
        }
        self.model = self.optim.step(learning_rate, self.model, grads);
        let step = StepLoss {
            loss: loss.into_scalar().elem::<f64>(),
            tokens: teacher.tokens,
        };
        (self, step)
    }

    /// The val loss and the val BLEU-4 of greedy captions, on the model without dropout.
    pub fn validate(&self) -> Result<Validation> {
        let model = self.model.valid();
        let loss = self.validation_loss(&model);
        let hypotheses = self.validation_captions(&model)?;
        let bleu4 =
            metrics::corpus_bleu4(&hypotheses, &self.data.val_references).context("val BLEU-4")?;
        let references = reference_views(&self.data.val_references);
        let scorer = CiderD::new(&references);
        let cider = hypotheses
            .iter()
            .enumerate()
            .map(|(image, words)| scorer.score(image, words))
            .sum::<f64>()
            / hypotheses.len().max(1) as f64;
        let repeats = hypotheses
            .iter()
            .filter(|words| repeats_itself(words))
            .count();
        Ok(Validation {
            loss,
            bleu4,
            cider,
            repeats,
        })
    }

    /// Self-critical training from here on: the best cross-entropy checkpoint's weights and a
    /// fresh optimizer.
    pub fn begin_scst(&mut self, best: &Path) -> Result<()> {
        let (model, Skipped, _) =
            decoder::load_checkpoint::<Train<B>, Skipped>(best, &self.device)?;
        self.model = model;
        self.optim = adam(&self.config.trainer).init();
        Ok(())
    }

    /// One self-critical step on the train images `images` (indices into
    /// `data.train_images`, and so into `scorer`'s reference sets).
    pub fn scst_step(
        mut self,
        images: &[usize],
        scorer: &CiderD<'_>,
        rng: &mut ChaCha8Rng,
    ) -> (Self, ScstStepOutcome) {
        let config = self.config;
        let (trainer, evaluator) = (&config.trainer, &config.evaluator);
        let per_image = trainer.scst_samples;
        let rows: Vec<usize> = images.iter().map(|&i| self.data.train_images[i]).collect();
        let distinct = self.images(&rows);
        let vocab = &self.data.vocab;
        let plain = self.model.valid();
        let (max_len, suppress_unk) = (evaluator.max_len, evaluator.suppress_unk);
        let samples = sample(
            &plain,
            &distinct.clone().repeat_each(per_image),
            max_len,
            suppress_unk,
            rng,
        );
        let greedy_rewards: Option<Vec<f64>> = (trainer.scst_baseline == ScstBaseline::Greedy)
            .then(|| {
                greedy(&plain, &distinct, max_len, suppress_unk)
                    .iter()
                    .zip(images)
                    .map(|(ids, &image)| scst::reward(scorer, vocab, image, ids))
                    .collect()
            });
        let rewards = Rewards::new(
            scorer,
            vocab,
            images,
            &samples,
            per_image,
            greedy_rewards.as_deref(),
        );
        let sequences: Vec<Vec<u32>> = samples.iter().map(Sampled::sequence).collect();
        let weights = caption_weights(&rewards.advantages, &sequences);
        let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
        let teacher = TeacherBatch::<Train<B>>::weighted(&refs, &weights, &self.device);
        let images = autodiff(distinct).repeat_each(per_image);
        // No dropout: the gradient is REINFORCE's for the distribution just sampled.
        let (loss, mut grads) = self.model.loss_and_grads(&images, &teacher, None);
        if trainer.clip_norm > 0.0 {
            clip_global_norm(&self.model, &mut grads, trainer.clip_norm);
        }
        let learning_rate = trainer.scst_learning_rate;
        self.model = self.optim.step(learning_rate, self.model, grads);
        let outcome = ScstStepOutcome {
            loss: loss.into_scalar().elem::<f64>(),
            rewards,
            tokens: teacher.tokens,
        };
        (self, outcome)
    }

    /// Mean loss per target token over the val captions, in length-sorted batches.
    fn validation_loss(&self, model: &Captioner<B>) -> f64 {
        let captions = &self.data.val;
        let lengths: Vec<usize> = captions.iter().map(|c| c.tokens.len()).collect();
        let (mut sum, mut tokens) = (0.0, 0usize);
        for batch in sorted_batches(&lengths, self.config.trainer.batch_size) {
            let rows: Vec<usize> = batch.iter().map(|&i| captions[i].image).collect();
            let images = self.images(&rows);
            let ids: Vec<&[u32]> = batch
                .iter()
                .map(|&i| captions[i].tokens.as_slice())
                .collect();
            let teacher = TeacherBatch::<B>::new(&ids, &self.device);
            let loss = model.loss(&images, &teacher).into_scalar().elem::<f64>();
            sum += loss * teacher.tokens as f64;
            tokens += teacher.tokens;
        }
        sum / tokens.max(1) as f64
    }

    /// Greedy captions of the val images as words, in `data.val_images` order.
    fn validation_captions(&self, model: &Captioner<B>) -> Result<Vec<Vec<&'a str>>> {
        let evaluator = &self.config.evaluator;
        let mut out = Vec::with_capacity(self.data.val_images.len());
        for chunk in self.data.val_images.chunks(DECODE_BATCH) {
            let images = self.images(chunk);
            for ids in greedy(model, &images, evaluator.max_len, evaluator.suppress_unk) {
                out.push(self.data.vocab.words(&ids)?);
            }
        }
        Ok(out)
    }

    /// The images of feature rows `rows`: their pooled vectors, and their grids when the
    /// model reads them.
    ///
    /// # Panics
    /// When the grid's temp file cannot be read back (a failing disk), with its error.
    fn images(&self, rows: &[usize]) -> Images<B> {
        let n = rows.len();
        let index = Tensor::<B, 1, Int>::from_data(
            TensorData::new(rows.iter().map(|&r| r as i64).collect::<Vec<_>>(), [n]),
            &self.device,
        );
        let pooled = self.features.clone().select(0, index);
        let grid = self.data.grid.as_ref().map(|store| {
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

    /// Writes `last.mpk`, and `best.mpk` with `trained.json` when this epoch is the best.
    pub fn save(&self, dir: &ModelDir, best: bool) -> Result<()> {
        let info = trained_info(&self.inputs, &self.state)?;
        if best {
            decoder::save_checkpoint(
                &dir.best(),
                &self.model,
                sorted(self.optim.to_record()),
                &info,
            )?;
            contracts::atomic::write_atomically(
                &dir.trained_json(),
                serde_json::to_string_pretty(&info)?.as_bytes(),
            )?;
        }
        decoder::save_checkpoint(
            &dir.last(),
            &self.model,
            sorted(self.optim.to_record()),
            &info,
        )?;
        Ok(())
    }
}

/// The same images on the training backend.
fn autodiff<B: Backend>(images: Images<B>) -> Images<Train<B>> {
    Images {
        pooled: Tensor::from_inner(images.pooled),
        grid: images.grid.map(Tensor::from_inner),
    }
}

/// Each image's references as borrowed tokens, as the CIDEr-D scorer takes them.
pub fn reference_views(references: &[References]) -> Vec<Vec<Vec<&str>>> {
    references
        .iter()
        .map(|refs| {
            refs.iter()
                .map(|words| words.iter().map(String::as_str).collect())
                .collect()
        })
        .collect()
}

/// Whether a caption repeats a word ("a a dog") or a word pair ("a dog a dog").
pub fn repeats_itself(words: &[&str]) -> bool {
    let repeated_word = words.windows(2).any(|w| w[0] == w[1]);
    let pairs: Vec<&[&str]> = words.windows(2).collect();
    let repeated_pair = pairs
        .iter()
        .enumerate()
        .any(|(i, pair)| pairs[i + 1..].contains(pair));
    repeated_word || repeated_pair
}

/// What this run trains with: the architecture `[model]` asks for and the inputs' hashes and
/// encoder settings.
fn run_inputs(config: &PipelineConfig, data: &Dataset) -> RunInputs {
    RunInputs {
        model: CaptionerConfig::from_pipeline(
            &config.model,
            config.trainer.attention_reg,
            data.vocab.len(),
        ),
        standardized: config.model.standardize,
        encoder: data.features.encoder().cloned(),
        hashes: data.hashes.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_words_and_pairs_are_caught() {
        assert!(repeats_itself(&["a", "a", "dog"]));
        assert!(repeats_itself(&["a", "dog", "and", "a", "dog"]));
        assert!(!repeats_itself(&["a", "dog", "on", "a", "beach"]));
        assert!(!repeats_itself(&[]));
    }
}
