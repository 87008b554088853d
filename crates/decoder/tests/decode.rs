//! The decode API against the teacher-forced forward pass, greedy search, and checkpoint files.

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use decoder::trained::CHECKPOINT_FORMAT;
use decoder::{
    CaptionModel, CaptionModelConfig, DecoderError, FeatureStats, Skipped, TrainedInfo, greedy,
    load_checkpoint, load_trained, save_checkpoint,
};

type B = models::backend::Cpu;

fn config() -> CaptionModelConfig {
    CaptionModelConfig {
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

fn model() -> CaptionModel<B> {
    config()
        .init::<B>(&stats(), 3, &Default::default())
        .unwrap()
}

fn features(rows: &[[f32; 6]]) -> Tensor<B, 2> {
    let values: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(
        TensorData::new(values, [rows.len(), 6]),
        &Default::default(),
    )
}

fn tokens(ids: &[i64]) -> Tensor<B, 1, Int> {
    Tensor::from_data(
        TensorData::new(ids.to_vec(), [ids.len()]),
        &Default::default(),
    )
}

fn info(model: CaptionModelConfig) -> TrainedInfo {
    TrainedInfo {
        format: CHECKPOINT_FORMAT,
        model,
        standardized: true,
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
    let mut state = model.start(image);
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
    let swapped = model.start(features(&[a, b])).select(tokens(&[1, 0, 1]));
    let direct = model.start(features(&[b, a, b]));
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
    let batch = greedy(&model, features(&rows), 8, true);
    for (row, caption) in rows.iter().zip(&batch) {
        assert_eq!(&greedy(&model, features(&[*row]), 8, true)[0], caption);
        assert!(caption.len() <= 8);
        assert!(
            caption.iter().all(|&id| id >= decoder::SPECIALS),
            "{caption:?}"
        );
    }
}

#[test]
fn checkpoints_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("best.mpk");
    let model = model();
    save_checkpoint(&path, &model, Skipped, &info(config())).unwrap();
    let (back, info_back) = load_trained::<B>(dir.path(), &Default::default()).unwrap();
    assert_eq!(info_back, info(config()));
    assert_eq!(back.config(), config());
    assert_eq!(back.feature_stats(), stats());
    let image = features(&[[1.0, 0.0, 2.0, -1.0, 0.5, 3.0]]);
    assert_eq!(
        greedy(&back, image.clone(), 6, false),
        greedy(&model, image, 6, false)
    );
    assert_eq!(back.num_params(), model.num_params());
    // Only the checkpoint is left: no temp file.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn broken_checkpoints_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("best.mpk");
    save_checkpoint(&path, &model(), Skipped, &info(config())).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_trained::<B>(dir.path(), &Default::default()).unwrap_err();
    assert!(matches!(err, DecoderError::Format { .. }), "{err}");
    assert!(err.to_string().contains("best.mpk"), "{err}");

    std::fs::write(&path, b"not a checkpoint at all").unwrap();
    let err = load_trained::<B>(dir.path(), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("best.mpk") && err.contains("not a readable"),
        "{err}"
    );

    // Weights that do not match the recorded architecture.
    let wider = CaptionModelConfig {
        hidden_dim: 9,
        ..config()
    };
    save_checkpoint(&path, &model(), Skipped, &info(wider)).unwrap();
    let err = load_trained::<B>(dir.path(), &Default::default()).unwrap_err();
    assert!(matches!(err, DecoderError::Shape { .. }), "{err}");
    assert!(
        err.to_string().contains("best.mpk") && err.to_string().contains("lstm"),
        "{err}"
    );

    let empty = tempfile::tempdir().unwrap();
    let err = load_trained::<B>(empty.path(), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("make model"), "{err}");
}

#[test]
fn optimizer_state_round_trips_when_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.mpk");
    let state: (u64, String) = (7, "adam".into());
    save_checkpoint(&path, &model(), state.clone(), &info(config())).unwrap();
    let (_, back, _) = load_checkpoint::<B, (u64, String)>(&path, &Default::default()).unwrap();
    assert_eq!(back, state);
}

#[test]
fn invalid_configs_are_refused() {
    let device = Default::default();
    let bad = CaptionModelConfig {
        dropout: 1.0,
        ..config()
    };
    assert!(bad.init::<B>(&stats(), 0, &device).is_err());
    let bad = CaptionModelConfig {
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
