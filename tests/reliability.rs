//! Round trips and faults, end to end with the real binaries: Parquet files rewritten by
//! pyarrow, pandas, DuckDB and Polars and read by the next stage; one writer per work dir; a
//! full disk under the featurizer; `make` with `CARGO_TARGET_DIR` set.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use contracts::dataset::dataset_parts;
use contracts::tables::{CaptionsTable, Features, FeaturesTable, TokensTable, read};
use imagecaptioning::{
    bin, bin_dir, describe, files_under, prepare_work_dir, run, run_ok, tempdir,
};

/// A small featurized and tokenized work dir (24 images, parts of 8), made once.
fn prepared() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempdir();
        let cwd = dir.path();
        prepare_work_dir(cwd, 24, 3, &FEATURIZE);
        dir
    })
    .path()
}

const FEATURIZE: [&str; 4] = ["--weights", "random", "--set", "featurizer.part_rows=8"];

/// A tiny decoder trained for one epoch: enough to read every input.
const TRAIN: [&str; 10] = [
    "--work-dir",
    "work",
    "--set",
    "model.embed_dim=8",
    "--set",
    "model.hidden_dim=8",
    "--set",
    "trainer.epochs=1",
    "--set",
    "trainer.val_metric=loss",
];

/// A copy of the prepared inputs in a fresh directory (`work/` holds them).
fn fresh_copy() -> tempfile::TempDir {
    let dir = tempdir();
    let from = prepared().join("work");
    for file in files_under(&from) {
        if file.starts_with('.') {
            continue;
        }
        let to = dir.path().join("work").join(&file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&file), to).unwrap();
    }
    dir
}

fn rewrite(tool: &str, file: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rewrite.py");
    let out = Command::new("python3")
        .arg(script)
        .args([Path::new(tool), file])
        .output()
        .expect("python3 runs (make test installs pandas, DuckDB and Polars)");
    assert!(
        out.status.success(),
        "{tool} could not rewrite {}:\n{}",
        file.display(),
        describe(&out)
    );
}

#[test]
fn files_rewritten_by_other_tools_are_read_by_the_next_stage() {
    let original = prepared().join("work");
    let (tokens, _) = read::<TokensTable>(&original.join("tokens.parquet")).unwrap();
    let part = "features/part-00000.parquet";
    let (features, _) = read::<FeaturesTable>(&original.join(part)).unwrap();
    for tool in ["pyarrow", "pandas", "duckdb", "polars"] {
        // captions.parquet -> the tokenizer, which must make the same token ids.
        let dir = fresh_copy();
        let work = dir.path().join("work");
        rewrite(tool, &work.join("captions.parquet"));
        run_ok(
            "tokenizer",
            dir.path(),
            &["--work-dir", "work", "--min-count", "1"],
        );
        assert_eq!(
            read::<TokensTable>(&work.join("tokens.parquet")).unwrap().0,
            tokens,
            "{tool}"
        );

        // A features part -> the trainer.
        let dir = fresh_copy();
        let work = dir.path().join("work");
        rewrite(tool, &work.join(part));
        assert_eq!(
            read::<FeaturesTable>(&work.join(part)).unwrap().0,
            features,
            "{tool}"
        );
        run_ok("trainer", dir.path(), &TRAIN);

        // tokens.parquet -> the trainer.
        let dir = fresh_copy();
        let work = dir.path().join("work");
        rewrite(tool, &work.join("tokens.parquet"));
        assert_eq!(
            read::<TokensTable>(&work.join("tokens.parquet")).unwrap().0,
            tokens,
            "{tool}"
        );
        run_ok("trainer", dir.path(), &TRAIN);
    }
}

/// Waits until `path` holds `text` (the lock file naming its holder).
fn wait_for(path: &Path, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_to_string(path).map_or(true, |t| !t.starts_with(text)) {
        assert!(
            Instant::now() < deadline,
            "{} never held {text:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_writer_is_told_who_holds_the_work_dir_and_a_killed_run_leaves_no_lock() {
    let dir = fresh_copy();
    let endless = [
        TRAIN.as_slice(),
        &[
            "--set",
            "trainer.epochs=100000",
            "--set",
            "trainer.patience=0",
            "-q",
        ],
    ]
    .concat();
    let mut first = Command::new(bin("trainer"))
        .args(&endless)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        &dir.path().join("work/.lock"),
        &format!("pid {}\n", first.id()),
    );

    let second = run("trainer", dir.path(), &TRAIN);
    assert_eq!(second.status.code(), Some(1), "{}", describe(&second));
    assert_eq!(
        String::from_utf8_lossy(&second.stderr),
        format!(
            "error: work is in use by trainer (pid {}); wait for it to finish or stop it (two \
             runs writing one work dir would mix their outputs)\n",
            first.id()
        )
    );
    // Readers take no lock.
    let (captions, _) = read::<CaptionsTable>(&dir.path().join("work/captions.parquet")).unwrap();
    std::fs::write(
        dir.path().join("mine.tsv"),
        format!("{}\ta shape\n", captions[0].image),
    )
    .unwrap();
    run_ok(
        "evaluator",
        dir.path(),
        &[
            "--work-dir",
            "work",
            "score",
            "--predictions",
            "mine.tsv",
            "--references",
            "work/captions.parquet",
        ],
    );

    first.kill().unwrap(); // SIGKILL: nothing of the trainer runs any more
    first.wait().unwrap();
    run_ok(
        "tokenizer",
        dir.path(),
        &["--work-dir", "work", "--min-count", "1"],
    );
}

/// A tmpfs of `size`, unmounted when dropped (before its mount point is removed); `None`
/// where this process may not mount.
struct Tmpfs {
    path: PathBuf,
    _mount_point: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempdir();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?;
        out.status.success().then(|| Self {
            path: dir.path().to_path_buf(),
            _mount_point: dir,
        })
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[test]
fn a_full_disk_ends_the_featurizer_with_the_os_reason_and_a_rerun_resumes() {
    // Room for captions.parquet and about two of the three parts (60 KiB each).
    let Some(disk) = Tmpfs::mount("160k") else {
        eprintln!("skipped: cannot mount a tmpfs here (mounting needs root)");
        return;
    };
    let work = disk.path.join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(
        prepared().join("work/captions.parquet"),
        work.join("captions.parquet"),
    )
    .unwrap();
    let images = prepared().join("synthetic/Images");
    let args = [
        &[
            "--work-dir",
            work.to_str().unwrap(),
            "--images",
            images.to_str().unwrap(),
        ],
        FEATURIZE.as_slice(),
    ]
    .concat();

    let mut child = Command::new(bin("featurizer"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the featurizer hung on a full disk");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let features = work.join("features");
    let done = dataset_parts(&features).unwrap();
    assert!(!done.is_empty() && done.len() < 3, "{done:?}");
    let failed = features.join(format!("part-{:05}.parquet", done.len()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().last().unwrap(),
        format!(
            "error: featurizing: {}: No space left on device (os error 28)",
            failed.display()
        ),
        "{stderr}"
    );
    // Finished parts are whole, and no temp file is left.
    for part in &done {
        read::<FeaturesTable>(part).unwrap();
    }
    let left: Vec<String> = files_under(&features);
    let parts: Vec<String> = (0..done.len())
        .map(|i| format!("part-{i:05}.parquet"))
        .collect();
    assert_eq!(left, parts);

    disk.resize("4m");
    let out = run_ok("featurizer", Path::new("/"), &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "parts       {} written, {} reused",
            3 - done.len(),
            done.len()
        )),
        "{stdout}"
    );
    let all = dataset_parts(&features).unwrap();
    assert_eq!(all.len(), 3);
    for (ours, theirs) in all
        .iter()
        .zip(dataset_parts(&prepared().join("work/features")).unwrap())
    {
        assert_close(
            &read::<FeaturesTable>(ours).unwrap().0,
            &read::<FeaturesTable>(&theirs).unwrap().0,
        );
    }
    assert!(features.join("_SUCCESS").is_file());
}

fn assert_close(a: &Features, b: &Features) {
    assert_eq!(a.images, b.images);
    let worst = a
        .features
        .iter()
        .zip(&b.features)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-5, "features differ by {worst}");
}

#[test]
fn make_finds_the_binaries_under_cargo_target_dir() {
    let dir = tempdir();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(repo.join("pipeline.toml"), dir.path().join("pipeline.toml")).unwrap();
    std::fs::create_dir_all(dir.path().join("dataset")).unwrap();
    std::fs::copy(
        repo.join("tests/fixtures/flickr8k/kaggle/captions.txt"),
        dir.path().join("dataset/captions.txt"),
    )
    .unwrap();
    // No target/ here: the binaries are found only through CARGO_TARGET_DIR. `CARGO=true`
    // skips the build (the test's own build made the binaries).
    let out = Command::new("make")
        .arg("-f")
        .arg(repo.join("Makefile"))
        .args([
            "CARGO=true",
            "DATASET=dataset",
            "WORK=work",
            "SET=--set paths.splits_dir=none",
            "captions",
        ])
        .current_dir(dir.path())
        .env("CARGO_TARGET_DIR", bin_dir().parent().unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(dir.path().join("work/captions.parquet").is_file());
}
