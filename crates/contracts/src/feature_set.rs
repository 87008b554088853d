//! The one reader of a `features/` dataset, shared by the trainer and the evaluator: every
//! part, or only the images a stage needs (memory bounded by what it keeps), each image
//! once, with the encoder settings the parts record.

use std::collections::HashMap;
use std::path::Path;

use crate::dataset::dataset_parts;
use crate::encoder::EncoderSettings;
use crate::error::ContractError;
use crate::stage::Stage;
use crate::tables::{Features, FeaturesTable, read};

/// The feature vectors read from a `features/` folder, with each image's row.
#[derive(Debug, Clone, Default)]
pub struct FeatureSet {
    features: Features,
    row_of: HashMap<String, usize>,
    encoder: Option<EncoderSettings>,
}

impl FeatureSet {
    /// Reads every part of `dir`, keeping the images for which `keep` is true.
    pub fn read(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Self, ContractError> {
        let parts = dataset_parts(dir)?;
        if parts.is_empty() {
            return Err(ContractError::Provenance {
                path: dir.to_path_buf(),
                message: "no part-*.parquet files".into(),
                stage: Stage::Featurizer,
            });
        }
        let mut set = Self::default();
        for part in &parts {
            let (features, provenance) = read::<FeaturesTable>(part)?;
            if set.encoder.is_none()
                && let Some(provenance) = &provenance
            {
                set.encoder = EncoderSettings::from_part_config(&provenance.config)?;
            }
            for (i, image) in features.images.iter().enumerate() {
                if keep(image) {
                    set.push(dir, image, features.row(i))?;
                }
            }
        }
        Ok(set)
    }

    /// A set of vectors already in memory (tests, benchmarks); a repeated image keeps its
    /// first row.
    pub fn from_features(features: Features) -> Self {
        let mut row_of = HashMap::with_capacity(features.images.len());
        for (row, image) in features.images.iter().enumerate() {
            row_of.entry(image.clone()).or_insert(row);
        }
        Self {
            features,
            row_of,
            encoder: None,
        }
    }

    fn push(&mut self, dir: &Path, image: &str, vector: &[f32]) -> Result<(), ContractError> {
        let row = self.features.images.len();
        if self.row_of.insert(image.to_string(), row).is_some() {
            return Err(ContractError::Provenance {
                path: dir.to_path_buf(),
                message: format!("image {image} has more than one feature vector"),
                stage: Stage::Featurizer,
            });
        }
        self.features.images.push(image.to_string());
        self.features.features.extend_from_slice(vector);
        Ok(())
    }

    /// Images, in the order read (part by part).
    pub fn images(&self) -> &[String] {
        &self.features.images
    }

    pub fn len(&self) -> usize {
        self.features.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.features.images.is_empty()
    }

    /// The row of `image`, if it has a vector.
    pub fn row_of(&self, image: &str) -> Option<usize> {
        self.row_of.get(image).copied()
    }

    /// The vector of row `row`.
    pub fn row(&self, row: usize) -> &[f32] {
        self.features.row(row)
    }

    /// All vectors, row-major.
    pub fn values(&self) -> &[f32] {
        &self.features.features
    }

    /// The encoder settings of the first part that records them (`None` when another tool
    /// wrote the parts).
    pub fn encoder(&self) -> Option<&EncoderSettings> {
        self.encoder.as_ref()
    }

    /// The vectors of `images` in that order, or an error naming how many have none and the
    /// first of them.
    pub fn select(&self, dir: &Path, images: &[String]) -> Result<Features, ContractError> {
        let missing: Vec<&String> = images.iter().filter(|i| self.row_of(i).is_none()).collect();
        if let Some(first) = missing.first() {
            return Err(ContractError::Provenance {
                path: dir.to_path_buf(),
                message: format!(
                    "{} images have no feature vector (first: {first})",
                    missing.len()
                ),
                stage: Stage::Featurizer,
            });
        }
        let mut out = Features::default();
        for image in images {
            out.images.push(image.clone());
            out.features.extend_from_slice(self.row(self.row_of[image]));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::Provenance;
    use crate::tables::{FEATURE_DIM, write};

    fn part(dir: &Path, name: &str, images: &[&str]) {
        let features = Features {
            images: images.iter().map(|s| s.to_string()).collect(),
            features: (0..images.len() * FEATURE_DIM).map(|i| i as f32).collect(),
        };
        let provenance = Provenance::new(Stage::Featurizer, serde_json::json!({}));
        write::<FeaturesTable>(&dir.join(name), &features, &provenance).unwrap();
    }

    #[test]
    fn reads_kept_images_of_every_part_and_selects_them_in_order() {
        let dir = tempfile::tempdir().unwrap();
        part(dir.path(), "part-00000.parquet", &["a.jpg", "b.jpg"]);
        part(dir.path(), "part-00001.parquet", &["c.jpg"]);
        let set = FeatureSet::read(dir.path(), |image| image != "b.jpg").unwrap();
        assert_eq!(set.images(), ["a.jpg", "c.jpg"]);
        assert_eq!(set.row(1)[0], 0.0);
        assert_eq!(set.row(0)[1], 1.0);
        let wanted = ["c.jpg".to_string(), "a.jpg".to_string()];
        assert_eq!(set.select(dir.path(), &wanted).unwrap().images, wanted);
        let err = set
            .select(dir.path(), &["b.jpg".to_string(), "z.jpg".to_string()])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: 2 images have no feature vector (first: b.jpg); rerun the featurizer stage \
                 (`make features`)",
                dir.path().display()
            )
        );
    }

    #[test]
    fn an_image_in_two_parts_and_an_empty_folder_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = FeatureSet::read(dir.path(), |_| true).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: no part-*.parquet files; rerun the featurizer stage (`make features`)",
                dir.path().display()
            )
        );
        part(dir.path(), "part-00000.parquet", &["a.jpg"]);
        part(dir.path(), "part-00001.parquet", &["a.jpg"]);
        let err = FeatureSet::read(dir.path(), |_| true).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: image a.jpg has more than one feature vector; rerun the featurizer stage \
                 (`make features`)",
                dir.path().display()
            )
        );
    }
}
