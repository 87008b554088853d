//! Test support for the end-to-end tests: finds the release binaries the tests drive and runs
//! them in temporary directories. `make test` builds the binaries before the tests run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The directory holding the stage binaries (`target/release`), found from the test binary.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    // target/release/deps/<test> -> target/release
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// A stage binary; panics with the command to build it when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --release --workspace --bins` first (make test does)",
        path.display()
    );
    path
}

/// Runs a stage binary with `args` in `cwd`, capturing its output.
pub fn run(name: &str, cwd: &Path, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"))
}

/// Like [`run`], but panics with the binary's output unless it succeeds.
pub fn run_ok(name: &str, cwd: &Path, args: &[&str]) -> Output {
    let output = run(name, cwd, args);
    assert!(
        output.status.success(),
        "{name} {args:?} failed:\n{}",
        describe(&output)
    );
    output
}

/// stdout and stderr, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Files under `dir` (recursively), relative, sorted: to check nothing half-written remains.
/// The work-dir lock files (`.lock`, `.lock-shard-*`) are not outputs and are left out.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if !entry.file_name().to_string_lossy().starts_with(".lock") {
                out.push(
                    path.strip_prefix(dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    out
}

/// Opens Parquet files (or a features directory) with pyarrow through `tests/interop.py`,
/// which checks the contract schemas and provenance metadata; panics with its output on
/// failure. `make test` installs pyarrow.
pub fn check_with_pyarrow(cwd: &Path, paths: &[&Path]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop.py");
    let out = Command::new("python3")
        .arg(script)
        .args(paths)
        .current_dir(cwd)
        .output()
        .expect("python3 runs (make test installs pyarrow)");
    assert!(
        out.status.success(),
        "pyarrow interop failed:\n{}",
        describe(&out)
    );
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Runs synth (`images` images of 64 px from `seed`), the cleaner, the featurizer (with the
/// flags `featurize`) and the tokenizer (min count 1) in `cwd`: a featurized and tokenized
/// `cwd/work`, from the dataset `cwd/synthetic`.
pub fn prepare_work_dir(cwd: &Path, images: usize, seed: u64, featurize: &[&str]) {
    let (images, seed) = (images.to_string(), seed.to_string());
    run_ok(
        "synth",
        cwd,
        &[
            "--out",
            "synthetic",
            "--images",
            &images,
            "--seed",
            &seed,
            "--set",
            "synth.image_size=64",
        ],
    );
    run_ok(
        "cleaner",
        cwd,
        &["--dataset-dir", "synthetic", "--work-dir", "work"],
    );
    run_ok(
        "featurizer",
        cwd,
        &[&["--work-dir", "work"], featurize].concat(),
    );
    run_ok(
        "tokenizer",
        cwd,
        &["--work-dir", "work", "--min-count", "1"],
    );
}
