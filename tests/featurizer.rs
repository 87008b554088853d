//! End-to-end tests of the featurizer binary: resume after a kill, shards, bad images.
//! The network is the real ResNet50 with seeded random weights; the images are synthetic.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use contracts::dataset::dataset_parts;
use contracts::tables::{Features, FeaturesTable, read};
use imagecaptioning::{bin, describe, files_under, run, run_ok, tempdir};

/// Makes `n` synthetic images and their captions.parquet under `dir`.
fn prepare(dir: &Path, n: usize) {
    run_ok(
        "synth",
        dir,
        &[
            "--out",
            "synthetic",
            "--images",
            &n.to_string(),
            "--seed",
            "5",
            "--set",
            "synth.image_size=96",
        ],
    );
    run_ok(
        "cleaner",
        dir,
        &["--dataset-dir", "synthetic", "--work-dir", "work"],
    );
}

const FEATURIZE: [&str; 8] = [
    "--work-dir",
    "work",
    "--weights",
    "random",
    "--set",
    "featurizer.part_rows=3",
    "--batch-size",
    "3",
];

/// All features of a work dir, keyed by image name, in name order.
fn all_features(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let mut rows = Vec::new();
    for part in dataset_parts(&dir.join("work/features")).unwrap() {
        let (features, _): (Features, _) = read::<FeaturesTable>(&part).unwrap();
        for (i, image) in features.images.iter().enumerate() {
            rows.push((image.clone(), features.row(i).to_vec()));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

fn assert_same_features(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) {
    assert_eq!(a.len(), b.len());
    for ((name_a, fa), (name_b, fb)) in a.iter().zip(b) {
        assert_eq!(name_a, name_b);
        let worst = fa
            .iter()
            .zip(fb)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-5, "{name_a}: features differ by {worst}");
    }
}

#[test]
fn a_killed_run_resumes_to_the_same_features_as_a_clean_run() {
    let clean = tempdir();
    prepare(clean.path(), 9);
    run_ok("featurizer", clean.path(), &FEATURIZE);
    let expected = all_features(clean.path());
    assert_eq!(expected.len(), 9);
    assert!(clean.path().join("work/features/_SUCCESS").is_file());

    let killed = tempdir();
    prepare(killed.path(), 9);
    let mut child = Command::new(bin("featurizer"))
        .args(FEATURIZE)
        .current_dir(killed.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first_part = killed.path().join("work/features/part-00000.parquet");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !first_part.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    assert!(first_part.exists(), "the first part was never written");
    assert!(
        !killed.path().join("work/features/_SUCCESS").exists(),
        "killed before the end"
    );

    let out = run_ok("featurizer", killed.path(), &FEATURIZE);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("reused from an earlier run"), "{stdout}");
    assert_same_features(&all_features(killed.path()), &expected);
    let left = files_under(&killed.path().join("work/features"));
    assert!(
        left.iter()
            .all(|f| f == "_SUCCESS" || f.starts_with("part-")),
        "{left:?}"
    );
}

#[test]
fn two_shards_make_the_whole_set() {
    let whole = tempdir();
    prepare(whole.path(), 8);
    run_ok("featurizer", whole.path(), &FEATURIZE);

    let sharded = tempdir();
    prepare(sharded.path(), 8);
    let with_shard = |k: &'static str| [FEATURIZE.as_slice(), &["--shard", k]].concat();
    let out = run_ok("featurizer", sharded.path(), &with_shard("1/2"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 still missing"),
        "{}",
        describe(&out)
    );
    assert!(!sharded.path().join("work/features/_SUCCESS").exists());
    run_ok("featurizer", sharded.path(), &with_shard("2/2"));
    assert!(sharded.path().join("work/features/_SUCCESS").is_file());
    assert_same_features(&all_features(sharded.path()), &all_features(whole.path()));
}

#[test]
fn other_settings_are_refused_on_resume() {
    let dir = tempdir();
    prepare(dir.path(), 3);
    run_ok("featurizer", dir.path(), &FEATURIZE);
    let out = run(
        "featurizer",
        dir.path(),
        &[FEATURIZE.as_slice(), &["--set", "featurizer.resize=232"]].concat(),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        describe(&out)
    );
}

#[test]
fn bad_images_are_named_skipped_and_counted_and_the_rest_featurized() {
    let dir = tempdir();
    let images = dir.path().join("photos");
    std::fs::create_dir_all(&images).unwrap();
    run_ok(
        "synth",
        dir.path(),
        &[
            "--out",
            "synthetic",
            "--images",
            "3",
            "--set",
            "synth.image_size=64",
        ],
    );
    let good = std::fs::read(dir.path().join("synthetic/Images/synth_00000.png")).unwrap();
    std::fs::write(images.join("good1.png"), &good).unwrap();
    std::fs::write(images.join("good2.png"), &good).unwrap();
    std::fs::write(images.join("truncated.png"), &good[..good.len() / 2]).unwrap();
    std::fs::write(images.join("empty.jpg"), b"").unwrap();
    std::fs::write(images.join("notes.jpg"), b"this is not a picture").unwrap();

    let out = run(
        "featurizer",
        dir.path(),
        &[
            "--images",
            "photos",
            "--work-dir",
            "work",
            "--weights",
            "random",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit code 3 means some images were skipped\n{}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for bad in ["truncated.png", "empty.jpg", "notes.jpg"] {
        assert!(stderr.contains(bad), "{bad} not named:\n{stderr}");
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("skipped     3 unreadable images"));
    let names: Vec<String> = all_features(dir.path())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["good1.png", "good2.png"]);
}

/// `make test` builds the binaries without the `cuda` feature.
#[test]
fn cuda_on_a_cpu_build_says_how_to_rebuild() {
    let dir = tempdir();
    prepare(dir.path(), 1);
    let out = run(
        "featurizer",
        dir.path(),
        &[FEATURIZE.as_slice(), &["--device", "cuda"]].concat(),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--features cuda"),
        "{}",
        describe(&out)
    );
}
