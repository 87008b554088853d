//! Which images to featurize and where they are: the images named by `captions.parquet`
//! (found in the image folder the cleaner recorded, or `--images`), or every image file under
//! `--images DIR` when there are no captions.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use contracts::Provenance;
use contracts::tables::{CAPTIONS_FILE, CaptionsTable, read};
use models::image_files::{IMAGE_EXTENSIONS, find_images};
use sha2::{Digest, Sha256};

/// The images of a run: names relative to `dir`, sorted, without duplicates.
#[derive(Debug, Clone)]
pub struct ImageList {
    pub dir: PathBuf,
    pub names: Vec<String>,
    /// `captions.parquet` when the list came from it (recorded as an input).
    pub captions: Option<PathBuf>,
}

impl ImageList {
    /// The list for `work_dir`, as documented in the module header.
    pub fn resolve(work_dir: &Path, images: Option<&Path>) -> Result<Self> {
        let captions = work_dir.join(CAPTIONS_FILE);
        match (captions.is_file(), images) {
            (true, dir) => Self::from_captions(&captions, dir),
            (false, Some(dir)) => Self::from_folder(dir),
            (false, None) => bail!(
                "{} does not exist: run the cleaner first (`make captions`), \
                 or pass --images DIR to featurize every image in a folder",
                captions.display()
            ),
        }
    }

    fn from_captions(captions: &Path, dir: Option<&Path>) -> Result<Self> {
        let (rows, provenance) = read::<CaptionsTable>(captions)?;
        let recorded = provenance.as_ref().and_then(Provenance::image_dir);
        let Some(dir) = dir.map(Path::to_path_buf).or(recorded) else {
            bail!(
                "{} does not say where the images are (the dataset had no image folder): pass --images DIR",
                captions.display()
            );
        };
        let mut names: Vec<String> = rows.into_iter().map(|r| r.image).collect();
        names.sort();
        names.dedup();
        for name in &names {
            contracts::image_name::check_image_name(name)
                .map_err(|why| anyhow::anyhow!("{}: {why}", captions.display()))?;
        }
        Ok(Self {
            dir,
            names,
            captions: Some(captions.to_path_buf()),
        })
    }

    fn from_folder(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!("image folder {} does not exist", dir.display());
        }
        let found = find_images(dir).with_context(|| format!("listing {}", dir.display()))?;
        let names: Vec<String> = found
            .iter()
            .map(|p| {
                p.strip_prefix(dir)
                    .unwrap_or(p)
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        if names.is_empty() {
            bail!(
                "no image files ({}) under {}",
                IMAGE_EXTENSIONS.join(", "),
                dir.display()
            );
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            names,
            captions: None,
        })
    }

    /// A fingerprint of the list: parts of a resumed run must come from the same list.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for name in &self.names {
            hasher.update(name.as_bytes());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_captions_or_folder_the_error_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = ImageList::resolve(dir.path(), None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "{} does not exist: run the cleaner first (`make captions`), \
                 or pass --images DIR to featurize every image in a folder",
                dir.path().join(CAPTIONS_FILE).display()
            )
        );
    }
}
