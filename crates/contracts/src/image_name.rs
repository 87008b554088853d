//! Image names from datasets are untrusted text: a name is a relative path inside the image
//! folder, never absolute and never climbing out with `..`.

use std::path::{Component, Path, PathBuf};

/// Checks an image name from a caption file; the error says why it was rejected.
pub fn check_image_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty image name".into());
    }
    let path = Path::new(name);
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(format!("image name {name:?} contains `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("image name {name:?} is an absolute path"));
            }
        }
    }
    Ok(())
}

/// The file of a checked image name inside `image_dir`.
pub fn image_path(image_dir: &Path, name: &str) -> Result<PathBuf, String> {
    check_image_name(name)?;
    Ok(image_dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names_pass() {
        assert!(check_image_name("1000268201_693b08cb0e.jpg").is_ok());
        assert!(check_image_name("val2014/COCO_1.jpg").is_ok());
    }

    #[test]
    fn escapes_are_rejected() {
        assert_eq!(
            check_image_name("../etc/passwd").unwrap_err(),
            "image name \"../etc/passwd\" contains `..`"
        );
        assert!(check_image_name("a/../../b.jpg").is_err());
        assert_eq!(
            check_image_name("/etc/passwd").unwrap_err(),
            "image name \"/etc/passwd\" is an absolute path"
        );
        assert!(check_image_name("").is_err());
    }
}
