//! [`Trainer`]: a caption model, its optimizer, the trainer state and the data, with what a
//! training loop does to them: step, validate, save. The loop ([`crate::train`]) and the
//! benchmark (`benches/train.rs`) drive the same type.

use std::path::Path;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::optim::Optimizer;
use burn::tensor::ElementConversion;
use burn::tensor::backend::Backend;
use contracts::config::{ScstBaseline, TrainerConfig};
use contracts::tables::FEATURE_DIM;
use contracts::{ModelDir, PipelineConfig};
use decoder::{
    CaptionModel, Captioner, CaptionerConfig, FeatureStats, Sampled, SampledPolicy, Skipped,
    TeacherBatch, banned_tokens, greedy, sample,
};
use kernels::adam::Adam;
use metrics::CiderD;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{
    Optim, RunInputs, SortedOptimRecord, check_resumable, sorted, trained_info, unsorted,
};
use crate::data::{Dataset, References, sorted_batches};
use crate::parallel::{self, Peers};
use crate::replica::Replica;
use crate::scst::{self, Rewards, caption_weights};
use crate::state::{TrainerState, init_seed};
use crate::step::{StepLoss, Train, Work};

/// Images per greedy-decoding call during validation.
const DECODE_BATCH: usize = 256;

/// A model in training, with everything a step needs.
pub struct Trainer<'a, B: Backend> {
    /// One per device, with the same weights; the first is the one validated and saved.
    replicas: Vec<Replica<B>>,
    /// The replicas' registration for the all-reduce, with more than one device.
    _peers: Option<Peers<B>>,
    /// Epochs, metrics, learning-rate decays and early stopping so far.
    pub state: TrainerState,
    data: &'a Dataset,
    inputs: RunInputs,
    config: &'a PipelineConfig,
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
    /// A new model, initialised from `trainer.seed`, on `devices` (one replica each; the
    /// first is the one validated and saved).
    pub fn start(
        config: &'a PipelineConfig,
        data: &'a Dataset,
        devices: &[B::Device],
    ) -> Result<Self> {
        let device = primary(devices);
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
        let state = TrainerState::new(&config.trainer, inputs.model.schedule());
        let optim = adam(&config.trainer).init();
        Self::assemble(config, data, inputs, model, optim, state, devices)
    }

    /// The run saved in the checkpoint `path`, after checking it was trained with this
    /// architecture and these inputs.
    pub fn resume(
        config: &'a PipelineConfig,
        data: &'a Dataset,
        path: &Path,
        devices: &[B::Device],
    ) -> Result<Self> {
        let inputs = run_inputs(config, data);
        let (model, record, info) = decoder::load_checkpoint::<
            Train<B>,
            SortedOptimRecord<Train<B>>,
        >(path, primary(devices))?;
        let state = check_resumable(path, &info, &inputs, &config.model, &config.trainer)?;
        let optim = adam(&config.trainer).init().load_record(unsorted(record));
        Self::assemble(config, data, inputs, model, optim, state, devices)
    }

    fn assemble(
        config: &'a PipelineConfig,
        data: &'a Dataset,
        inputs: RunInputs,
        model: Captioner<Train<B>>,
        optim: Optim<Train<B>>,
        state: TrainerState,
        devices: &[B::Device],
    ) -> Result<Self> {
        let peers = (devices.len() > 1)
            .then(|| Peers::register(devices))
            .transpose()?;
        let mut run = Self {
            replicas: vec![Replica::new(model, optim, primary(devices))],
            _peers: peers,
            state,
            data,
            inputs,
            config,
        };
        run.spread(&devices[1..]);
        Ok(run)
    }

    /// The first replica copied onto each of `devices`, after it.
    fn spread(&mut self, devices: &[B::Device]) {
        self.replicas.truncate(1);
        let copies: Vec<Replica<B>> = devices.iter().map(|d| self.replicas[0].fork(d)).collect();
        self.replicas.extend(copies);
    }

    /// The replica that is validated and saved.
    fn first(&self) -> &Replica<B> {
        &self.replicas[0]
    }

    /// How many devices train.
    pub fn devices(&self) -> usize {
        self.replicas.len()
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
        self.first().model.num_params()
    }

    /// One optimizer step on the train captions `batch` (indices into `data.train`), dropout
    /// drawn from `rng`.
    pub fn step(&mut self, batch: &[usize], learning_rate: f64, rng: &mut ChaCha8Rng) -> StepLoss {
        let captions = &self.data.train;
        let work = Work {
            rows: batch.iter().map(|&i| captions[i].image).collect(),
            captions: batch
                .iter()
                .map(|&i| captions[i].tokens.as_slice())
                .collect(),
            sampled: None,
        };
        self.descend(&work, learning_rate, Some(rng))
    }

    /// One optimizer step on `work`: on the one device, or split across the devices.
    fn descend(
        &mut self,
        work: &Work,
        learning_rate: f64,
        rng: Option<&mut ChaCha8Rng>,
    ) -> StepLoss {
        let clip_norm = self.config.trainer.clip_norm;
        let replicas = std::mem::take(&mut self.replicas);
        let (replicas, step) = match <[Replica<B>; 1]>::try_from(replicas) {
            Ok([alone]) => {
                let (loss, grads) = alone.gradients(self.data, work, None, rng);
                let alone = alone.update(grads, learning_rate, clip_norm);
                let step = StepLoss {
                    loss,
                    tokens: work.tokens(),
                };
                (vec![alone], step)
            }
            Err(replicas) => {
                parallel::descend(replicas, self.data, work, learning_rate, rng, clip_norm)
            }
        };
        self.replicas = replicas;
        step
    }

    /// The val loss and the val BLEU-4 of greedy captions, on the model without dropout.
    pub fn validate(&self) -> Result<Validation> {
        let model = self.first().plain();
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
        let first = &mut self.replicas[0];
        let (model, Skipped, _) =
            decoder::load_checkpoint::<Train<B>, Skipped>(best, &first.device)?;
        first.model = model;
        first.optim = adam(&self.config.trainer).init();
        let others: Vec<B::Device> = self.replicas[1..]
            .iter()
            .map(|r| r.device.clone())
            .collect();
        self.spread(&others);
        Ok(())
    }

    /// One self-critical step on the train images `images` (indices into
    /// `data.train_images`, and so into `scorer`'s reference sets).
    pub fn scst_step(
        &mut self,
        images: &[usize],
        scorer: &CiderD<'_>,
        rng: &mut ChaCha8Rng,
    ) -> ScstStepOutcome {
        let config = self.config;
        let (trainer, evaluator) = (&config.trainer, &config.evaluator);
        let per_image = trainer.scst_samples;
        let rows: Vec<usize> = images.iter().map(|&i| self.data.train_images[i]).collect();
        let distinct = self.first().images(self.data, &rows);
        let vocab = &self.data.vocab;
        let plain = self.first().plain();
        let (max_len, suppress_unk) = (evaluator.max_len, evaluator.suppress_unk);
        let samples = sample(&plain, &distinct, per_image, max_len, suppress_unk, rng);
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
        let work = Work {
            rows: rows
                .iter()
                .flat_map(|&row| std::iter::repeat_n(row, per_image))
                .collect(),
            captions: sequences.iter().map(Vec::as_slice).collect(),
            sampled: Some((
                caption_weights(&rewards.advantages, &sequences),
                SampledPolicy {
                    banned: banned_tokens(suppress_unk),
                },
            )),
        };
        // No dropout: the gradient is REINFORCE's for the distribution just sampled.
        let step = self.descend(&work, trainer.scst_learning_rate, None);
        ScstStepOutcome {
            loss: step.loss,
            rewards,
            tokens: step.tokens,
        }
    }

    /// Mean loss per target token over the val captions, in length-sorted batches.
    fn validation_loss(&self, model: &Captioner<B>) -> f64 {
        let captions = &self.data.val;
        let lengths: Vec<usize> = captions.iter().map(|c| c.tokens.len()).collect();
        let (mut sum, mut tokens) = (0.0, 0usize);
        for batch in sorted_batches(&lengths, self.config.trainer.batch_size) {
            let rows: Vec<usize> = batch.iter().map(|&i| captions[i].image).collect();
            let images = self.first().images(self.data, &rows);
            let ids: Vec<&[u32]> = batch
                .iter()
                .map(|&i| captions[i].tokens.as_slice())
                .collect();
            let teacher = TeacherBatch::<B>::new(&ids, &self.first().device);
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
            let images = self.first().images(self.data, chunk);
            for ids in greedy(model, &images, evaluator.max_len, evaluator.suppress_unk) {
                out.push(self.data.vocab.words(&ids)?);
            }
        }
        Ok(out)
    }

    /// Writes `last.mpk`, and `best.mpk` with `trained.json` when this epoch is the best.
    pub fn save(&self, dir: &ModelDir, best: bool) -> Result<()> {
        let info = trained_info(&self.inputs, &self.state)?;
        let Replica { model, optim, .. } = self.first();
        if best {
            decoder::save_checkpoint(&dir.best(), model, sorted(optim.to_record()), &info)?;
            contracts::atomic::write_atomically(
                &dir.trained_json(),
                serde_json::to_string_pretty(&info)?.as_bytes(),
            )?;
        }
        decoder::save_checkpoint(&dir.last(), model, sorted(optim.to_record()), &info)?;
        Ok(())
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

/// The device of the replica that is validated and saved.
fn primary<D>(devices: &[D]) -> &D {
    devices.first().expect("training needs a device")
}

/// What this run trains with: the architecture `[model]` asks for and the inputs' hashes and
/// encoder settings.
fn run_inputs(config: &PipelineConfig, data: &Dataset) -> RunInputs {
    RunInputs {
        model: CaptionerConfig::from_pipeline(&config.model, data.vocab.len()),
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
