//! Preprocessing parity with torchvision's preset on a real photograph, decoding of the image
//! kinds datasets contain, and errors for files that are not images.

mod common;

use std::path::Path;

use burn::tensor::{Tensor, TensorData};
use common::{B, cosine, device, fixture, io, tiny_config, to_vec};
use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use models::preprocess::{Preprocess, load_image, normalize};
use models::resnet::{WeightsSource, load_resnet};

/// torchvision's Resize(256) + CenterCrop(224) of grace_hopper.jpg, decoded by Pillow.
fn pil_hopper_crop() -> RgbImage {
    let raw = &io()["hopper_pixels"];
    assert_eq!(raw.shape, [224, 224, 3]);
    RgbImage::from_raw(224, 224, raw.bytes.clone()).unwrap()
}

/// (max, mean) absolute difference of two images, in 8-bit levels.
fn pixel_diff(a: &RgbImage, b: &RgbImage) -> (u8, f64) {
    assert_eq!(a.dimensions(), b.dimensions());
    let diffs: Vec<u8> = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .collect();
    let mean = diffs.iter().map(|&d| d as f64).sum::<f64>() / diffs.len() as f64;
    (*diffs.iter().max().unwrap(), mean)
}

#[test]
fn grace_hopper_matches_torchvision_preset() {
    let image = load_image(&fixture("grace_hopper.jpg")).unwrap();
    assert_eq!(image.dimensions(), (512, 600));
    let preprocess = Preprocess::V1;

    // Pixels after resize + crop, against Pillow's (decoders differ slightly too).
    let ours = preprocess.resize_and_crop(&image);
    let (max_px, mean_px) = pixel_diff(&ours, &pil_hopper_crop());
    let max_tensor = max_px as f32 / 255.0 / 0.224;
    println!(
        "grace_hopper: resized+cropped pixels differ from torchvision's by max {max_px} levels, \
         mean {mean_px:.3} levels (normalized tensor: max abs diff {max_tensor:.4})"
    );
    assert!(
        max_px <= 12 && mean_px < 1.0,
        "max {max_px}, mean {mean_px}"
    );

    // Normalized tensor statistics.
    let data = preprocess.to_tensor_data(&image);
    assert_eq!(data.len(), preprocess.tensor_len());
    let stats = io()["hopper_stats"].f32s();
    for c in 0..3 {
        let plane = &data[c * 224 * 224..(c + 1) * 224 * 224];
        let mean = plane.iter().map(|&v| v as f64).sum::<f64>() / plane.len() as f64;
        let var = plane
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / (plane.len() - 1) as f64;
        println!(
            "channel {c}: mean {mean:.5} (torchvision {:.5}), std {:.5} (torchvision {:.5})",
            stats[c],
            var.sqrt(),
            stats[3 + c]
        );
        assert!(
            (mean - stats[c] as f64).abs() < 5e-3,
            "channel {c} mean {mean}"
        );
        assert!(
            (var.sqrt() - stats[3 + c] as f64).abs() < 5e-3,
            "channel {c} std"
        );
    }

    // Features of the tiny torchvision network on our tensor vs on torchvision's.
    let model = load_resnet::<B>(
        &tiny_config(),
        &WeightsSource::File(fixture("tiny_resnet.safetensors")),
        &device(),
    )
    .unwrap();
    let input = Tensor::<B, 4>::from_data(TensorData::new(data, [1, 3, 224, 224]), &device());
    let features = to_vec(model.forward(input));
    let expected = io()["hopper_features"].f32s();
    let cos = cosine(&features, &expected);
    println!("grace_hopper: feature cosine with torchvision {cos:.6}");
    assert!(cos >= 0.999, "cosine {cos}");

    // With Pillow's own pixels, the rest of the pipeline is exact (to float rounding).
    let exact = normalize(&pil_hopper_crop());
    let input = Tensor::<B, 4>::from_data(TensorData::new(exact, [1, 3, 224, 224]), &device());
    let cos_exact = cosine(&to_vec(model.forward(input)), &expected);
    println!("grace_hopper: cosine from Pillow's pixels {cos_exact:.8}");
    assert!(cos_exact >= 0.999_999, "cosine {cos_exact}");
}

fn save(dir: &Path, name: &str, image: impl FnOnce(&Path)) -> std::path::PathBuf {
    let path = dir.join(name);
    image(&path);
    path
}

#[test]
fn grayscale_and_rgba_become_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let gray = save(dir.path(), "gray.png", |p| {
        GrayImage::from_fn(4, 3, |x, y| Luma([(x * 10 + y) as u8]))
            .save(p)
            .unwrap()
    });
    let img = load_image(&gray).unwrap();
    assert_eq!(img.dimensions(), (4, 3));
    assert_eq!(*img.get_pixel(3, 2), Rgb([32, 32, 32]));

    let gray_jpeg = save(dir.path(), "gray.jpg", |p| {
        GrayImage::from_pixel(8, 8, Luma([77])).save(p).unwrap()
    });
    let img = load_image(&gray_jpeg).unwrap();
    let Rgb([r, g, b]) = *img.get_pixel(4, 4);
    assert!(r == g && g == b && r.abs_diff(77) <= 2, "{r} {g} {b}");

    // Alpha is dropped, not composited (as Pillow's convert("RGB")).
    let rgba = save(dir.path(), "rgba.png", |p| {
        RgbaImage::from_pixel(5, 5, Rgba([200, 100, 50, 0]))
            .save(p)
            .unwrap()
    });
    assert_eq!(
        *load_image(&rgba).unwrap().get_pixel(2, 2),
        Rgb([200, 100, 50])
    );

    let gray16 = save(dir.path(), "gray16.png", |p| {
        ImageBuffer::<Luma<u16>, Vec<u16>>::from_pixel(3, 3, Luma([65535]))
            .save(p)
            .unwrap()
    });
    assert_eq!(
        *load_image(&gray16).unwrap().get_pixel(1, 1),
        Rgb([255, 255, 255])
    );
}

/// Mean colour of a rectangle.
fn mean_rgb(img: &RgbImage, x0: u32, y0: u32, w: u32, h: u32) -> [f64; 3] {
    let mut sum = [0f64; 3];
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            for (c, v) in img.get_pixel(x, y).0.iter().enumerate() {
                sum[c] += *v as f64;
            }
        }
    }
    sum.map(|s| s / (w * h) as f64)
}

fn assert_close_images(a: &RgbImage, b: &RgbImage, max_mean_diff: f64) {
    let (_, mean) = pixel_diff(a, b);
    assert!(mean <= max_mean_diff, "mean difference {mean}");
}

#[test]
fn cmyk_jpeg_becomes_rgb() {
    let ours = load_image(&fixture("cmyk.jpg")).unwrap();
    let pil = image::open(fixture("cmyk_pil.png")).unwrap().into_rgb8();
    println!("cmyk: {:?}", pixel_diff(&ours, &pil));
    assert_close_images(&ours, &pil, 6.0);
}

#[test]
fn progressive_jpeg_decodes_like_pillow() {
    let ours = load_image(&fixture("progressive.jpg")).unwrap();
    let pil = image::open(fixture("progressive_pil.png"))
        .unwrap()
        .into_rgb8();
    println!("progressive: {:?}", pixel_diff(&ours, &pil));
    assert_close_images(&ours, &pil, 2.0);
}

#[test]
fn exif_orientation_is_applied() {
    let ours = load_image(&fixture("exif_orient6.jpg")).unwrap();
    // Stored 32x16; orientation 6 shows it rotated 90 degrees clockwise: 16 wide, 32 high.
    assert_eq!(ours.dimensions(), (16, 32));
    let pil = image::open(fixture("exif_orient6_upright.png"))
        .unwrap()
        .into_rgb8();
    assert_close_images(&ours, &pil, 6.0);
    // The stored top-left quadrant (red) ends up top-right.
    let [r, g, b] = mean_rgb(&ours, 10, 2, 4, 12);
    assert!(
        r > 150.0 && g < 100.0 && b < 100.0,
        "top right is {r} {g} {b}"
    );
}

#[test]
fn bad_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let jpeg = std::fs::read(fixture("grace_hopper.jpg")).unwrap();
    let png = std::fs::read(fixture("progressive_pil.png")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.jpg", Vec::new()),
        ("truncated.jpg", jpeg[..jpeg.len() / 3].to_vec()),
        ("header_only.jpg", jpeg[..200].to_vec()),
        ("no_eoi.jpg", jpeg[..jpeg.len() - 2].to_vec()),
        ("truncated.png", png[..png.len() / 2].to_vec()),
        (
            "notes.jpg",
            b"this is a caption file, not an image\n".to_vec(),
        ),
        (
            "notes.txt",
            b"this is a caption file, not an image\n".to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let Err(err) = load_image(&path) else {
            panic!("{name} decoded")
        };
        let message = err.to_string();
        println!("{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
    let missing = dir.path().join("absent.jpg");
    let message = load_image(&missing).unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "cannot load image {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
}

#[test]
fn decompression_bomb_is_an_error() {
    let path = fixture("bomb.png");
    let message = load_image(&path).unwrap_err().to_string();
    println!("{message}");
    assert_eq!(
        message,
        format!(
            "cannot load image {}: Image size exceeds limit",
            path.display()
        )
    );
}

#[test]
fn odd_shapes_give_a_full_crop() {
    let p = Preprocess::V1;
    // A thin strip (would be 256 x 2_560_000 if resized whole), a tiny image, a square, one
    // already at the target size, and one smaller than the crop after resizing (padded).
    for (w, h) in [
        (1, 10_000),
        (10_000, 1),
        (1, 1),
        (3, 2),
        (300, 300),
        (256, 400),
        (341, 256),
    ] {
        let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x % 251) as u8, (y % 241) as u8, 7]));
        let out = p.resize_and_crop(&img);
        assert_eq!(out.dimensions(), (224, 224), "{w}x{h}");
    }
    let small = Preprocess::new(200, 224);
    let out = small.resize_and_crop(&RgbImage::from_pixel(300, 200, Rgb([255, 255, 255])));
    // 300x200 stays 300x200 (shorter side already 200): 12 black rows above, 12 below.
    assert_eq!(*out.get_pixel(100, 11), Rgb([0, 0, 0]));
    assert_eq!(*out.get_pixel(100, 12), Rgb([255, 255, 255]));
    assert_eq!(*out.get_pixel(100, 211), Rgb([255, 255, 255]));
    assert_eq!(*out.get_pixel(100, 212), Rgb([0, 0, 0]));
}

#[test]
fn flat_image_stays_flat() {
    // Resampling a constant image gives the constant (weights sum to one).
    let img = RgbImage::from_pixel(500, 375, Rgb([10, 120, 250]));
    let out = Preprocess::V2.resize_and_crop(&img);
    assert!(out.pixels().all(|p| *p == Rgb([10, 120, 250])));
}
