//! End-to-end training on the synthetic attribute dataset of `common`: learning, collapse,
//! determinism, resume and refusals. Tiny model dimensions keep each run to seconds.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use contracts::WorkDir;
use contracts::config::{DecoderKind, TransformerSettings};
use contracts::tables::{FEATURE_DIM, TokenRow, VocabTable};
use contracts::{PipelineConfig, Split};
use decoder::{Captioner, Images, Skipped, Trainable, greedy, load_captioner, load_checkpoint};
use trainer::{TrainOptions, TrainSummary};

type B = models::backend::Cpu;

fn train(config: &PipelineConfig, resume: bool) -> anyhow::Result<TrainSummary> {
    trainer::run(
        config,
        &TrainOptions {
            resume,
            progress: false,
        },
    )
}

/// Every float tensor of a checkpoint's model, in module order.
fn weights(path: &Path) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.push(param.val().into_data().to_vec().unwrap());
        }
    }
    let (model, Skipped, _) = load_checkpoint::<B, Skipped>(path, &Default::default()).unwrap();
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

/// A model trained once on the attribute dataset, shared by the tests that inspect it.
fn trained() -> &'static (common::Fixture, TrainSummary) {
    static TRAINED: OnceLock<(common::Fixture, TrainSummary)> = OnceLock::new();
    TRAINED.get_or_init(|| {
        let fixture = common::dataset([6, 1, 2], 3);
        let summary = train(&fixture.config(14), false).unwrap();
        (fixture, summary)
    })
}

/// Greedy captions (as text) of the fixture's test images, with their attribute triples.
fn test_captions(fixture: &common::Fixture) -> Vec<(String, [usize; 3], Vec<String>)> {
    let device = Default::default();
    let trained = load_captioner::<B>(&WorkDir::new(fixture.work_dir()), &device).unwrap();
    assert_eq!(
        trained.info.model.vocab_size(),
        common::vocab_rows(&[]).len()
    );
    let rows: Vec<usize> = (0..fixture.images.len())
        .filter(|&i| fixture.images[i].split == Split::Test)
        .collect();
    let values: Vec<f32> = rows
        .iter()
        .flat_map(|&i| fixture.feature(i).to_vec())
        .collect();
    let features =
        Tensor::<B, 2>::from_data(TensorData::new(values, [rows.len(), FEATURE_DIM]), &device);
    let captions = greedy(&trained.model, &Images::pooled(features), 12, true);
    rows.iter()
        .zip(captions)
        .map(|(&i, ids)| {
            (
                trained.vocab.caption(&ids).unwrap(),
                fixture.images[i].attributes,
                fixture.images[i].captions(),
            )
        })
        .collect()
}

/// Corpus BLEU-4 of greedy test captions against their references.
fn test_bleu4(captions: &[(String, [usize; 3], Vec<String>)]) -> f64 {
    let hypotheses: Vec<Vec<&str>> = captions
        .iter()
        .map(|(c, _, _)| c.split(' ').collect())
        .collect();
    let references: Vec<Vec<Vec<&str>>> = captions
        .iter()
        .map(|(_, _, refs)| refs.iter().map(|r| r.split(' ').collect()).collect())
        .collect();
    metrics::corpus_bleu4(&hypotheses, &references).unwrap()
}

#[test]
fn the_attention_model_learns_from_the_one_grid_region_that_holds_the_answer() {
    let fixture = common::dataset_with_grid([16, 1, 2], 5);
    let mut config = fixture.config(14);
    config.model.decoder = DecoderKind::Attention;
    config.model.attention.dim = 16;
    learns_from_the_one_grid_region_that_holds_the_answer(&fixture, &config);
}

#[test]
fn the_transformer_learns_from_the_one_grid_region_that_holds_the_answer() {
    let fixture = common::dataset_with_grid([16, 1, 2], 5);
    let mut config = fixture.config(14);
    config.model.decoder = DecoderKind::Transformer;
    config.model.transformer = TransformerSettings {
        d_model: 32,
        feed_forward: 64,
        ..small_transformer()
    };
    config.trainer.warmup_steps = 4;
    learns_from_the_one_grid_region_that_holds_the_answer(&fixture, &config);
}

/// A Transformer the size of the tests' LSTMs.
fn small_transformer() -> TransformerSettings {
    TransformerSettings {
        d_model: 16,
        heads: 4,
        feed_forward: 32,
        encoder_layers: 1,
        decoder_layers: 1,
        dropout: 0.1,
    }
}

/// Trains `config`'s grid model on `fixture`, whose captions name what one region of each
/// image holds: greedy test captions must score BLEU-4 0.9, with one map per word.
fn learns_from_the_one_grid_region_that_holds_the_answer(
    fixture: &common::Fixture,
    config: &PipelineConfig,
) {
    let summary = train(config, false).unwrap();
    let device = Default::default();
    let work = WorkDir::new(fixture.work_dir());
    let trained = load_captioner::<B>(&work, &device).unwrap();
    assert_eq!(trained.info.model.kind(), config.model.decoder);
    let test: Vec<String> = fixture
        .images
        .iter()
        .filter(|i| i.split == Split::Test)
        .map(|i| i.name.clone())
        .collect();
    let store = contracts::grid::GridStore::build(&work.grid(), &test, work.root()).unwrap();
    let shape = store.shape();
    let rows: Vec<usize> = (0..test.len()).collect();
    let grid = Tensor::<B, 3>::from_data(
        TensorData::new(
            store.read(&rows).unwrap(),
            [test.len(), shape.regions(), shape.channels],
        ),
        &device,
    );
    let index: Vec<usize> = (0..fixture.images.len())
        .filter(|&i| fixture.images[i].split == Split::Test)
        .collect();
    let pooled: Vec<f32> = index
        .iter()
        .flat_map(|&i| fixture.feature(i).to_vec())
        .collect();
    let images = Images {
        pooled: Tensor::from_data(TensorData::new(pooled, [test.len(), FEATURE_DIM]), &device),
        grid: Some(grid),
    };
    let (captions, attention): (Vec<Vec<u32>>, Vec<Vec<Vec<f32>>>) =
        decoder::greedy_attended(&trained.model, &images, 12, true)
            .into_iter()
            .unzip();
    let captions: Vec<(String, [usize; 3], Vec<String>)> = index
        .iter()
        .zip(&captions)
        .map(|(&i, ids)| {
            (
                trained.vocab.caption(ids).unwrap(),
                fixture.images[i].attributes,
                fixture.images[i].captions(),
            )
        })
        .collect();
    let bleu = test_bleu4(&captions);
    assert!(
        bleu >= 0.9,
        "test BLEU-4 {bleu:.3}; history {:#?}; captions {:#?}",
        summary.history,
        captions.iter().map(|(c, _, _)| c).collect::<Vec<_>>()
    );
    // One map per word over the 4 regions.
    for (ids, maps) in captions.iter().zip(&attention) {
        assert_eq!(ids.0.split(' ').count(), maps.len());
        assert!(maps.iter().all(|m| m.len() == 4));
    }
}

#[test]
fn learns_to_caption_held_out_images() {
    let (fixture, summary) = trained();
    let captions = test_captions(fixture);
    let hypotheses: Vec<Vec<&str>> = captions
        .iter()
        .map(|(c, _, _)| c.split(' ').collect())
        .collect();
    let references: Vec<Vec<Vec<&str>>> = captions
        .iter()
        .map(|(_, _, refs)| refs.iter().map(|r| r.split(' ').collect()).collect())
        .collect();
    let bleu = metrics::corpus_bleu4(&hypotheses, &references).unwrap();
    let exact = captions
        .iter()
        .filter(|(c, _, refs)| refs.contains(c))
        .count();
    assert!(
        bleu >= 0.9,
        "test BLEU-4 {bleu:.3}, {exact}/{} exact; history {:#?}; captions {:#?}",
        captions.len(),
        summary.history,
        captions.iter().map(|(c, _, _)| c).collect::<Vec<_>>()
    );
    // The artifacts are all there.
    for name in [
        "best.mpk",
        "last.mpk",
        "config.json",
        "trained.json",
        "metrics.csv",
        "loss.svg",
    ] {
        assert!(fixture.model_dir().join(name).exists(), "{name} missing");
    }
    assert_eq!(
        common::metrics_without_timing(&fixture.model_dir()).len(),
        summary.history.len() + 1
    );
}

/// Regression guard for the seed's failure: on raw features a model wrote one caption for every
/// image. Images with different attributes must get different captions. (With
/// `model.standardize = false` this fixture reproduces the collapse: every test image gets
/// "a green circle on a black background".)
#[test]
fn distinct_images_get_distinct_captions() {
    let (fixture, _) = trained();
    let captions = test_captions(fixture);
    for (i, (a, attr_a, _)) in captions.iter().enumerate() {
        for (b, attr_b, _) in &captions[i + 1..] {
            if attr_a != attr_b {
                assert_ne!(
                    a, b,
                    "images with attributes {attr_a:?} and {attr_b:?} got the same caption"
                );
            }
        }
    }
}

#[test]
fn same_seed_gives_identical_metrics_weights_and_checkpoint_files() {
    let fixture = common::dataset([2, 1, 0], 5);
    let other = tempfile::tempdir().unwrap();
    let config = fixture.config(2);
    train(&config, false).unwrap();
    let first = common::metrics_without_timing(&fixture.model_dir());
    let first_weights = weights(&fixture.model_dir().join("last.mpk"));
    // The same inputs in another directory, trained again.
    common::write_inputs(other.path(), &fixture.images, &fixture.features, &[]);
    let mut config = config.clone();
    config.paths.work_dir = other.path().to_path_buf();
    train(&config, false).unwrap();
    let model_dir = other.path().join(contracts::artifacts::MODEL_DIR);
    assert_eq!(common::metrics_without_timing(&model_dir), first);
    assert_eq!(weights(&model_dir.join("last.mpk")), first_weights);
    assert_eq!(first.len(), 3);
    // Byte for byte: no timings, random parameter ids or hash-map order in a checkpoint.
    for name in ["best.mpk", "last.mpk"] {
        let a = std::fs::read(fixture.model_dir().join(name)).unwrap();
        let b = std::fs::read(model_dir.join(name)).unwrap();
        assert!(a == b, "{name} differs between two runs with the same seed");
    }
}

#[test]
fn resume_gives_the_same_result_as_an_uninterrupted_run() {
    let interrupted = common::dataset([2, 1, 0], 6);
    let config = interrupted.config(1);
    train(&config, false).unwrap();
    let mut config = config.clone();
    config.trainer.epochs = 2;
    let summary = train(&config, true).unwrap();
    assert_eq!(summary.epochs_run, 1);
    assert_eq!(summary.history.len(), 2);

    let straight = tempfile::tempdir().unwrap();
    common::write_inputs(
        straight.path(),
        &interrupted.images,
        &interrupted.features,
        &[],
    );
    let mut config = config.clone();
    config.paths.work_dir = straight.path().to_path_buf();
    train(&config, false).unwrap();
    let straight_dir = straight.path().join(contracts::artifacts::MODEL_DIR);
    assert_eq!(
        common::metrics_without_timing(&interrupted.model_dir()),
        common::metrics_without_timing(&straight_dir)
    );
    assert_eq!(
        weights(&interrupted.model_dir().join("last.mpk")),
        weights(&straight_dir.join("last.mpk"))
    );
    assert_eq!(
        weights(&interrupted.model_dir().join("best.mpk")),
        weights(&straight_dir.join("best.mpk"))
    );
    // The timings of the epoch before the interruption survive in metrics.csv.
    let csv = std::fs::read_to_string(interrupted.model_dir().join("metrics.csv")).unwrap();
    for line in csv.lines() {
        let timing: Vec<&str> = line.rsplit(',').take(2).collect();
        assert!(timing.iter().all(|field| !field.is_empty()), "{line}");
    }

    // Resuming a finished run trains nothing.
    let again = train(&config, true).unwrap();
    assert_eq!(again.epochs_run, 0);
}

/// The fixture with one cross-entropy epoch and `scst` self-critical ones.
fn scst_config(fixture: &common::Fixture, scst: usize) -> PipelineConfig {
    let mut config = fixture.config(1);
    config.trainer.scst_epochs = scst;
    config.trainer.scst_samples = 3;
    config.trainer.scst_learning_rate = 1e-3;
    config
}

#[test]
fn self_critical_epochs_are_deterministic_and_resume_exactly() {
    let fixture = common::dataset([2, 1, 0], 12);
    let summary = train(&scst_config(&fixture, 2), false).unwrap();
    assert_eq!(summary.history.len(), 3);
    let csv = std::fs::read_to_string(fixture.model_dir().join("metrics.csv")).unwrap();
    let phases: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(phases, ["xe", "scst", "scst"]);
    for line in csv.lines().skip(2) {
        let fields: Vec<&str> = line.split(',').collect();
        assert!(!fields[7].is_empty() && !fields[8].is_empty(), "{line}");
    }

    // The same seed elsewhere: the same bytes.
    let again = tempfile::tempdir().unwrap();
    common::write_inputs(again.path(), &fixture.images, &fixture.features, &[]);
    let mut config = scst_config(&fixture, 2);
    config.paths.work_dir = again.path().to_path_buf();
    train(&config, false).unwrap();
    let again_dir = again.path().join(contracts::artifacts::MODEL_DIR);
    for name in ["best.mpk", "last.mpk"] {
        let a = std::fs::read(fixture.model_dir().join(name)).unwrap();
        let b = std::fs::read(again_dir.join(name)).unwrap();
        assert!(
            a == b,
            "{name} differs between two self-critical runs with the same seed"
        );
    }

    // Interrupted after the first self-critical epoch, then resumed.
    let resumed = tempfile::tempdir().unwrap();
    common::write_inputs(resumed.path(), &fixture.images, &fixture.features, &[]);
    let mut config = scst_config(&fixture, 1);
    config.paths.work_dir = resumed.path().to_path_buf();
    train(&config, false).unwrap();
    config.trainer.scst_epochs = 2;
    let summary = train(&config, true).unwrap();
    assert_eq!(summary.epochs_run, 1);
    let resumed_dir = resumed.path().join(contracts::artifacts::MODEL_DIR);
    assert_eq!(
        common::metrics_without_timing(&resumed_dir),
        common::metrics_without_timing(&fixture.model_dir())
    );
    assert_eq!(
        weights(&resumed_dir.join("last.mpk")),
        weights(&fixture.model_dir().join("last.mpk"))
    );
}

#[test]
fn resume_refuses_another_vocabulary_or_model_config() {
    let fixture = common::dataset([2, 1, 0], 7);
    let config = fixture.config(1);
    train(&config, false).unwrap();

    let mut bigger = config.clone();
    bigger.model.hidden_dim += 8;
    bigger.trainer.epochs = 2;
    let model_dir = fixture.model_dir();
    let refused = |checkpoint: &str| {
        format!(
            "cannot resume: run the trainer without --resume (or delete {}) to start over: {}: \
             {checkpoint}; train from scratch (without --resume) or restore the inputs and \
             config it was trained with",
            model_dir.display(),
            model_dir.join("last.mpk").display()
        )
    };
    let err = format!("{:#}", train(&bigger, true).unwrap_err());
    assert_eq!(
        err,
        refused(
            "the checkpoint has model config {\"decoder\":\"merge\",\"vocab_size\":19,\
             \"feature_dim\":2048,\"embed_dim\":24,\"hidden_dim\":48,\"dropout\":0.1,\
             \"merge\":true} (standardize = true), the config now asks for {\"decoder\":\
             \"merge\",\"vocab_size\":19,\"feature_dim\":2048,\"embed_dim\":24,\
             \"hidden_dim\":56,\"dropout\":0.1,\"merge\":true} (standardize = true)"
        )
    );

    let mut unstandardized = config.clone();
    unstandardized.model.standardize = false;
    unstandardized.trainer.epochs = 2;
    let err = format!("{:#}", train(&unstandardized, true).unwrap_err());
    assert_eq!(
        err,
        refused(
            "the checkpoint has model config {\"decoder\":\"merge\",\"vocab_size\":19,\
             \"feature_dim\":2048,\"embed_dim\":24,\"hidden_dim\":48,\"dropout\":0.1,\
             \"merge\":true} (standardize = true), the config now asks for {\"decoder\":\
             \"merge\",\"vocab_size\":19,\"feature_dim\":2048,\"embed_dim\":24,\
             \"hidden_dim\":48,\"dropout\":0.1,\"merge\":true} (standardize = false)"
        )
    );

    // Another vocabulary: one more word.
    let work = fixture.work_dir();
    let (_, provenance) =
        contracts::tables::read::<VocabTable>(&work.join("vocab.parquet")).unwrap();
    contracts::tables::write::<VocabTable>(
        &work.join("vocab.parquet"),
        &common::vocab_rows(&["extra"]),
        &provenance.unwrap(),
    )
    .unwrap();
    let mut more = config.clone();
    more.trainer.epochs = 2;
    let err = format!("{:#}", train(&more, true).unwrap_err());
    assert_eq!(
        err,
        refused(
            "the checkpoint was trained with a different vocabulary (vocab.parquet has changed \
             since)"
        )
    );

    // Without --resume, the old model is simply overwritten.
    train(&more, false).unwrap();
}

#[test]
fn a_caption_without_features_is_refused_by_name() {
    let fixture = common::dataset([1, 1, 0], 8);
    let ghost = TokenRow {
        image: "ghost.jpg".into(),
        caption_idx: 0,
        split: Split::Train,
        token_ids: vec![1, 4, 2],
    };
    common::write_inputs(
        &fixture.work_dir(),
        &fixture.images,
        &fixture.features,
        &[ghost],
    );
    let err = format!("{:#}", train(&fixture.config(1), false).unwrap_err());
    let work = fixture.work_dir();
    assert_eq!(
        err,
        format!(
            "{}: image ghost.jpg (caption 0) has no feature vector in {}; rerun the featurizer \
             stage (`make features`) or the tokenizer stage (`make tokens`)",
            work.join("tokens.parquet").display(),
            work.join("features").display()
        )
    );
}

#[test]
fn an_empty_train_split_is_refused() {
    let fixture = common::dataset([0, 1, 1], 9);
    let err = format!("{:#}", train(&fixture.config(1), false).unwrap_err());
    assert_eq!(
        err,
        format!(
            "{}: the train split has no captions, so there is nothing to train on; rerun the \
             cleaner and tokenizer stages (`make tokens`)",
            fixture.work_dir().join("tokens.parquet").display()
        )
    );
}

#[test]
fn resume_without_a_checkpoint_starts_a_new_run() {
    let fixture = common::dataset([1, 1, 0], 10);
    let summary = train(&fixture.config(1), true).unwrap();
    assert_eq!(summary.epochs_run, 1);
    assert!(fixture.model_dir().join("last.mpk").exists());
}

#[test]
fn help_documents_resume_and_overwrite() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        help.contains("--resume") && help.contains("overwritten"),
        "{help}"
    );
}

#[test]
fn a_checkpoint_with_another_optimizer_state_is_refused_with_a_way_out() {
    // The optimizer state of burn's own Adam, as builds before the fused optimizer wrote it.
    type AD = burn::backend::Autodiff<B>;
    use burn::optim::{AdamConfig, Optimizer};
    let fixture = common::dataset([2, 1, 0], 9);
    let config = fixture.config(1);
    train(&config, false).unwrap();
    let last = fixture.model_dir().join("last.mpk");
    let device = Default::default();
    let (model, Skipped, info) = load_checkpoint::<AD, Skipped>(&last, &device).unwrap();
    let mut optim = AdamConfig::new().init::<AD, Captioner<AD>>();
    let images = Images::pooled(Tensor::<AD, 2>::zeros([1, FEATURE_DIM], &device));
    let caption: &[u32] = &[contracts::vocab::START, 5, contracts::vocab::END];
    let batch = decoder::TeacherBatch::new(&[caption], &device);
    let (_, grads) = model.loss_and_grads(&images, &batch, None);
    let model = optim.step(1e-3, model, grads);
    decoder::save_checkpoint(&last, &model, optim.to_record(), &info).unwrap();

    let mut more = config.clone();
    more.trainer.epochs = 2;
    let err = format!("{:#}", train(&more, true).unwrap_err());
    assert_eq!(
        err,
        format!(
            "cannot resume: run the trainer without --resume (or delete {}) to start over: {}: \
             not a readable caption-model checkpoint (Unable to load record. Error: \
             Unknown(\"invalid type: map, expected a sequence\")); retrain with `make model`",
            fixture.model_dir().display(),
            last.display()
        )
    );
}

/// Every epoch's train and val loss, cross-entropy and self-critical ones.
fn losses(summary: &TrainSummary) -> Vec<[f64; 2]> {
    summary
        .history
        .iter()
        .map(|epoch| [epoch.train_loss, epoch.val_loss])
        .collect()
}

#[test]
fn a_batch_split_across_devices_trains_as_it_does_on_one() {
    let fixture = common::dataset_with_grid([2, 1, 0], 21);
    // 7 captions go to 2 devices as slices of 4 and 3; 2 captions on 3 devices leave one idle.
    // The two runs sum in different orders, and each step feeds its rounding into the next:
    // at batch size 2 (four times the steps) the attention model's losses drift apart by
    // 1e-4 in the second epoch, so that case trains one epoch. Self-critical sampling turns
    // rounding differences into other samples now and then, so one self-critical epoch is
    // compared on the 2-device runs only.
    for &decoder in DecoderKind::ALL {
        for (devices, batch_size, epochs, scst_epochs) in [(2, 7, 2, 1), (3, 2, 1, 0)] {
            let mut config = scst_config(&fixture, scst_epochs);
            config.trainer.epochs = epochs;
            config.trainer.batch_size = batch_size;
            config.trainer.learning_rate = 1e-3;
            config.model.decoder = decoder;
            config.model.attention.dim = 16;
            config.model.transformer = small_transformer();
            // Each device draws its own dropout masks: only without dropout are the runs
            // the same.
            config.model.dropout = 0.0;
            config.model.transformer.dropout = 0.0;
            let one = train(&config, false).unwrap();
            config.trainer.devices = vec!["cpu".parse().unwrap(); devices];
            let split = train(&config, false).unwrap();
            assert_eq!((one.devices, split.devices), (1, devices));
            assert_eq!(one.history.len(), epochs + scst_epochs);
            for (epoch, (a, b)) in losses(&one).iter().zip(losses(&split)).enumerate() {
                for (a, b) in a.iter().zip(b) {
                    // Relative, except near 0 (a self-critical loss).
                    assert!(
                        (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                        "{decoder:?} on {devices} devices, epoch {}: {:?} against {:?}",
                        epoch + 1,
                        losses(&one),
                        losses(&split)
                    );
                }
            }
        }
    }
}
