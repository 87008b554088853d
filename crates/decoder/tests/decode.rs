//! The decode API against the teacher-forced forward pass, greedy search, checkpoint files
//! and the trained-captioner loader.

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use contracts::provenance::content_hash;
use contracts::tables::{VocabRow, VocabTable, write};
use contracts::{Provenance, Stage, WorkDir};
use decoder::captioner::Architecture;
use decoder::checkpoint::CHECKPOINT_FORMAT;
use decoder::merge::{MergeConfig, MergeModel};
use decoder::{
    CaptionModel, Captioner, CaptionerConfig, DecodeState, DecoderError, FeatureStats, Images,
    Skipped, TrainedInfo, greedy, load_captioner, load_checkpoint, save_checkpoint,
};

type B = kernels::Cpu;

fn config() -> MergeConfig {
    MergeConfig {
        vocab_size: 11,
        feature_dim: 6,
        embed_dim: 5,
        hidden_dim: 7,
        dropout: 0.5,
        merge: true,
    }
}

fn stats() -> FeatureStats {
    FeatureStats {
        mean: vec![0.5; 6],
        std: vec![2.0; 6],
    }
}

fn model() -> MergeModel<B> {
    config()
        .init::<B>(&stats(), 3, &Default::default())
        .unwrap()
}

fn captioner() -> Captioner<B> {
    Captioner::Merge(model())
}

fn features(rows: &[[f32; 6]]) -> Tensor<B, 2> {
    let values: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(
        TensorData::new(values, [rows.len(), 6]),
        &Default::default(),
    )
}

fn images(rows: &[[f32; 6]]) -> Images<B> {
    Images::pooled(features(rows))
}

fn tokens(ids: &[i64]) -> Tensor<B, 1, Int> {
    Tensor::from_data(
        TensorData::new(ids.to_vec(), [ids.len()]),
        &Default::default(),
    )
}

fn info(model: MergeConfig) -> TrainedInfo {
    TrainedInfo {
        format: CHECKPOINT_FORMAT,
        model: CaptionerConfig::Merge(model),
        standardized: true,
        encoder: None,
        vocab_hash: "v".into(),
        tokens_hash: "t".into(),
        features_hash: "f".into(),
        epoch: 3,
        trainer_state: serde_json::json!({"any": 1}),
    }
}

fn close(a: Tensor<B, 2>, b: Tensor<B, 2>) {
    let a: Vec<f32> = a.into_data().to_vec().unwrap();
    let b: Vec<f32> = b.into_data().to_vec().unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

#[test]
fn stepping_reproduces_the_teacher_forced_forward() {
    let model = model();
    let image = features(&[
        [1.0, 0.0, 2.0, -1.0, 0.5, 3.0],
        [0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
    ]);
    let inputs = [[1i64, 5, 7, 4], [1, 9, 4, 6]];
    let flat: Vec<i64> = inputs.iter().flatten().copied().collect();
    let teacher =
        Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [2, 4]), &Default::default());
    // [2, 4, vocab]
    let logits = model.forward(image.clone(), teacher, None);
    let mut state = model.start(&Images::pooled(image));
    for (t, (&first, &second)) in inputs[0].iter().zip(&inputs[1]).enumerate() {
        let (log_probs, next) = model.step(tokens(&[first, second]), state);
        state = next;
        let expected = log_softmax(logits.clone().narrow(1, t, 1).reshape([2, 11]), 1);
        close(log_probs, expected);
    }
}

#[test]
fn select_reorders_the_state_like_the_images() {
    let model = model();
    let a = [1.0, 0.0, 2.0, -1.0, 0.5, 3.0];
    let b = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
    let swapped = model.start(&images(&[a, b])).select(tokens(&[1, 0, 1]));
    let direct = model.start(&images(&[b, a, b]));
    let (x, _) = model.step(tokens(&[1, 1, 1]), swapped);
    let (y, _) = model.step(tokens(&[1, 1, 1]), direct);
    close(x, y);
}

#[test]
fn greedy_in_a_batch_equals_greedy_alone() {
    let model = model();
    let rows = [
        [1.0, 0.0, 2.0, -1.0, 0.5, 3.0],
        [0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
        [3.0, -2.0, 0.0, 0.0, 1.0, 0.0],
    ];
    let batch = greedy(&model, &images(&rows), 8, true);
    for (row, caption) in rows.iter().zip(&batch) {
        assert_eq!(&greedy(&model, &images(&[*row]), 8, true)[0], caption);
        assert!(caption.len() <= 8);
        assert!(
            caption.iter().all(|&id| id >= contracts::vocab::SPECIALS),
            "{caption:?}"
        );
    }
}

#[test]
fn checkpoints_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("best.mpk");
    let model = captioner();
    save_checkpoint(&path, &model, Skipped, &info(config())).unwrap();
    let (back, Skipped, info_back) =
        load_checkpoint::<B, Skipped>(&path, &Default::default()).unwrap();
    assert_eq!(info_back, info(config()));
    assert_eq!(back.config(), CaptionerConfig::Merge(config()));
    assert_eq!(back.feature_stats(), stats());
    let image = images(&[[1.0, 0.0, 2.0, -1.0, 0.5, 3.0]]);
    assert_eq!(
        greedy(&back, &image, 6, false),
        greedy(&model, &image, 6, false)
    );
    assert_eq!(back.num_params(), model.num_params());
    // Only the checkpoint is left: no temp file.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// A work dir with `model/best.mpk` and a `vocab.parquet` of `words` (11 tokens in all).
fn trained_work_dir(words: &[&str]) -> (tempfile::TempDir, WorkDir) {
    let dir = tempfile::tempdir().unwrap();
    let work = WorkDir::new(dir.path());
    let rows: Vec<VocabRow> = contracts::vocab::SPECIAL_TOKENS
        .iter()
        .chain(words)
        .enumerate()
        .map(|(id, token)| VocabRow {
            token_id: id as u32,
            token: token.to_string(),
            count: 1,
        })
        .collect();
    write::<VocabTable>(&work.vocab(), &rows, &Provenance::new(Stage::Tokenizer, ())).unwrap();
    let info = TrainedInfo {
        vocab_hash: content_hash(&work.vocab()).unwrap(),
        ..info(config())
    };
    std::fs::create_dir_all(work.model().path()).unwrap();
    save_checkpoint(&work.model().best(), &captioner(), Skipped, &info).unwrap();
    (dir, work)
}

#[test]
fn the_loader_gives_the_model_with_its_vocabulary() {
    let words = ["a", "b", "c", "d", "e", "f", "g"];
    let (_dir, work) = trained_work_dir(&words);
    let trained = load_captioner::<B>(&work, &Default::default()).unwrap();
    assert_eq!(trained.vocab.len(), 11);
    assert_eq!(trained.vocab.caption(&[4, 10, 3]).unwrap(), "a g <unk>");
    assert_eq!(trained.encoder(), None);
    let image = images(&[[1.0, 0.0, 2.0, -1.0, 0.5, 3.0]]);
    assert_eq!(
        greedy(&trained.model, &image, 6, false),
        greedy(&captioner(), &image, 6, false)
    );

    // Another vocabulary than the model's is refused.
    let other: Vec<VocabRow> = (0..11)
        .map(|id| VocabRow {
            token_id: id,
            token: contracts::vocab::SPECIAL_TOKENS
                .get(id as usize)
                .map_or(format!("x{id}"), |t| t.to_string()),
            count: 2,
        })
        .collect();
    write::<VocabTable>(
        &work.vocab(),
        &other,
        &Provenance::new(Stage::Tokenizer, ()),
    )
    .unwrap();
    let err = load_captioner::<B>(&work, &Default::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} was trained with another vocabulary than {}; rerun the trainer stage (`make model`)",
            work.model().best().display(),
            work.vocab().display()
        )
    );
}

#[test]
fn broken_checkpoints_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("best.mpk");
    let load =
        || load_checkpoint::<B, Skipped>(&path, &Default::default()).map(|(_, _, info)| info);
    save_checkpoint(&path, &captioner(), Skipped, &info(config())).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load().unwrap_err();
    assert!(matches!(err, DecoderError::Format { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: not a readable caption-model checkpoint (the file ends early: it was cut off, \
             by an interrupted copy or a full disk); retrain with `make model`",
            path.display()
        )
    );

    std::fs::write(&path, b"not a checkpoint at all").unwrap();
    let err = load().unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: not a readable caption-model checkpoint (invalid type: integer `110`, \
             expected struct BurnRecord); retrain with `make model`",
            path.display()
        )
    );

    // Weights that do not match the recorded architecture.
    let wider = MergeConfig {
        hidden_dim: 9,
        ..config()
    };
    save_checkpoint(&path, &captioner(), Skipped, &info(wider)).unwrap();
    let err = load().unwrap_err();
    assert!(matches!(err, DecoderError::Shape { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: tensor `lstm.input_weight` has shape [5, 28] but the model config recorded \
             with it needs [5, 36]",
            path.display()
        )
    );

    let empty = tempfile::tempdir().unwrap();
    let err = load_captioner::<B>(&WorkDir::new(empty.path()), &Default::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{} does not exist: no trained model here; run the trainer stage (`make model`)",
            WorkDir::new(empty.path()).model().best().display()
        )
    );
}

#[test]
fn optimizer_state_round_trips_when_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.mpk");
    let state: (u64, String) = (7, "adam".into());
    save_checkpoint(&path, &captioner(), state.clone(), &info(config())).unwrap();
    let (_, back, _) = load_checkpoint::<B, (u64, String)>(&path, &Default::default()).unwrap();
    assert_eq!(back, state);
}

#[test]
fn invalid_configs_are_refused() {
    let device = Default::default();
    let bad = MergeConfig {
        dropout: 1.0,
        ..config()
    };
    assert!(bad.init::<B>(&stats(), 0, &device).is_err());
    let bad = MergeConfig {
        vocab_size: 4,
        ..config()
    };
    assert!(bad.init::<B>(&stats(), 0, &device).is_err());
    assert!(
        config()
            .init::<B>(&FeatureStats::identity(5), 0, &device)
            .is_err()
    );
}

/// Beam search starts each image once and copies its state to the image's beams: every
/// model's first steps from that state are bit for bit those from starting every copy.
#[test]
fn starting_once_and_copying_the_state_is_starting_every_copy() {
    use decoder::captioner::CaptionerConfig as Config;
    use decoder::transformer::TransformerConfig;
    let device = Default::default();
    let grid: Vec<f32> = (0..3 * 4 * 6)
        .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
        .collect();
    let grid = Tensor::<B, 3>::from_data(TensorData::new(grid, [3, 4, 6]), &device);
    let batch = Images {
        pooled: grid.clone().mean_dim(1).reshape([3, 6]),
        grid: Some(grid),
    };
    let attention = decoder::attention::AttentionConfig {
        vocab_size: 11,
        feature_dim: 6,
        embed_dim: 5,
        hidden_dim: 7,
        attention_dim: 3,
        dropout: 0.0,
        attention_reg: 1.0,
    };
    let transformer = TransformerConfig {
        vocab_size: 11,
        feature_dim: 6,
        d_model: 8,
        heads: 2,
        feed_forward: 12,
        encoder_layers: 1,
        decoder_layers: 2,
        dropout: 0.0,
    };
    for config in [
        Config::Merge(config()),
        Config::Attention(attention),
        Config::Transformer(transformer),
    ] {
        let model = config.init::<B>(&stats(), 5, &device).unwrap();
        let copies = Tensor::<B, 1, Int>::from_data(
            TensorData::new(vec![0i64, 0, 1, 1, 2, 2], [6]),
            &device,
        );
        let mut once = model.start(&batch).select(copies.clone());
        let every_copy = Images {
            pooled: batch.pooled.clone().select(0, copies.clone()),
            grid: batch.grid.clone().map(|g| g.select(0, copies.clone())),
        };
        let mut every = model.start(&every_copy);
        for step in [[1i64, 1, 1, 1, 1, 1], [4, 5, 6, 7, 8, 9]] {
            let (a, next_once) = model.step(tokens(&step), once);
            let (b, next_every) = model.step(tokens(&step), every);
            let (a, b): (Vec<f32>, Vec<f32>) = (
                a.into_data().to_vec().unwrap(),
                b.into_data().to_vec().unwrap(),
            );
            assert_eq!(a, b, "{}", config.kind());
            (once, every) = (next_once, next_every);
        }
    }
}
