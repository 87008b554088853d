//! `cargo bench -p models --bench resnet [-- --batch 16 --passes 3 --tensor-ops]`
//!
//! What `make bench` prints about the network itself, on this machine:
//! - the matrix-multiply limit: faer's single-threaded product (the kernel the CPU path
//!   uses) on one core, then on every rayon thread at once, in GFLOP/s;
//! - ResNet50 at 224x224 (seeded random weights: speed does not depend on their values),
//!   images/s of the CPU path and a per-layer profile, and with `--tensor-ops` the same for
//!   burn's tensor operations (the path of the GPU backends).
//!
//! Timings only: nothing here asserts on them.

use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use faer::{Accum, Mat, Par};
use models::resnet::profile::Profile;
use models::resnet::{ResNetConfig, WeightsSource, load_resnet};
use rayon::prelude::*;

/// Side of the square matrices of the limit benchmark.
const SIDE: usize = 1024;

/// GFLOP/s of `SIDE`-cubed products, `threads` of them running at once (best of a few rounds).
fn matmul_rate(threads: usize) -> f64 {
    let a = Mat::<f32>::from_fn(SIDE, SIDE, |i, j| ((i * 7 + j * 3) % 13) as f32 - 6.0);
    let b = Mat::<f32>::from_fn(SIDE, SIDE, |i, j| ((i * 5 + j) % 11) as f32 - 5.0);
    let mut outs: Vec<Mat<f32>> = (0..threads).map(|_| Mat::zeros(SIDE, SIDE)).collect();
    let rounds = 3;
    let mut best = f64::MAX;
    for round in 0..=rounds {
        let start = Instant::now();
        outs.par_iter_mut().for_each(|c| {
            for _ in 0..4 {
                faer::linalg::matmul::matmul(
                    c.as_mut(),
                    Accum::Replace,
                    a.as_ref(),
                    b.as_ref(),
                    1.0f32,
                    Par::Seq,
                );
            }
        });
        if round > 0 {
            best = best.min(start.elapsed().as_secs_f64());
        }
    }
    let flops = 2.0 * (SIDE * SIDE * SIDE) as f64 * 4.0 * threads as f64;
    flops / best / 1e9
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let batch: usize = arg("--batch").map_or(16, |v| v.parse().expect("--batch N"));
    let passes: usize = arg("--passes").map_or(3, |v| v.parse().expect("--passes N"));
    let tensor_ops = std::env::args().any(|a| a == "--tensor-ops");
    let threads = rayon::current_num_threads();

    let one = matmul_rate(1);
    let all = matmul_rate(threads);
    println!(
        "matmul limit: {one:.1} GFLOP/s on 1 core alone, {all:.1} GFLOP/s on {threads} threads at once ({:.1} per thread; {SIDE}^3 f32, faer)",
        all / threads as f64
    );

    let device = Default::default();
    let network = load_resnet::<Flex>(
        &ResNetConfig::resnet50(),
        &WeightsSource::Random { seed: 0 },
        &device,
    )
    .expect("random weights");
    let input = Tensor::<Flex, 4>::random(
        [batch, 3, 224, 224],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let run = |name: &str,
               passes: usize,
               forward: &dyn Fn(Tensor<Flex, 4>, &mut Profile) -> Tensor<Flex, 2>| {
        forward(input.clone(), &mut Profile::off()); // warm-up
        let mut profile = Profile::new();
        let start = Instant::now();
        for _ in 0..passes {
            forward(input.clone(), &mut profile);
        }
        let rate = (passes * batch) as f64 / start.elapsed().as_secs_f64();
        println!(
            "\n{name}: {rate:.2} images/s (ResNet50 224x224, batch {batch}, {passes} passes, {threads} threads)\n"
        );
        print!("{}", profile.table(passes * batch));
    };
    run("cpu path", passes, &|x, p| network.forward_profiled(x, p));
    if tensor_ops {
        run("tensor ops", 1, &|x, p| {
            network.forward_tensor_ops_profiled(x, p)
        });
    }
}
