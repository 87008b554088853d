//! The image encoder's settings: which ResNet50 weights and which preprocessing made a set of
//! features. The featurizer records them in every part it writes; the trained model carries
//! a copy, so `caption` encodes new photos exactly as the training images were encoded.

use serde::{Deserialize, Serialize};

use crate::error::ContractError;

/// The weights of the encoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WeightsSpec {
    /// The seeded random initialisation (`weights = "random"`, the offline demo).
    Random { random_seed: u64 },
    /// A weights file and the SHA-256 of its content.
    File { file: String, sha256: String },
}

/// Everything that decides an image's features besides the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderSettings {
    pub weights: WeightsSpec,
    /// Shorter side after resizing.
    pub resize: u32,
    /// Side of the center crop fed to the network.
    pub crop: u32,
}

impl EncoderSettings {
    /// The settings recorded in a features part's provenance (`config["settings"]`), `None`
    /// for a part another tool wrote.
    pub fn from_part_config(config: &serde_json::Value) -> Result<Option<Self>, ContractError> {
        let Some(settings) = config.get("settings") else {
            return Ok(None);
        };
        serde_json::from_value(settings.clone())
            .map(Some)
            .map_err(|e| ContractError::Setting {
                message: format!(
                    "the encoder settings a features part records are unreadable ({e})"
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_back_from_the_json_parts_record() {
        let random = serde_json::json!({"settings": {
            "weights": {"random_seed": 3}, "resize": 256, "crop": 224,
            "part_rows": 512, "images": 10, "images_sha256": "ab"
        }});
        assert_eq!(
            EncoderSettings::from_part_config(&random).unwrap(),
            Some(EncoderSettings {
                weights: WeightsSpec::Random { random_seed: 3 },
                resize: 256,
                crop: 224
            })
        );
        let file = EncoderSettings {
            weights: WeightsSpec::File {
                file: "w.pth".into(),
                sha256: "cd".into(),
            },
            resize: 232,
            crop: 224,
        };
        let json = serde_json::json!({ "settings": file });
        assert_eq!(
            json["settings"],
            serde_json::json!({"weights": {"file": "w.pth", "sha256": "cd"}, "resize": 232, "crop": 224})
        );
        assert_eq!(
            EncoderSettings::from_part_config(&json).unwrap(),
            Some(file)
        );
        assert_eq!(
            EncoderSettings::from_part_config(&serde_json::json!({})).unwrap(),
            None
        );
    }
}
