//! The `features/` dataset as a list of parts: part `i` holds images
//! `[i * part_rows, (i + 1) * part_rows)` of the sorted image list. Parts are the unit of
//! resume (a finished part is never redone) and of sharding (`--shard k/n` takes every part
//! `i` with `i % n == k - 1`).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Result, bail};

/// `--shard k/n`: this machine's share of the parts (k counts from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const WHOLE: Self = Self { index: 1, count: 1 };

    pub fn owns(&self, part: usize) -> bool {
        part % self.count == self.index - 1
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parse = || -> Option<Self> {
            let (k, n) = text.split_once('/')?;
            Some(Self {
                index: k.trim().parse().ok()?,
                count: n.trim().parse().ok()?,
            })
        };
        match parse() {
            Some(shard) if shard.count >= 1 && (1..=shard.count).contains(&shard.index) => {
                Ok(shard)
            }
            _ => Err(format!(
                "--shard {text:?}: expected k/n with 1 <= k <= n, e.g. 2/4"
            )),
        }
    }
}

/// One part file to produce.
#[derive(Debug, Clone)]
pub struct Part {
    pub index: usize,
    pub path: PathBuf,
    /// Positions in the image list.
    pub range: std::ops::Range<usize>,
}

impl Part {
    /// The part's file name (`part-00003.parquet`).
    pub fn file_name(&self) -> String {
        part_file_name(self.index)
    }
}

fn part_file_name(index: usize) -> String {
    format!("part-{index:05}.parquet")
}

/// Every part of a list of `images` images.
pub fn plan(features_dir: &Path, images: usize, part_rows: usize) -> Result<Vec<Part>> {
    if part_rows == 0 {
        bail!("featurizer.part_rows must be at least 1");
    }
    Ok((0..images.div_ceil(part_rows))
        .map(|index| Part {
            index,
            path: features_dir.join(part_file_name(index)),
            range: index * part_rows..((index + 1) * part_rows).min(images),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_parts_without_overlap() {
        let parts = plan(Path::new("f"), 10, 3).unwrap();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[3].range, 9..10);
        assert!(parts[0].path.ends_with("part-00000.parquet"));
        let a: Vec<usize> = (0..4)
            .filter(|i| "1/2".parse::<Shard>().unwrap().owns(*i))
            .collect();
        let b: Vec<usize> = (0..4)
            .filter(|i| "2/2".parse::<Shard>().unwrap().owns(*i))
            .collect();
        assert_eq!((a, b), (vec![0, 2], vec![1, 3]));
    }

    #[test]
    fn bad_shards_are_refused() {
        for text in ["0/2", "3/2", "1/0", "x", "1-2"] {
            assert!(text.parse::<Shard>().is_err(), "{text}");
        }
        assert_eq!("2/4".parse::<Shard>().unwrap().to_string(), "2/4");
    }
}
