//! ResNet parity with torchvision: the tiny torchvision-layout network of
//! `scripts/make_resnet_fixture.py`, loaded from `.pth` and `.safetensors`, reproduces
//! torchvision's features, folded and unfolded; the full-size key list is torchvision's.

mod common;

use burn::tensor::Tensor;
use common::{B, device, fixture, io, max_rel_error, tiny_config, to_vec};
use models::resnet::{ResNetConfig, WeightsSource, load_resnet, load_resnet_unfolded};

/// Loads `file`, runs the fixture input through the folded and unfolded network, and checks
/// both against torchvision's output.
fn check_parity(file: &str) {
    let io = io();
    let (input, expected) = (io["input"].tensor::<4>(), io["output"].f32s());
    let source = WeightsSource::File(fixture(file));

    let unfolded = load_resnet_unfolded::<B>(&tiny_config(), &source, &device()).unwrap();
    let out = unfolded.forward(input.clone());
    assert_eq!(out.dims(), [2, 128]);
    let err_unfolded = max_rel_error(&to_vec(out), &expected);

    let folded = load_resnet::<B>(&tiny_config(), &source, &device()).unwrap();
    assert_eq!(folded.feature_dim(), 128);
    let err_folded = max_rel_error(&to_vec(folded.forward(input)), &expected);

    println!("{file}: max rel error unfolded {err_unfolded:.2e}, folded {err_folded:.2e}");
    assert!(err_unfolded <= 1e-4, "{file} unfolded: {err_unfolded}");
    assert!(err_folded <= 1e-4, "{file} folded: {err_folded}");
}

#[test]
fn pth_reproduces_torchvision_features() {
    check_parity("tiny_resnet.pth");
}

#[test]
fn legacy_pth_reproduces_torchvision_features() {
    check_parity("tiny_resnet_legacy.pth");
}

#[test]
fn safetensors_reproduces_torchvision_features() {
    check_parity("tiny_resnet.safetensors");
}

#[test]
fn resnet50_tensor_list_is_torchvision_state_dict() {
    let text = std::fs::read_to_string(fixture("resnet50_keys.txt")).unwrap();
    let torchvision: Vec<(String, Vec<usize>)> = text
        .lines()
        .map(|line| line.split_once('\t').unwrap())
        .filter(|(key, _)| !key.starts_with("fc.") && !key.ends_with("num_batches_tracked"))
        .map(|(key, shape)| {
            (
                key.to_string(),
                shape.split(',').map(|d| d.parse().unwrap()).collect(),
            )
        })
        .collect();
    assert_eq!(torchvision.len(), 265);
    assert_eq!(ResNetConfig::resnet50().torchvision_tensors(), torchvision);
    assert_eq!(ResNetConfig::resnet50().feature_dim(), 2048);
}

#[test]
fn random_init_is_deterministic_and_seeded() {
    let config = tiny_config();
    let input = io()["input"].tensor::<4>();
    let run = |seed| {
        let model = load_resnet::<B>(&config, &WeightsSource::Random { seed }, &device()).unwrap();
        to_vec(model.forward(input.clone()))
    };
    let (a, b, c) = (run(7), run(7), run(8));
    assert_eq!(a, b, "same seed, different weights");
    assert_ne!(a, c, "different seeds, same weights");
    assert!(a.iter().all(|v| v.is_finite()));
}

#[test]
fn folded_matches_unfolded_on_random_weights() {
    let config = tiny_config();
    let source = WeightsSource::Random { seed: 3 };
    let unfolded = load_resnet_unfolded::<B>(&config, &source, &device()).unwrap();
    let input = io()["input"].tensor::<4>();
    let expected = to_vec(unfolded.forward(input.clone()));
    let folded = unfolded.fold();
    let err = max_rel_error(&to_vec(folded.forward(input)), &expected);
    println!("folded vs unfolded (random weights): max rel difference {err:.2e}");
    assert!(err <= 1e-5, "folded vs unfolded: {err}");
}

#[test]
fn resnet50_shapes_at_224() {
    // The full-size network on one image: only shapes are checked (random weights).
    let model = load_resnet::<B>(
        &ResNetConfig::resnet50(),
        &WeightsSource::Random { seed: 1 },
        &device(),
    )
    .unwrap();
    let input = Tensor::<B, 4>::random(
        [1, 3, 224, 224],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device(),
    );
    let out = model.forward(input);
    assert_eq!(out.dims(), [1, 2048]);
    assert_eq!(model.feature_dim(), 2048);
    let values = to_vec(out);
    let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    println!("random ResNet50 features: max |x| = {max}");
    assert!(
        values.iter().all(|v| v.is_finite() && *v >= 0.0),
        "pooled ReLU outputs"
    );
}
