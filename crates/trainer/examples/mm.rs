use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
fn time(name: &str, mut f: impl FnMut()) {
    for _ in 0..3 {
        f();
    }
    let s = std::time::Instant::now();
    for _ in 0..20 {
        f();
    }
    println!("{name}: {:.3} ms", s.elapsed().as_secs_f64() / 20.0 * 1e3);
}
fn main() {
    let d = Default::default();
    let image: Tensor<Flex, 2> = Tensor::random([64, 256], Distribution::Default, &d);
    let dimg: Tensor<Flex, 2> = Tensor::random([64, 8000], Distribution::Default, &d);
    let w: Tensor<Flex, 2> = Tensor::random([256, 8000], Distribution::Default, &d);
    time("image^T dimg", || {
        let _ = image.clone().transpose().matmul(dimg.clone());
    });
    let image_t = image
        .clone()
        .transpose()
        .reshape([256 * 64])
        .reshape([256, 64]);
    time("image_t(contig) dimg", || {
        let _ = image_t.clone().matmul(dimg.clone());
    });
    time("dimg^T image", || {
        let _ = dimg.clone().transpose().matmul(image.clone());
    });
    time("dimg^T image -> T contig", || {
        let x = dimg.clone().transpose().matmul(image.clone()).transpose();
        let _ = x.reshape([256 * 8000]);
    });
    time("image^T dimg in 4 col blocks", || {
        for i in 0..4 {
            let _ = image
                .clone()
                .transpose()
                .matmul(dimg.clone().narrow(1, i * 2000, 2000));
        }
    });
    time("image^T dimg 2 row halves par", || {
        let _ = rayon::join(
            || {
                image
                    .clone()
                    .narrow(1, 0, 128)
                    .transpose()
                    .matmul(dimg.clone())
            },
            || {
                image
                    .clone()
                    .narrow(1, 128, 128)
                    .transpose()
                    .matmul(dimg.clone())
            },
        );
    });
    rayon::scope(|_| {
        time("IN POOL image^T dimg", || {
            let _ = image.clone().transpose().matmul(dimg.clone());
        })
    });
    rayon::scope(|_| {
        time("IN POOL dimg w^T", || {
            let _ = dimg.clone().matmul(w.clone().transpose());
        })
    });
    let a: Tensor<Flex, 2> = Tensor::random([736, 512], Distribution::Default, &d);
    let wo: Tensor<Flex, 2> = Tensor::random([512, 8000], Distribution::Default, &d);
    time("logits", || {
        let _ = a.clone().matmul(wo.clone());
    });
    rayon::scope(|_| {
        time("IN POOL logits", || {
            let _ = a.clone().matmul(wo.clone());
        })
    });
    let h: Tensor<Flex, 2> = Tensor::random([64, 512], Distribution::Default, &d);
    let whh: Tensor<Flex, 2> = Tensor::random([512, 2048], Distribution::Default, &d);
    time("rec 64x512x2048", || {
        let _ = h.clone().matmul(whh.clone());
    });
    rayon::scope(|_| {
        time("IN POOL rec 64x512x2048", || {
            let _ = h.clone().matmul(whh.clone());
        })
    });
    time("dimg w^T", || {
        let _ = dimg.clone().matmul(w.clone().transpose());
    });
    time("(w dimg^T)", || {
        let _ = w.clone().matmul(dimg.clone().transpose());
    });
    let dimg_t = dimg
        .clone()
        .transpose()
        .reshape([8000 * 64])
        .reshape([8000, 64]);
    time("w dimg_t(contig)", || {
        let _ = w.clone().matmul(dimg_t.clone());
    });
}
