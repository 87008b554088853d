//! End-to-end tests of the data stages: the real binaries on real Flickr8k lines (fixtures
//! made by scripts/make_flickr8k_fixtures.py) and on generated synthetic data.

use std::path::{Path, PathBuf};

use contracts::Split;
use contracts::tables::{CaptionsTable, TokensTable, VocabTable, read};
use imagecaptioning::{check_with_pyarrow, describe, files_under, run, run_ok, tempdir};

fn fixture(layout: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/flickr8k")
        .join(layout)
}

/// Copies a fixture layout into `dir/dataset`, plus empty image files for `images`.
fn dataset(dir: &Path, layout: &str, image_folder: Option<&str>) -> PathBuf {
    let out = dir.join("dataset");
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(fixture(layout)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), out.join(entry.file_name())).unwrap();
    }
    if let Some(folder) = image_folder {
        std::fs::create_dir_all(out.join(folder)).unwrap();
        for image in [
            "1000268201_693b08cb0e.jpg",
            "1001773457_577c3a7d70.jpg",
            "1002674143_1b742ab4b8.jpg",
            "1012212859_01547e3f17.jpg",
            "1253275679_e955fb7304.jpg",
            "1387461595_2fe6925f73.jpg",
        ] {
            std::fs::write(out.join(folder).join(image), b"").unwrap();
        }
    }
    out
}

fn clean(dir: &Path, dataset: &Path) -> std::process::Output {
    let dataset = dataset.to_str().unwrap();
    run(
        "cleaner",
        dir,
        &[
            "--dataset-dir",
            dataset,
            "--work-dir",
            "work",
            "--set",
            "paths.splits_dir=none",
        ],
    )
}

#[test]
fn original_release_lines_parse_including_their_quirks() {
    let dir = tempdir();
    let data = dataset(dir.path(), "token", None);
    let out = clean(dir.path(), &data);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("35 captions of 7 images"), "{stdout}");
    let (rows, _) = read::<CaptionsTable>(&dir.path().join("work/captions.parquet")).unwrap();
    assert_eq!(
        rows.len(),
        35,
        "space-separated lines and the .jpg.1 key are captions too"
    );
    let spaced = rows
        .iter()
        .find(|r| r.image == "1000268201_693b08cb0e.jpg" && r.caption_idx == 0)
        .unwrap();
    assert_eq!(
        spaced.clean,
        "a child in a pink dress is climbing up a set of stairs in an entry way"
    );
    let quoted = rows
        .iter()
        .find(|r| r.image == "1253275679_e955fb7304.jpg" && r.caption_idx == 4)
        .unwrap();
    assert_eq!(
        quoted.clean,
        "young boy with a black adhd t shirt nodding off"
    );
}

#[test]
fn the_key_without_an_image_is_excluded_and_named() {
    let dir = tempdir();
    let data = dataset(dir.path(), "token", Some("Flicker8k_Dataset"));
    let out = clean(dir.path(), &data);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        " WARN image 2258277193_586949ec62.jpg.1 is named by captions but missing from the image \
         folder; its captions are excluded\n"
    );
    let (rows, _) = read::<CaptionsTable>(&dir.path().join("work/captions.parquet")).unwrap();
    assert_eq!(rows.len(), 30);
}

#[test]
fn kaggle_csv_with_quoted_commas_and_doubled_quotes() {
    let dir = tempdir();
    let data = dataset(dir.path(), "kaggle", Some("Images"));
    let out = clean(dir.path(), &data);
    assert!(out.status.success(), "{}", describe(&out));
    let (rows, _) = read::<CaptionsTable>(&dir.path().join("work/captions.parquet")).unwrap();
    assert_eq!(rows.len(), 30);
    let comma = rows
        .iter()
        .find(|r| r.image == "1012212859_01547e3f17.jpg" && r.caption_idx == 0)
        .unwrap();
    assert_eq!(
        comma.raw,
        "A dog shakes its head near the shore , a red ball next to it ."
    );
    let quote = rows
        .iter()
        .find(|r| r.image == "1253275679_e955fb7304.jpg" && r.caption_idx == 4)
        .unwrap();
    assert_eq!(
        quote.raw,
        "Young boy with a black \" ADHD \" t-shirt nodding off"
    );
}

#[test]
fn karpathy_json_counts_restval_as_train() {
    let dir = tempdir();
    let data = dataset(dir.path(), "karpathy", None);
    let out = clean(dir.path(), &data);
    assert!(out.status.success(), "{}", describe(&out));
    let (rows, _) = read::<CaptionsTable>(&dir.path().join("work/captions.parquet")).unwrap();
    let split_of = |image: &str| rows.iter().find(|r| r.image == image).unwrap().split;
    assert_eq!(
        split_of("1002674143_1b742ab4b8.jpg"),
        Split::Train,
        "restval"
    );
    assert_eq!(split_of("1012212859_01547e3f17.jpg"), Split::Val);
    assert_eq!(split_of("1387461595_2fe6925f73.jpg"), Split::Test);
}

/// Runs the cleaner on a one-file dataset and returns (success, stderr with the temp dir
/// written as `DIR`, files left in work/).
fn clean_single(name: &str, content: &[u8]) -> (bool, String, Vec<String>) {
    let dir = tempdir();
    let data = dir.path().join("dataset");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join(name), content).unwrap();
    let out = clean(dir.path(), &data);
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&dir.path().display().to_string(), "DIR");
    (
        out.status.success(),
        stderr,
        files_under(&dir.path().join("work")),
    )
}

#[test]
fn empty_caption_file_is_an_error_and_writes_nothing() {
    let (ok, stderr, left) = clean_single("captions.txt", b"");
    assert!(!ok);
    assert_eq!(
        stderr,
        "error: DIR/dataset/captions.txt: the file is empty\n"
    );
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn unknown_layout_is_an_error_that_lists_what_was_looked_for() {
    let (ok, stderr, left) = clean_single("readme.md", b"hello");
    assert!(!ok);
    assert_eq!(
        stderr,
        "error: no known dataset layout in DIR/dataset: looked for Flickr8k.token.txt (original \
         Flickr8k), captions.txt (Kaggle Flickr8k or `synth`) and dataset_*.json (Karpathy \
         split); see README.md, \"Data layouts\"\n"
    );
    assert!(left.is_empty());
}

#[test]
fn malformed_and_non_utf8_lines_are_named_and_skipped() {
    let content = b"a.jpg#0\tA dog runs .\nbroken-line-without-separator\nb.jpg#0\tA \xff cat .\nc.jpg#x\tbad number\n";
    let (ok, stderr, left) = clean_single("Flickr8k.token.txt", content);
    assert!(ok, "{stderr}");
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            " WARN skipped DIR/dataset/Flickr8k.token.txt:3: not valid UTF-8 (invalid utf-8 \
             sequence of 1 bytes from index 10)",
            " WARN skipped DIR/dataset/Flickr8k.token.txt:2: expected \
             `<image>#<n><TAB><caption>`",
            " WARN skipped DIR/dataset/Flickr8k.token.txt:4: key \"c.jpg#x\": caption number \
             \"x\" is not a number",
        ]
    );
    assert_eq!(left, ["captions.parquet"]);
}

#[test]
fn image_names_escaping_the_image_folder_are_rejected_with_their_line() {
    let content = b"a.jpg#0\tA dog runs .\n../../etc/passwd#0\tsneaky\n/abs.jpg#0\tsneaky\n";
    let (ok, stderr, _) = clean_single("Flickr8k.token.txt", content);
    assert!(ok, "{stderr}");
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            " WARN skipped DIR/dataset/Flickr8k.token.txt:2: image name \"../../etc/passwd\" \
             contains `..`",
            " WARN skipped DIR/dataset/Flickr8k.token.txt:3: image name \"/abs.jpg\" is an \
             absolute path",
        ]
    );
}

#[test]
fn nothing_usable_is_an_error_and_writes_nothing() {
    let (ok, stderr, left) = clean_single("Flickr8k.token.txt", b"a.jpg#0\t. , !\nb.jpg#0\t42\n");
    assert!(!ok);
    assert_eq!(
        stderr,
        "error: DIR/dataset/Flickr8k.token.txt: no usable captions left (2 empty after cleaning); \
         nothing written\n"
    );
    assert!(left.is_empty(), "{left:?}");
    // The reasons are in the error itself: nothing was printed before it to point at.
    let (ok, stderr, _) = clean_single("Flickr8k.token.txt", b"no-separator\nb.jpg#x\tA dog .\n");
    assert!(!ok);
    assert_eq!(
        stderr,
        "error: DIR/dataset/Flickr8k.token.txt: no usable captions left (2 lines skipped, the \
         first: DIR/dataset/Flickr8k.token.txt:1: expected `<image>#<n><TAB><caption>`); \
         nothing written\n"
    );
}

#[test]
fn a_caption_file_saved_as_utf16_reads_like_its_utf8_original() {
    let text = "a.jpg#0\tA dog runs .\na.jpg#1\tA brown dog is running .\nb.jpg#0\tA café .\n";
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let (ok, stderr, _) = clean_single("Flickr8k.token.txt", &utf16);
    assert!(ok, "{stderr}");
    let dir = tempdir();
    let data = dir.path().join("dataset");
    std::fs::create_dir_all(&data).unwrap();
    for (name, bytes) in [("utf8", text.as_bytes().to_vec()), ("utf16", utf16)] {
        std::fs::write(data.join("Flickr8k.token.txt"), bytes).unwrap();
        let work = format!("work-{name}");
        run_ok(
            "cleaner",
            dir.path(),
            &[
                "--dataset-dir",
                data.to_str().unwrap(),
                "--work-dir",
                &work,
                "--set",
                "paths.splits_dir=none",
            ],
        );
    }
    let (utf8_rows, _) =
        read::<CaptionsTable>(&dir.path().join("work-utf8/captions.parquet")).unwrap();
    let (utf16_rows, _) =
        read::<CaptionsTable>(&dir.path().join("work-utf16/captions.parquet")).unwrap();
    assert_eq!(utf16_rows, utf8_rows);
    assert_eq!(utf8_rows.len(), 3);
}

#[test]
fn tokenizer_refuses_captions_without_a_train_split() {
    let dir = tempdir();
    let data = dataset(dir.path(), "karpathy", None);
    // Everything in test: no vocabulary can be built.
    let text = std::fs::read_to_string(data.join("dataset_flickr8k.json")).unwrap();
    let text = text
        .replace("\"train\"", "\"test\"")
        .replace("\"restval\"", "\"test\"")
        .replace("\"val\"", "\"test\"");
    std::fs::write(data.join("dataset_flickr8k.json"), text).unwrap();
    assert!(clean(dir.path(), &data).status.success());
    let out = run("tokenizer", dir.path(), &["--work-dir", "work"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: work/captions.parquet: the train split is empty, so there is no vocabulary to \
         build\n",
        "{}",
        describe(&out)
    );
    assert_eq!(files_under(&dir.path().join("work")), ["captions.parquet"]);
}

#[test]
fn tokenizer_refuses_a_foreign_stage_file_and_says_what_to_rerun() {
    let dir = tempdir();
    let data = dataset(dir.path(), "token", None);
    assert!(clean(dir.path(), &data).status.success());
    std::fs::copy(
        dir.path().join("work/captions.parquet"),
        dir.path().join("work/vocab.parquet"),
    )
    .unwrap();
    std::fs::copy(
        dir.path().join("work/vocab.parquet"),
        dir.path().join("work/captions.parquet"),
    )
    .unwrap();
    let vocab = dir.path().join("work/vocab.parquet");
    assert_eq!(
        read::<VocabTable>(&vocab).unwrap_err().to_string(),
        format!(
            "{}: written by the cleaner stage, expected the tokenizer stage; rerun the tokenizer \
             stage (`make tokens`)",
            vocab.display()
        )
    );
}

/// The acceptance path: synth -> cleaner -> tokenizer, and every file opens in pyarrow.
#[test]
fn synth_clean_tokenize_end_to_end_and_pyarrow_reads_the_contracts() {
    let dir = tempdir();
    let cwd = dir.path();
    run_ok(
        "synth",
        cwd,
        &["--out", "synthetic", "--images", "40", "--seed", "3"],
    );
    run_ok(
        "cleaner",
        cwd,
        &["--dataset-dir", "synthetic", "--work-dir", "work"],
    );
    run_ok(
        "tokenizer",
        cwd,
        &["--work-dir", "work", "--min-count", "1"],
    );

    let (captions, _) = read::<CaptionsTable>(&cwd.join("work/captions.parquet")).unwrap();
    assert_eq!(captions.len(), 200, "five captions per image");
    let (vocab, _) = read::<VocabTable>(&cwd.join("work/vocab.parquet")).unwrap();
    assert_eq!(vocab[0].token, "<pad>");
    let (tokens, provenance) = read::<TokensTable>(&cwd.join("work/tokens.parquet")).unwrap();
    assert_eq!(tokens.len(), 200);
    assert!(
        tokens
            .iter()
            .all(|t| t.token_ids.first() == Some(&1) && t.token_ids.last() == Some(&2))
    );
    provenance
        .unwrap()
        .require_input(
            Path::new("tokens.parquet"),
            "captions.parquet",
            &cwd.join("work/captions.parquet"),
            contracts::Stage::Tokenizer,
        )
        .unwrap();

    check_with_pyarrow(
        cwd,
        &[
            Path::new("work/captions.parquet"),
            Path::new("work/vocab.parquet"),
            Path::new("work/tokens.parquet"),
        ],
    );
}
