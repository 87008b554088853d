//! Shared helpers for the models crate's integration tests: fixture paths, the reference
//! tensors written by `scripts/make_resnet_fixture.py`, and small numeric comparisons.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use models::resnet::ResNetConfig;
use safetensors::{Dtype, SafeTensors};

pub type B = Flex;

pub fn device() -> burn::backend::flex::FlexDevice {
    Default::default()
}

/// The tiny network the fixtures were made with (see the script).
pub fn tiny_config() -> ResNetConfig {
    ResNetConfig::new()
        .with_layers([2, 1, 1, 1])
        .with_base_planes(4)
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// A tensor from a safetensors file: shape and raw little-endian bytes.
pub struct Raw {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Raw {
    pub fn f32s(&self) -> Vec<f32> {
        assert_eq!(self.dtype, Dtype::F32);
        self.bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    pub fn tensor<const D: usize>(&self) -> Tensor<B, D> {
        Tensor::from_data(TensorData::new(self.f32s(), self.shape.clone()), &device())
    }
}

/// Every tensor of a safetensors file, by name.
pub fn read_safetensors(path: &std::path::Path) -> BTreeMap<String, Raw> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let raw = Raw {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                bytes: view.data().to_vec(),
            };
            (name, raw)
        })
        .collect()
}

/// Writes tensors as a safetensors file.
pub fn write_safetensors(path: &std::path::Path, tensors: &BTreeMap<String, Raw>) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, r)| {
            let view =
                safetensors::tensor::TensorView::new(r.dtype, r.shape.clone(), &r.bytes).unwrap();
            (k.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// The reference inputs and outputs.
pub fn io() -> BTreeMap<String, Raw> {
    read_safetensors(&fixture("tiny_resnet_io.safetensors"))
}

pub fn to_vec<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// max |a - b| / max |b|.
pub fn max_rel_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}
