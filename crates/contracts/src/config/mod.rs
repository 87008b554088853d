//! `pipeline.toml`: every path and hyperparameter of the pipeline, one section per stage.
//!
//! The file is read as a TOML table, overrides (`--set section.key=value`, and stage flags
//! such as `trainer --epochs 5`) are applied to that table, every key is checked against its
//! range in [`PipelineConfig::settings`], and only then is the table turned into
//! [`PipelineConfig`]: an override is checked exactly like a key in the file, and a bad key or
//! value is an error that names it and where it came from, before any stage starts work.
//!
//! - [`sections`]: every section and key, declared once; [`choices`]: the enum-valued keys;
//! - [`settings`]: what a key accepts, and the `section!` macro; [`overrides`]: `--set` and
//!   stage flags; [`moved`]: keys that have moved, and where to.

mod choices;
mod moved;
mod overrides;
mod sections;
pub mod settings;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::error::ContractError;
pub use crate::tables::Split;
pub use choices::{
    DecoderKind, Device, DeviceSlot, ImageInputs, LrSchedule, ScstBaseline, SynthScene, ValMetric,
};
pub use overrides::Override;
use overrides::{Source, apply};
pub use sections::{
    AttentionSettings, CleanerConfig, EvaluatorConfig, FeaturizerConfig, MergeSettings,
    ModelConfig, Paths, SynthConfig, TokenizerConfig, TrainerConfig, TransformerSettings,
};
use settings::Settings;

/// The whole configuration; every section has defaults so a partial file is valid.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    pub paths: Paths,
    pub synth: SynthConfig,
    pub cleaner: CleanerConfig,
    pub tokenizer: TokenizerConfig,
    pub featurizer: FeaturizerConfig,
    pub model: ModelConfig,
    pub trainer: TrainerConfig,
    pub evaluator: EvaluatorConfig,
}

/// Every key of every section, in file order.
static SETTINGS: LazyLock<Settings> = LazyLock::new(|| Settings::new(PipelineConfig::settings()));

impl PipelineConfig {
    /// Every key of every section, in file order.
    pub fn settings() -> Vec<settings::Setting> {
        [
            Paths::settings(),
            SynthConfig::settings(),
            CleanerConfig::settings(),
            TokenizerConfig::settings(),
            FeaturizerConfig::settings(),
            ModelConfig::settings(),
            TrainerConfig::settings(),
            EvaluatorConfig::settings(),
        ]
        .concat()
    }

    /// Reads `path`, applies `overrides` in order and checks every key. A missing default
    /// config file is not an error when `path_is_default` is true: the built-in defaults
    /// apply.
    pub fn load(
        path: &Path,
        overrides: &[Override],
        path_is_default: bool,
    ) -> Result<Self, ContractError> {
        let config_error = |message: String| ContractError::Config {
            file: path.to_path_buf(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path_is_default => String::new(),
            Err(error) => return Err(ContractError::io(path, error)),
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| config_error(e.to_string()))?;
        if let Some((section, _)) = table.iter().find(|(_, keys)| !keys.is_table()) {
            return Err(config_error(format!("`{section}` is not a [section]")));
        }
        let mut sources = BTreeMap::new();
        for (key, _) in leaves(&table) {
            sources.insert(key, Source::File(path.into()));
        }
        for item in overrides {
            apply(&mut table, item)?;
            sources.insert(item.key.clone(), Source::Command(item.clone()));
        }
        check_keys(&table, &sources)?;
        let config: Self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| config_error(e.to_string()))?;
        config.check_relations(&sources)?;
        Ok(config)
    }

    /// Rules between keys, which a key's own range cannot say.
    fn check_relations(&self, sources: &BTreeMap<String, Source>) -> Result<(), ContractError> {
        let source = |key: &str| {
            sources
                .get(key)
                .map_or_else(|| "the default".to_string(), Source::to_string)
        };
        let (crop, resize) = (self.featurizer.crop, self.featurizer.resize);
        if crop > resize {
            return Err(ContractError::Setting {
                message: format!(
                    "featurizer.crop = {crop} ({}) is larger than featurizer.resize = {resize} \
                     ({}): the center crop must fit in the resized image",
                    source("featurizer.crop"),
                    source("featurizer.resize")
                ),
            });
        }
        let trainer = &self.trainer;
        if let Some(other) = trainer.devices.iter().find(|d| d.kind != trainer.device) {
            return Err(ContractError::Setting {
                message: format!(
                    "trainer.devices names {other} ({}), but trainer.device = \"{}\" ({}): \
                     set trainer.device = \"{}\" as well, or list {} devices only",
                    source("trainer.devices"),
                    trainer.device,
                    source("trainer.device"),
                    other.kind,
                    trainer.device
                ),
            });
        }
        let (val, test) = (self.cleaner.val_fraction, self.cleaner.test_fraction);
        if val + test >= 1.0 {
            return Err(ContractError::Setting {
                message: format!(
                    "cleaner.val_fraction = {val} ({}) and cleaner.test_fraction = {test} ({}) \
                     leave no images for train: their sum must be below 1",
                    source("cleaner.val_fraction"),
                    source("cleaner.test_fraction")
                ),
            });
        }
        Ok(())
    }
}

impl PipelineConfig {
    /// The named sections (`trainer`) and single keys (`evaluator.max_len`) as one JSON
    /// object of sections, keys sorted: what a stage reads, for the Makefile's stamps.
    pub fn sections_json(&self, names: &str) -> Result<String, ContractError> {
        let all = serde_json::to_value(self).map_err(|e| ContractError::Override {
            item: names.into(),
            message: e.to_string(),
        })?;
        let mut picked = serde_json::Map::new();
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let (section, key) = match name.split_once('.') {
                Some((section, key)) => (section, Some(key)),
                None => (name, None),
            };
            let missing = |what: &str| ContractError::Override {
                item: name.into(),
                message: format!("no such config {what}"),
            };
            let values = all.get(section).ok_or_else(|| missing("section"))?;
            let entry = picked
                .entry(section)
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            match key {
                None => *entry = values.clone(),
                Some(key) => {
                    let value = values
                        .pointer(&format!("/{}", key.replace('.', "/")))
                        .ok_or_else(|| missing("key"))?;
                    if let serde_json::Value::Object(keys) = entry {
                        keys.insert(key.into(), value.clone());
                    }
                }
            }
        }
        Ok(serde_json::Value::Object(picked).to_string())
    }
}

/// Every value of `table` that is not itself a table, by its dotted key
/// (`model.attention.dim`).
fn leaves(table: &toml::Table) -> Vec<(String, &toml::Value)> {
    let mut out = Vec::new();
    for (name, value) in table {
        match value {
            toml::Value::Table(inner) => out.extend(
                leaves(inner)
                    .into_iter()
                    .map(|(key, value)| (format!("{name}.{key}"), value)),
            ),
            value => out.push((name.clone(), value)),
        }
    }
    out
}

/// Refuses a key that has moved, an unknown section or key, and a value outside its key's
/// range.
fn check_keys(
    table: &toml::Table,
    sources: &BTreeMap<String, Source>,
) -> Result<(), ContractError> {
    let known_sections = SETTINGS.sections();
    for (name, value) in leaves(table) {
        let source = &sources[&name];
        if let Some(moved) = moved::find(&name) {
            return Err(ContractError::Setting {
                message: format!("{name} ({source}) {moved}"),
            });
        }
        let Some(setting) = SETTINGS.find(&name) else {
            let section = settings::section_of(&name);
            let known = if known_sections.contains(&section) {
                format!("[{section}] has {}", SETTINGS.keys_of(section).join(", "))
            } else {
                format!("the sections are {}", known_sections.join(", "))
            };
            return Err(ContractError::Setting {
                message: format!("unknown key {name} ({source}); {known}"),
            });
        };
        if !setting.allowed.admits(value) {
            return Err(ContractError::Setting {
                message: format!(
                    "{name} = {value} ({source}) is not allowed: expected {}",
                    setting.allowed
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::overrides::parse_value;
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    fn sets(items: &[&str]) -> Vec<Override> {
        items.iter().map(|i| Override::set(i).unwrap()).collect()
    }

    /// The error of loading `file` (`none.toml`: no file, the defaults) with `overrides`.
    fn load_error(file: &Path, overrides: &[Override]) -> String {
        PipelineConfig::load(file, overrides, file == Path::new("none.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn overrides_win_over_the_file() {
        let file = write("[trainer]\nepochs = 3\nseed = 1\n");
        let overrides = sets(&["trainer.epochs=15", "paths.weights=random"]);
        let config = PipelineConfig::load(file.path(), &overrides, false).unwrap();
        assert_eq!(config.trainer.epochs, 15);
        assert_eq!(config.trainer.seed, 1);
        assert_eq!(config.paths.weights, "random");
        assert_eq!(config.model, ModelConfig::default());
    }

    #[test]
    fn unknown_keys_are_named_with_where_they_came_from() {
        let file = write("[trainer]\nepoch = 3\n");
        let known = SETTINGS.keys_of("trainer").join(", ");
        assert_eq!(
            load_error(file.path(), &[]),
            format!(
                "unknown key trainer.epoch (in {}); [trainer] has {known}",
                file.path().display()
            )
        );
        let empty = write("");
        assert_eq!(
            load_error(empty.path(), &sets(&["trainer.epohcs=2"])),
            format!(
                "unknown key trainer.epohcs (from --set trainer.epohcs=2); [trainer] has {known}"
            )
        );
        assert_eq!(
            load_error(empty.path(), &sets(&["train.epochs=2"])),
            "unknown key train.epochs (from --set train.epochs=2); the sections are paths, \
             synth, cleaner, tokenizer, featurizer, model, model.merge, model.attention, \
             model.transformer, trainer, evaluator"
        );
        assert_eq!(
            load_error(empty.path(), &sets(&["model.attention.size=2"])),
            "unknown key model.attention.size (from --set model.attention.size=2); \
             [model.attention] has dim, doubly_stochastic"
        );
    }

    /// A model's key in its table, in a file and from `--set`.
    #[test]
    fn model_tables_load_from_the_file_and_from_overrides() {
        let file = write("[model]\nhidden_dim = 64\n\n[model.attention]\ndim = 32\n");
        let overrides = sets(&[
            "model.merge.join_image=false",
            "model.attention.doubly_stochastic=0.5",
        ]);
        let config = PipelineConfig::load(file.path(), &overrides, false).unwrap();
        assert_eq!(config.model.hidden_dim, 64);
        assert_eq!(
            config.model.attention,
            AttentionSettings {
                dim: 32,
                doubly_stochastic: 0.5
            }
        );
        assert_eq!(config.model.merge, MergeSettings { join_image: false });
    }

    /// A key of the old layout names its new place, in a file and from `--set`.
    #[test]
    fn moved_keys_name_their_new_place() {
        let file = write("[model]\nmerge = true\nattention_dim = 128\n");
        assert_eq!(
            load_error(file.path(), &[]),
            format!(
                "model.attention_dim (in {}) has moved: set dim in [model.attention] \
                 (model.attention.dim) instead",
                file.path().display()
            )
        );
        let file = write("[model]\nmerge = false\n");
        assert_eq!(
            load_error(file.path(), &[]),
            format!(
                "model.merge (in {}) has moved: set join_image in [model.merge] \
                 (model.merge.join_image) instead",
                file.path().display()
            )
        );
        assert_eq!(
            load_error(
                Path::new("none.toml"),
                &sets(&["trainer.attention_reg=0.5"])
            ),
            "trainer.attention_reg (from --set trainer.attention_reg=0.5) has moved: set \
             doubly_stochastic in [model.attention] (model.attention.doubly_stochastic) instead"
        );
    }

    #[test]
    fn override_without_section_is_refused() {
        assert_eq!(
            Override::set("epochs=2").unwrap_err().to_string(),
            "--set epochs=2: the key needs a section, e.g. trainer.epochs"
        );
        assert_eq!(
            Override::set("trainer.epochs").unwrap_err().to_string(),
            "--set trainer.epochs: expected section.key=value"
        );
    }

    #[test]
    fn flags_are_named_as_the_source_of_their_value() {
        let flag = Override::flag("--batch-size", "featurizer.batch_size", Some(0)).unwrap();
        assert_eq!(
            PipelineConfig::load(Path::new("none.toml"), &[flag], true)
                .unwrap_err()
                .to_string(),
            "featurizer.batch_size = 0 (from --batch-size 0) is not allowed: expected an \
             integer from 1 to 1024"
        );
        assert_eq!(
            Override::flag("--epochs", "trainer.epochs", None::<usize>),
            None
        );
    }

    /// A value just outside (or of another type than) what each key accepts, and the error.
    #[test]
    fn every_key_refuses_values_outside_its_range() {
        let cases: &[(&str, &str, &str)] = &[
            ("paths.dataset_dir", "3", "a string"),
            ("paths.work_dir", "true", "a string"),
            ("paths.weights", "1.5", "a string"),
            ("paths.splits_dir", "0", "a string"),
            ("synth.images", "0", "an integer from 1 to 1000000"),
            ("synth.seed", "-1", "an integer >= 0"),
            ("synth.image_size", "16", "an integer from 32 to 4096"),
            ("synth.scene", "large", "one of \"mixed\", \"small-shapes\""),
            ("cleaner.seed", "\"x\"", "an integer >= 0"),
            ("cleaner.val_fraction", "1.0", "a number in [0, 1)"),
            ("cleaner.test_fraction", "-0.1", "a number in [0, 1)"),
            ("tokenizer.min_count", "0", "an integer >= 1"),
            ("tokenizer.max_len", "0", "an integer from 1 to 1000"),
            ("featurizer.batch_size", "0", "an integer from 1 to 1024"),
            ("featurizer.resize", "31", "an integer from 32 to 4096"),
            ("featurizer.crop", "5000", "an integer from 32 to 4096"),
            ("featurizer.part_rows", "0", "an integer from 1 to 1000000"),
            ("featurizer.seed", "0.5", "an integer >= 0"),
            ("featurizer.device", "gpu", "one of \"cpu\", \"cuda\""),
            (
                "model.decoder",
                "lstm",
                "one of \"merge\", \"attention\", \"transformer\"",
            ),
            ("model.embed_dim", "0", "an integer from 1 to 65536"),
            ("model.hidden_dim", "70000", "an integer from 1 to 65536"),
            ("model.dropout", "1", "a number in [0, 1)"),
            ("model.standardize", "1", "true or false"),
            ("model.merge.join_image", "yes", "true or false"),
            ("model.attention.dim", "0", "an integer from 1 to 65536"),
            (
                "model.attention.doubly_stochastic",
                "-1",
                "a number in [0, 1000]",
            ),
            (
                "model.transformer.d_model",
                "0",
                "an integer from 1 to 65536",
            ),
            ("model.transformer.heads", "0", "an integer from 1 to 1024"),
            (
                "model.transformer.feed_forward",
                "0",
                "an integer from 1 to 65536",
            ),
            (
                "model.transformer.encoder_layers",
                "65",
                "an integer from 1 to 64",
            ),
            (
                "model.transformer.decoder_layers",
                "0",
                "an integer from 1 to 64",
            ),
            ("model.transformer.dropout", "1.0", "a number in [0, 1)"),
            ("trainer.epochs", "0", "an integer from 1 to 100000"),
            ("trainer.batch_size", "0", "an integer from 1 to 65536"),
            ("trainer.learning_rate", "0", "a number in (0, 1]"),
            ("trainer.adam_epsilon", "0", "a number in (0, 1]"),
            ("trainer.clip_norm", "-1", "a number in [0, 1000000000]"),
            (
                "trainer.lr_schedule",
                "noam",
                "one of \"auto\", \"plateau\", \"warmup\"",
            ),
            ("trainer.warmup_steps", "0", "an integer from 1 to 10000000"),
            ("trainer.lr_decay", "1.5", "a number in (0, 1]"),
            ("trainer.lr_patience", "-1", "an integer from 0 to 100000"),
            ("trainer.patience", "-2", "an integer from 0 to 100000"),
            ("trainer.val_metric", "bleu5", "one of \"bleu4\", \"loss\""),
            ("trainer.seed", "many", "an integer >= 0"),
            ("trainer.device", "tpu", "one of \"cpu\", \"cuda\""),
            (
                "trainer.devices",
                "[\"cuda:x\"]",
                "a list of \"cpu\", \"cuda\" or \"cuda:N\", such as [\"cuda:0\", \"cuda:1\"]",
            ),
            ("trainer.scst_epochs", "-1", "an integer from 0 to 100000"),
            ("trainer.scst_samples", "1", "an integer from 2 to 100"),
            (
                "trainer.scst_baseline",
                "max",
                "one of \"mean\", \"greedy\"",
            ),
            ("trainer.scst_learning_rate", "0", "a number in (0, 1]"),
            (
                "evaluator.split",
                "dev",
                "one of \"train\", \"val\", \"test\"",
            ),
            ("evaluator.beam_size", "0", "an integer from 1 to 100"),
            ("evaluator.max_len", "0", "an integer from 1 to 255"),
            ("evaluator.length_alpha", "-1", "a number in [0, 10]"),
            ("evaluator.suppress_unk", "\"no\"", "true or false"),
            ("evaluator.gallery_size", "-1", "an integer from 0 to 1000"),
            ("evaluator.device", "metal", "one of \"cpu\", \"cuda\""),
            ("evaluator.meteor_data", "7", "a string"),
        ];
        let tested: Vec<&str> = cases.iter().map(|c| c.0).collect();
        let all: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        assert_eq!(tested, all, "every key needs a case here");
        for (key, value, allowed) in cases {
            let item = format!("{key}={value}");
            let shown = parse_value(value);
            assert_eq!(
                load_error(Path::new("none.toml"), &sets(&[&item])),
                format!("{key} = {shown} (from --set {item}) is not allowed: expected {allowed}"),
                "{item}"
            );
            // The same value in a file names the file.
            let (section, name) = key.rsplit_once('.').unwrap();
            let file = write(&format!("[{section}]\n{name} = {shown}\n"));
            assert_eq!(
                load_error(file.path(), &[]),
                format!(
                    "{key} = {shown} (in {}) is not allowed: expected {allowed}",
                    file.path().display()
                ),
            );
        }
    }

    /// `config` as the TOML table `pipeline.toml` would write.
    fn as_table(config: &PipelineConfig) -> toml::Table {
        toml::Table::try_from(config).unwrap()
    }

    fn shipped_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipeline.toml")
    }

    #[test]
    fn the_settings_list_every_key_and_admit_the_defaults() {
        let defaults = as_table(&PipelineConfig::default());
        let mut keys = Vec::new();
        for (key, value) in leaves(&defaults) {
            let setting = SETTINGS
                .find(&key)
                .unwrap_or_else(|| panic!("{key} has no range"));
            assert!(setting.allowed.admits(value), "default {key} = {value}");
            assert!(!setting.doc().is_empty(), "{key} has no doc");
            keys.push(key);
        }
        keys.sort();
        let mut listed: Vec<String> = SETTINGS.iter().map(|s| s.key.into()).collect();
        listed.sort();
        assert_eq!(keys, listed);
    }

    /// `pipeline.toml` writes out every key, and each has its built-in default except the
    /// keys whose line says `differs from the built-in default` and why.
    #[test]
    fn the_shipped_file_agrees_with_the_built_in_defaults() {
        let text = std::fs::read_to_string(shipped_path()).unwrap();
        let written: toml::Table = text.parse().unwrap();
        let mut written: Vec<String> = leaves(&written).into_iter().map(|(key, _)| key).collect();
        let mut listed: Vec<String> = SETTINGS.iter().map(|s| s.key.into()).collect();
        written.sort();
        listed.sort();
        assert_eq!(written, listed, "pipeline.toml writes every key");
        let shipped = as_table(&PipelineConfig::load(&shipped_path(), &[], false).unwrap());
        let shipped = leaves(&shipped);
        let defaults = as_table(&PipelineConfig::default());
        let defaults = leaves(&defaults);
        let marked: Vec<String> = text
            .lines()
            .filter(|line| line.contains("differs from the built-in default"))
            .filter_map(|line| line.split('=').next())
            .map(|key| key.trim().to_string())
            .collect();
        let differing: Vec<String> = shipped
            .iter()
            .zip(&defaults)
            .filter(|(shipped, default)| shipped != default)
            .map(|((key, _), _)| key.rsplit('.').next().unwrap().to_string())
            .collect();
        assert_eq!(
            differing, marked,
            "keys of pipeline.toml unlike the built-in defaults"
        );
    }

    #[test]
    fn rules_between_keys_name_both() {
        assert_eq!(
            load_error(Path::new("none.toml"), &sets(&["featurizer.crop=300"])),
            "featurizer.crop = 300 (from --set featurizer.crop=300) is larger than \
             featurizer.resize = 256 (the default): the center crop must fit in the resized image"
        );
        assert_eq!(
            load_error(
                Path::new("none.toml"),
                &sets(&["cleaner.val_fraction=0.5", "cleaner.test_fraction=0.5"])
            ),
            "cleaner.val_fraction = 0.5 (from --set cleaner.val_fraction=0.5) and \
             cleaner.test_fraction = 0.5 (from --set cleaner.test_fraction=0.5) leave no images \
             for train: their sum must be below 1"
        );
        let devices = Override::list_flag(
            "--devices",
            "trainer.devices",
            Some(&vec!["cuda:0".into(), "cuda:1".into()]),
        );
        assert_eq!(
            load_error(Path::new("none.toml"), &[devices.unwrap()]),
            "trainer.devices names cuda:0 (from --devices cuda:0,cuda:1), but trainer.device = \
             \"cpu\" (the default): set trainer.device = \"cuda\" as well, or list cpu devices \
             only"
        );
    }

    #[test]
    fn devices_are_cpu_cuda_or_cuda_with_an_index() {
        let slot = |text: &str| text.parse::<DeviceSlot>();
        let cuda = |index| DeviceSlot {
            kind: Device::Cuda,
            index,
        };
        assert_eq!(
            slot("cpu"),
            Ok(DeviceSlot {
                kind: Device::Cpu,
                index: 0
            })
        );
        assert_eq!(slot("cuda"), Ok(cuda(0)));
        assert_eq!(slot("cuda:3"), Ok(cuda(3)));
        for bad in ["cpu:1", "cuda:", "cuda:-1", "gpu", ""] {
            assert_eq!(
                slot(bad),
                Err(format!(
                    "device {bad:?}: expected \"cpu\", \"cuda\" or \"cuda:N\""
                ))
            );
        }
        let config = PipelineConfig::load(
            Path::new("none.toml"),
            &sets(&["trainer.devices=[\"cpu\", \"cpu\"]"]),
            true,
        )
        .unwrap();
        assert_eq!(config.trainer.replicas().len(), 2);
        assert_eq!(
            PipelineConfig::default().trainer.replicas(),
            [DeviceSlot {
                kind: Device::Cpu,
                index: 0
            }]
        );
        assert_eq!(cuda(1).to_string(), "cuda:1");
    }

    #[test]
    fn sections_print_as_json_and_unknown_sections_are_refused() {
        let config =
            PipelineConfig::load(Path::new("none.toml"), &sets(&["trainer.epochs=3"]), true)
                .unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&config.sections_json("trainer,model").unwrap()).unwrap();
        assert_eq!(json["trainer"]["epochs"], 3);
        assert_eq!(json["trainer"]["val_metric"], "bleu4");
        assert_eq!(json["model"]["hidden_dim"], 512);
        assert!(json.get("paths").is_none());
        assert_eq!(
            config.sections_json("nope").unwrap_err().to_string(),
            "--set nope: no such config section"
        );
        // Single keys, as the Makefile stamps the ones a stage reads from other sections.
        assert_eq!(
            config
                .sections_json("trainer.epochs,evaluator.max_len,evaluator.suppress_unk")
                .unwrap(),
            r#"{"evaluator":{"max_len":20,"suppress_unk":true},"trainer":{"epochs":3}}"#
        );
        assert_eq!(
            config
                .sections_json("evaluator.nope")
                .unwrap_err()
                .to_string(),
            "--set evaluator.nope: no such config key"
        );
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        assert_eq!(
            load_error(Path::new("/nonexistent/p.toml"), &[]),
            "/nonexistent/p.toml: No such file or directory (os error 2)"
        );
    }
}
