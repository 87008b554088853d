//! Weight files are untrusted: every broken file is an error that names the file (and the
//! tensor, when one tensor is at fault), never a panic or a silently half-loaded network.

mod common;

use std::path::Path;

use common::{B, device, fixture, read_safetensors, tiny_config, write_safetensors};
use models::resnet::{ModelError, ResNetConfig, WeightsSource, load_resnet};

fn load(path: &Path) -> Result<(), ModelError> {
    load_resnet::<B>(
        &tiny_config(),
        &WeightsSource::File(path.to_owned()),
        &device(),
    )
    .map(|_| ())
}

fn load_err(path: &Path) -> (ModelError, String) {
    let err = load(path).expect_err("loading should fail");
    let message = err.to_string();
    println!("{message}");
    assert!(
        message.contains(&path.display().to_string()),
        "no file name in: {message}"
    );
    (err, message)
}

#[test]
fn truncated_pth_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("tiny_resnet.pth")).unwrap();
    for keep in [bytes.len() / 2, 100, 0] {
        let path = dir.path().join(format!("truncated_{keep}.pth"));
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let (err, message) = load_err(&path);
        assert!(matches!(err, ModelError::Read { .. }), "{message}");
    }
}

#[test]
fn truncated_legacy_pth_is_an_error_not_zeros() {
    // burn-store's legacy reader zero-fills tensor data it cannot read; the loader must refuse
    // the file instead, however little is missing.
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("tiny_resnet_legacy.pth")).unwrap();
    for cut in [1, 10, bytes.len() / 2] {
        let path = dir.path().join(format!("legacy_minus_{cut}.pth"));
        std::fs::write(&path, &bytes[..bytes.len() - cut]).unwrap();
        let (err, message) = load_err(&path);
        assert!(matches!(err, ModelError::Read { .. }), "{message}");
    }
}

#[test]
fn truncated_safetensors_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("tiny_resnet.safetensors")).unwrap();
    let path = dir.path().join("truncated.safetensors");
    std::fs::write(&path, &bytes[..bytes.len() - 1000]).unwrap();
    let (err, message) = load_err(&path);
    assert!(matches!(err, ModelError::Read { .. }), "{message}");
}

#[test]
fn foreign_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // A text file with a weights extension, one without, and a missing file.
    let text = dir.path().join("notes.pth");
    std::fs::write(&text, "these are not weights\n").unwrap();
    assert!(matches!(load_err(&text).0, ModelError::Read { .. }));

    let json = dir.path().join("weights.safetensors");
    std::fs::write(&json, "{\"a\": 1}").unwrap();
    assert!(matches!(load_err(&json).0, ModelError::Read { .. }));

    let unknown = dir.path().join("weights.bin");
    std::fs::write(&unknown, "hello world, not a model").unwrap();
    assert!(matches!(
        load_err(&unknown).0,
        ModelError::UnknownFormat { .. }
    ));

    let missing = dir.path().join("absent.pth");
    assert!(matches!(load_err(&missing).0, ModelError::Read { .. }));
}

#[test]
fn pth_format_is_sniffed_without_extension() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resnet_weights");
    std::fs::copy(fixture("tiny_resnet.pth"), &path).unwrap();
    load(&path).unwrap();
}

/// Writes the fixture state dict after `edit` to a temporary `.safetensors` file.
fn edited(
    dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut std::collections::BTreeMap<String, common::Raw>),
) -> std::path::PathBuf {
    let mut tensors = read_safetensors(&fixture("tiny_resnet.safetensors"));
    edit(&mut tensors);
    let path = dir.join(name);
    write_safetensors(&path, &tensors);
    path
}

#[test]
fn missing_tensor_names_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(dir.path(), "missing.safetensors", |t| {
        t.remove("layer2.0.downsample.1.running_var").unwrap();
    });
    let (err, message) = load_err(&path);
    assert!(matches!(err, ModelError::MissingTensor { .. }), "{message}");
    assert_eq!(
        message,
        format!(
            "weights file {} lacks tensor `layer2.0.downsample.1.running_var`",
            path.display()
        )
    );
}

#[test]
fn wrong_shape_names_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(dir.path(), "shape.safetensors", |t| {
        let raw = t.get_mut("layer3.0.conv2.weight").unwrap();
        // [16, 16, 3, 3] -> [16, 144, 1, 1]: same number of values, wrong layout.
        raw.shape = vec![16, 144, 1, 1];
    });
    let (err, message) = load_err(&path);
    assert!(matches!(err, ModelError::ShapeMismatch { .. }), "{message}");
    assert_eq!(
        message,
        format!(
            "weights file {}: tensor `layer3.0.conv2.weight` has shape [16, 144, 1, 1], \
             expected [16, 16, 3, 3]",
            path.display()
        )
    );
}

#[test]
fn unexpected_tensor_names_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(dir.path(), "extra.safetensors", |t| {
        let raw = common::Raw {
            dtype: safetensors::Dtype::F32,
            shape: vec![1],
            bytes: 1f32.to_le_bytes().to_vec(),
        };
        t.insert("layer5.0.conv1.weight".into(), raw);
    });
    let (err, message) = load_err(&path);
    assert!(
        matches!(err, ModelError::UnexpectedTensor { .. }),
        "{message}"
    );
    assert_eq!(
        message,
        format!(
            "weights file {} has unexpected tensor `layer5.0.conv1.weight`",
            path.display()
        )
    );
}

#[test]
fn integer_tensor_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(dir.path(), "dtype.safetensors", |t| {
        t.get_mut("bn1.running_mean").unwrap().dtype = safetensors::Dtype::I32;
    });
    let (err, message) = load_err(&path);
    assert!(matches!(err, ModelError::DType { .. }), "{message}");
    assert_eq!(
        message,
        format!(
            "weights file {}: tensor `bn1.running_mean` has dtype I32, expected a float type",
            path.display()
        )
    );
}

#[test]
fn double_precision_file_loads_as_f32() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(dir.path(), "f64.safetensors", |t| {
        for raw in t
            .values_mut()
            .filter(|r| r.dtype == safetensors::Dtype::F32)
        {
            let wide: Vec<u8> = raw
                .f32s()
                .iter()
                .flat_map(|v| (*v as f64).to_le_bytes())
                .collect();
            raw.dtype = safetensors::Dtype::F64;
            raw.bytes = wide;
        }
    });
    load(&path).unwrap();
}

#[test]
fn weights_for_another_depth_are_rejected() {
    // The tiny file for a network with one block more in stage 1: the block's tensors are missing.
    let config = ResNetConfig::new()
        .with_layers([3, 1, 1, 1])
        .with_base_planes(4);
    let path = fixture("tiny_resnet.pth");
    let err = load_resnet::<B>(&config, &WeightsSource::File(path.clone()), &device()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "weights file {} lacks tensor `layer1.2.conv1.weight` (and 14 more)",
            path.display()
        )
    );
}
