//! Finding a dataset's layout, caption file, image folder and split lists, so the common
//! cases need no flags.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use walkdir::WalkDir;

/// The dataset layouts the cleaner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Original release: `Flickr8k.token.txt`, images in `Flicker8k_Dataset/`.
    Flickr8k,
    /// Kaggle (and the synthetic set): `captions.txt` CSV, images in `Images/`.
    Kaggle,
    /// Karpathy's split JSON (`dataset_*.json`).
    Karpathy,
}

impl Layout {
    fn matches(self, file_name: &str) -> bool {
        match self {
            Layout::Flickr8k => file_name == "Flickr8k.token.txt",
            Layout::Kaggle => file_name == "captions.txt",
            Layout::Karpathy => file_name.starts_with("dataset_") && file_name.ends_with(".json"),
        }
    }
}

/// Image folder names used by the known layouts (the original release misspells Flickr).
const IMAGE_DIRS: [&str; 4] = ["Flicker8k_Dataset", "Flickr8k_Dataset", "Images", "images"];

/// Split list names of the original release: train, dev (our val), test.
pub const SPLIT_LISTS: [&str; 3] = [
    "Flickr_8k.trainImages.txt",
    "Flickr_8k.devImages.txt",
    "Flickr_8k.testImages.txt",
];

/// The files of a dataset directory.
#[derive(Debug, Clone)]
pub struct DatasetFiles {
    pub layout: Layout,
    pub captions_file: PathBuf,
    pub image_dir: Option<PathBuf>,
    /// train, val, test lists, when the dataset ships them.
    pub split_lists: Option<[PathBuf; 3]>,
}

/// Looks in `dir` and its subfolders (one level) for a known layout.
pub fn detect(dir: &Path, forced: Option<Layout>) -> Result<DatasetFiles> {
    if !dir.is_dir() {
        bail!("dataset directory {} does not exist", dir.display());
    }
    let entries: Vec<PathBuf> = WalkDir::new(dir)
        .max_depth(2)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok().map(walkdir::DirEntry::into_path))
        .collect();
    let name_of = |p: &Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    let find = |layout: Layout| {
        entries
            .iter()
            .find(|p| p.is_file() && layout.matches(&name_of(p)))
            .cloned()
    };
    let candidates = [Layout::Flickr8k, Layout::Kaggle, Layout::Karpathy];
    let found: Vec<(Layout, PathBuf)> = candidates
        .into_iter()
        .filter(|l| forced.is_none_or(|f| f == *l))
        .filter_map(|l| find(l).map(|p| (l, p)))
        .collect();
    let Some((layout, captions_file)) = found.first().cloned() else {
        bail!(
            "no known dataset layout in {}: looked for Flickr8k.token.txt (original Flickr8k), \
             captions.txt (Kaggle Flickr8k or `synth`) and dataset_*.json (Karpathy split); \
             see README.md, \"Data layouts\"",
            dir.display()
        );
    };
    if found.len() > 1 {
        tracing::info!(
            "several layouts in {}: using {} (choose another with --layout)",
            dir.display(),
            captions_file.display()
        );
    }
    let image_dir = entries
        .iter()
        .find(|p| p.is_dir() && IMAGE_DIRS.contains(&name_of(p).as_str()))
        .cloned();
    let lists: Vec<PathBuf> = SPLIT_LISTS
        .iter()
        .filter_map(|name| {
            entries
                .iter()
                .find(|p| p.is_file() && name_of(p) == *name)
                .cloned()
        })
        .collect();
    let split_lists = <[PathBuf; 3]>::try_from(lists).ok();
    Ok(DatasetFiles {
        layout,
        captions_file,
        image_dir,
        split_lists,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_original_release_in_subfolders() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("Flickr8k_text");
        std::fs::create_dir_all(&text).unwrap();
        std::fs::create_dir_all(dir.path().join("Flicker8k_Dataset")).unwrap();
        std::fs::write(text.join("Flickr8k.token.txt"), "a.jpg#0\tx\n").unwrap();
        for name in SPLIT_LISTS {
            std::fs::write(text.join(name), "a.jpg\n").unwrap();
        }
        let files = detect(dir.path(), None).unwrap();
        assert_eq!(files.layout, Layout::Flickr8k);
        assert!(files.image_dir.unwrap().ends_with("Flicker8k_Dataset"));
        assert!(files.split_lists.unwrap()[1].ends_with("Flickr_8k.devImages.txt"));
    }

    #[test]
    fn unknown_layout_says_what_was_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
        let err = detect(dir.path(), None).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "no known dataset layout in {}: looked for Flickr8k.token.txt (original \
                 Flickr8k), captions.txt (Kaggle Flickr8k or `synth`) and dataset_*.json \
                 (Karpathy split); see README.md, \"Data layouts\"",
                dir.path().display()
            )
        );
    }

    #[test]
    fn forced_layout_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("captions.txt"), "image,caption\n").unwrap();
        std::fs::write(dir.path().join("dataset_flickr8k.json"), "{}").unwrap();
        assert_eq!(detect(dir.path(), None).unwrap().layout, Layout::Kaggle);
        assert_eq!(
            detect(dir.path(), Some(Layout::Karpathy)).unwrap().layout,
            Layout::Karpathy
        );
    }
}
