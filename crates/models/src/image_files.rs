//! Finding image files in a folder, for the featurizer's `--images DIR` and `caption DIR`.

use std::path::{Path, PathBuf};

use walkdir::WalkDir;

/// File endings the image decoder reads (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"];

/// Whether `path` has an image file ending.
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Every image file under `dir` (recursively), sorted by path.
pub fn find_images(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(std::io::Error::other)?;
        if entry.file_type().is_file() && is_image_file(entry.path()) {
            found.push(entry.into_path());
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_images_recursively_sorted_and_skips_other_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        for name in ["b.JPG", "a.png", "sub/c.jpeg", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let found: Vec<PathBuf> = find_images(dir.path()).unwrap();
        let relative: Vec<&Path> = found
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap())
            .collect();
        assert_eq!(
            relative,
            [
                Path::new("a.png"),
                Path::new("b.JPG"),
                Path::new("sub/c.jpeg")
            ]
        );
    }
}
