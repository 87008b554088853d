//! Keys set from the command line ([`Override`]: `--set section.key=value` or a stage's own
//! flag) and where each key's value came from ([`Source`]), for messages.

use std::fmt;
use std::path::PathBuf;

use crate::error::ContractError;

/// One key set from the command line: by `--set section.key=value` or by a stage's own flag
/// (`trainer --epochs 5` sets `trainer.epochs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// `section.key`
    pub key: String,
    /// As typed on the command line.
    pub text: String,
    pub value: toml::Value,
    /// The flag that set it (`--epochs`), or `None` for `--set`.
    pub flag: Option<&'static str>,
}

impl Override {
    /// Parses `section.key=value` as given to `--set` (the value in TOML syntax; a bare word is
    /// a string).
    pub fn set(item: &str) -> Result<Self, ContractError> {
        let bad = |why: &str| ContractError::Override {
            item: item.to_string(),
            message: why.to_string(),
        };
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| bad("expected section.key=value"))?;
        let key = key.trim();
        if !key.contains('.') {
            return Err(bad("the key needs a section, e.g. trainer.epochs"));
        }
        let text = value.trim().to_string();
        Ok(Self {
            key: key.to_string(),
            value: parse_value(&text),
            text,
            flag: None,
        })
    }

    /// The key `flag` sets, when the flag was given (a number or a word).
    pub fn flag(flag: &'static str, key: &str, value: Option<impl ToString>) -> Option<Self> {
        value.map(|v| {
            let text = v.to_string();
            Self {
                key: key.to_string(),
                value: parse_value(&text),
                text,
                flag: Some(flag),
            }
        })
    }

    /// The key a flag taking a list of words sets (`--devices cuda:0,cuda:1`): an array of
    /// strings.
    pub fn list_flag(flag: &'static str, key: &str, values: Option<&Vec<String>>) -> Option<Self> {
        values.map(|values| Self {
            key: key.to_string(),
            value: toml::Value::Array(values.iter().cloned().map(toml::Value::String).collect()),
            text: values.join(","),
            flag: Some(flag),
        })
    }

    /// The key a flag taking a path or name sets: the value is a string as given.
    pub fn text_flag(flag: &'static str, key: &str, value: Option<impl ToString>) -> Option<Self> {
        value.map(|v| {
            let text = v.to_string();
            Self {
                key: key.to_string(),
                value: toml::Value::String(text.clone()),
                text,
                flag: Some(flag),
            }
        })
    }
}

/// Where a key's value came from, for messages.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Source {
    File(PathBuf),
    Command(Override),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "in {}", path.display()),
            Source::Command(o) => match o.flag {
                Some(flag) => write!(f, "from {flag} {}", o.text),
                None => write!(f, "from --set {}={}", o.key, o.text),
            },
        }
    }
}

/// Sets `item.key` in `table`, making the tables its dotted path names
/// (`model.attention.dim`).
pub(super) fn apply(table: &mut toml::Table, item: &Override) -> Result<(), ContractError> {
    let mut path: Vec<&str> = item.key.split('.').collect();
    let key = path.pop().unwrap_or_default();
    let mut table = table;
    for name in path {
        let entry = table
            .entry(name.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(inner) = entry else {
            return Err(ContractError::Override {
                item: format!("{}={}", item.key, item.text),
                message: format!("{name} is not a table"),
            });
        };
        table = inner;
    }
    table.insert(key.to_string(), item.value.clone());
    Ok(())
}

/// A TOML literal (`15`, `0.5`, `true`, `"x"`) or, failing that, a bare string.
pub(super) fn parse_value(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}
