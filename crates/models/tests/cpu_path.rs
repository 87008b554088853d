//! The CPU path (`FoldedResNet::forward` on the CPU backend) and burn's tensor operations
//! (`forward_tensor_ops`, the path of the GPU backends) against the same references: the
//! torchvision fixtures of `scripts/make_resnet_fixture.py`, and each other on the full-size
//! ResNet50 at 224x224.

mod common;

use burn::tensor::{Distribution, Tensor, TensorData};
use common::{B, cosine, device, fixture, io, max_rel_error, tiny_config, to_vec};
use models::preprocess::normalize;
use models::resnet::{ResNetConfig, WeightsSource, load_resnet};

/// The bounds of the featurizer's parity with torchvision.
const MIN_COSINE: f64 = 0.999_99;
const MAX_REL_ERROR: f32 = 1e-4;

fn check(what: &str, got: &[f32], expected: &[f32], max_rel: f32) {
    let (cos, err) = (cosine(got, expected), max_rel_error(got, expected));
    println!(
        "{what}: cosine 1 - {:.1e}, max rel error {err:.2e}",
        1.0 - cos
    );
    assert!(cos >= MIN_COSINE, "{what}: cosine {cos}");
    assert!(err <= max_rel, "{what}: max rel error {err}");
}

fn tiny() -> models::resnet::FoldedResNet<B> {
    let source = WeightsSource::File(fixture("tiny_resnet.pth"));
    load_resnet::<B>(&tiny_config(), &source, &device()).unwrap()
}

#[test]
fn the_cpu_backend_runs_the_cpu_path() {
    assert!(tiny().uses_cpu_path());
}

#[test]
fn both_paths_reproduce_torchvision_on_the_fixture() {
    let io = io();
    let (input, expected) = (io["input"].tensor::<4>(), io["output"].f32s());
    let network = tiny();
    let cpu = to_vec(network.forward(input.clone()));
    let tensor_ops = to_vec(network.forward_tensor_ops(input));
    check("64x64 fixture, CPU path", &cpu, &expected, MAX_REL_ERROR);
    check(
        "64x64 fixture, tensor ops",
        &tensor_ops,
        &expected,
        MAX_REL_ERROR,
    );
}

#[test]
fn both_paths_reproduce_torchvision_at_224() {
    // Pillow's crop of grace_hopper.jpg: stages at 56, 28, 14 and 7 positions, as in ResNet50.
    let raw = &io()["hopper_pixels"];
    let crop = image::RgbImage::from_raw(224, 224, raw.bytes.clone()).unwrap();
    let input = TensorData::new(normalize(&crop), [1, 3, 224, 224]);
    let input = Tensor::<B, 4>::from_data(input, &device());
    let expected = io()["hopper_features"].f32s();
    let network = tiny();
    let cpu = to_vec(network.forward(input.clone()));
    let tensor_ops = to_vec(network.forward_tensor_ops(input));
    check(
        "grace_hopper 224x224, CPU path",
        &cpu,
        &expected,
        MAX_REL_ERROR,
    );
    check(
        "grace_hopper 224x224, tensor ops",
        &tensor_ops,
        &expected,
        MAX_REL_ERROR,
    );
}

#[test]
fn both_paths_agree_on_odd_sizes() {
    // Sides that are not multiples of the Winograd tiles, three images.
    let input = Tensor::<B, 4>::random([3, 3, 45, 70], Distribution::Normal(0.0, 1.0), &device());
    let network = tiny();
    let cpu = to_vec(network.forward(input.clone()));
    let tensor_ops = to_vec(network.forward_tensor_ops(input));
    check("3 x 45x70, CPU path vs tensor ops", &cpu, &tensor_ops, 1e-5);
}

#[test]
fn both_paths_give_the_same_grid() {
    // Three images of 45x70: a 2x3 last map, channels-first as the tensor operations give it.
    let input = Tensor::<B, 4>::random([3, 3, 45, 70], Distribution::Normal(0.0, 1.0), &device());
    let network = tiny();
    let (pooled, grid) = network.forward_with_grid(input.clone());
    let reference = network.feature_map_tensor_ops(input.clone());
    assert_eq!(grid.dims(), reference.dims());
    check(
        "3 x 45x70 grid, CPU path vs tensor ops",
        &to_vec(grid),
        &to_vec(reference),
        1e-5,
    );
    assert_eq!(to_vec(pooled), to_vec(network.forward(input)));
}

#[test]
fn both_paths_agree_on_resnet50() {
    let network = load_resnet::<B>(
        &ResNetConfig::resnet50(),
        &WeightsSource::Random { seed: 5 },
        &device(),
    )
    .unwrap();
    let input = Tensor::<B, 4>::random([2, 3, 224, 224], Distribution::Normal(0.0, 1.0), &device());
    let cpu = to_vec(network.forward(input.clone()));
    let tensor_ops = to_vec(network.forward_tensor_ops(input));
    assert_eq!(cpu.len(), 2 * 2048);
    check(
        "ResNet50 224x224, CPU path vs tensor ops",
        &cpu,
        &tensor_ops,
        1e-3,
    );
}
