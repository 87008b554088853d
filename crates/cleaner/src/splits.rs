//! Assigning images to train/val/test: the dataset's own split when it has one, the official
//! Flickr8k lists when its images are Flickr8k's, else a seeded 80/10/10 split by image.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use contracts::Split;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Where the split came from, for the summary and provenance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitSource {
    /// Lists shipped with the dataset.
    DatasetLists,
    /// The official Flickr8k lists shipped with this project.
    OfficialLists,
    /// The split field of a Karpathy JSON.
    Karpathy,
    /// Seeded random split by image.
    Seeded { seed: u64 },
}

/// Image name to split.
pub type SplitMap = HashMap<String, Split>;

/// Reads the train, val, test lists (one image name per line).
pub fn read_lists(lists: &[PathBuf; 3]) -> Result<HashMap<String, Split>> {
    let mut splits = HashMap::new();
    for (path, split) in lists.iter().zip(Split::ALL) {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading split list {}", path.display()))?;
        for name in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            splits.insert(name.to_string(), split);
        }
    }
    Ok(splits)
}

/// The official lists in `splits_dir`, if they cover at least half of `images`.
pub fn official_lists(
    splits_dir: &Path,
    images: &BTreeSet<&str>,
) -> Result<Option<(SplitMap, [PathBuf; 3])>> {
    let lists = crate::layout::SPLIT_LISTS.map(|name| splits_dir.join(name));
    if !lists.iter().all(|p| p.is_file()) {
        return Ok(None);
    }
    let splits = read_lists(&lists)?;
    let covered = images.iter().filter(|i| splits.contains_key(**i)).count();
    Ok((covered * 2 >= images.len() && covered > 0).then_some((splits, lists)))
}

/// Shuffles the sorted image names with `seed`; the first `test_fraction` go to test, the
/// next `val_fraction` to val, the rest to train.
pub fn seeded_split(
    images: &BTreeSet<&str>,
    seed: u64,
    val_fraction: f64,
    test_fraction: f64,
) -> HashMap<String, Split> {
    let mut order: Vec<&str> = images.iter().copied().collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n = order.len() as f64;
    let n_test = (n * test_fraction).round() as usize;
    let n_val = (n * val_fraction).round() as usize;
    order
        .into_iter()
        .enumerate()
        .map(|(i, image)| {
            let split = if i < n_test {
                Split::Test
            } else if i < n_test + n_val {
                Split::Val
            } else {
                Split::Train
            };
            (image.to_string(), split)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_split_is_deterministic_and_proportional() {
        let names: Vec<String> = (0..1000).map(|i| format!("img{i}.png")).collect();
        let images: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        let a = seeded_split(&images, 3, 0.1, 0.1);
        assert_eq!(a, seeded_split(&images, 3, 0.1, 0.1));
        assert_ne!(a, seeded_split(&images, 4, 0.1, 0.1));
        let count = |s| a.values().filter(|v| **v == s).count();
        assert_eq!(
            (count(Split::Train), count(Split::Val), count(Split::Test)),
            (800, 100, 100)
        );
    }

    #[test]
    fn official_lists_need_to_cover_the_images() {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in
            crate::layout::SPLIT_LISTS
                .iter()
                .zip(["a.jpg\nb.jpg\n", "c.jpg\n", "d.jpg\n"])
        {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let flickr: BTreeSet<&str> = ["a.jpg", "c.jpg", "x.jpg"].into();
        let (splits, _) = official_lists(dir.path(), &flickr).unwrap().unwrap();
        assert_eq!(splits["c.jpg"], Split::Val);
        let other: BTreeSet<&str> = ["synth_1.png", "synth_2.png", "a.jpg"].into();
        assert!(official_lists(dir.path(), &other).unwrap().is_none());
    }
}
