//! How a key of `pipeline.toml` is defined: [`section!`] declares a section's keys once, each
//! with its type, default, allowed values and doc, and from that one declaration come the
//! section's struct, its `Default` and its [`Setting`]s.
//!
//! The loader refuses a key that no section declares, and a value outside its range, before
//! any stage does any work, naming the key, the value, the range and where the value came from
//! (the file, a `--set`, or a flag).

use std::fmt;

/// What a key accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Allowed {
    /// An integer in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// A number in the interval; `open_min`/`open_max` exclude that end.
    Float {
        min: f64,
        max: f64,
        open_min: bool,
        open_max: bool,
    },
    /// One of these strings.
    Choice(&'static [&'static str]),
    Bool,
    /// Any string (paths and file names).
    Text,
    /// A list of devices, each `cpu`, `cuda` or `cuda:N` ([`super::DeviceSlot`]).
    Devices,
}

impl Allowed {
    pub(super) const fn int(min: i64, max: i64) -> Self {
        Self::Int { min, max }
    }

    /// `[min, max]`
    pub(super) const fn closed(min: f64, max: f64) -> Self {
        Self::Float {
            min,
            max,
            open_min: false,
            open_max: false,
        }
    }

    /// `(min, max]`
    pub(super) const fn above(min: f64, max: f64) -> Self {
        Self::Float {
            min,
            max,
            open_min: true,
            open_max: false,
        }
    }

    /// `[min, max)`
    pub(super) const fn below(min: f64, max: f64) -> Self {
        Self::Float {
            min,
            max,
            open_min: false,
            open_max: true,
        }
    }

    /// Whether `value` is allowed.
    pub fn admits(&self, value: &toml::Value) -> bool {
        match (self, value) {
            (Self::Int { min, max }, toml::Value::Integer(v)) => (*min..=*max).contains(v),
            (Self::Float { .. }, toml::Value::Integer(v)) => self.admits_float(*v as f64),
            (Self::Float { .. }, toml::Value::Float(v)) => self.admits_float(*v),
            (Self::Choice(choices), toml::Value::String(v)) => choices.contains(&v.as_str()),
            (Self::Bool, toml::Value::Boolean(_)) | (Self::Text, toml::Value::String(_)) => true,
            (Self::Devices, toml::Value::Array(items)) => items.iter().all(|item| {
                item.as_str()
                    .is_some_and(|text| text.parse::<super::DeviceSlot>().is_ok())
            }),
            _ => false,
        }
    }

    fn admits_float(&self, v: f64) -> bool {
        let Self::Float {
            min,
            max,
            open_min,
            open_max,
        } = *self
        else {
            return false;
        };
        let above = if open_min { v > min } else { v >= min };
        let below = if open_max { v < max } else { v <= max };
        above && below
    }
}

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int { min, max } if *max == i64::MAX => write!(f, "an integer >= {min}"),
            Self::Int { min, max } => write!(f, "an integer from {min} to {max}"),
            Self::Float {
                min,
                max,
                open_min,
                open_max,
            } => {
                let open = if *open_min { "(" } else { "[" };
                let close = if *open_max { ")" } else { "]" };
                write!(f, "a number in {open}{min}, {max}{close}")
            }
            Self::Choice(choices) => {
                let quoted: Vec<String> = choices.iter().map(|c| format!("\"{c}\"")).collect();
                write!(f, "one of {}", quoted.join(", "))
            }
            Self::Bool => f.write_str("true or false"),
            Self::Text => f.write_str("a string"),
            Self::Devices => write!(
                f,
                "a list of {}, such as [\"cuda:0\", \"cuda:1\"]",
                super::DeviceSlot::EXPECTED
            ),
        }
    }
}

/// One key of `pipeline.toml`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setting {
    /// `section.key`, or `section.table.key` in a model's table.
    pub key: &'static str,
    pub allowed: Allowed,
    /// The key's doc comment, line by line.
    pub doc: &'static [&'static str],
}

impl Setting {
    /// The section (or table) the key is in.
    pub fn section(&self) -> &'static str {
        section_of(self.key)
    }

    /// The key's name within its section.
    pub fn name(&self) -> &'static str {
        self.key.rsplit_once('.').map_or(self.key, |(_, name)| name)
    }

    /// The doc comment as one line.
    pub fn doc(&self) -> String {
        let lines: Vec<&str> = self.doc.iter().map(|line| line.trim()).collect();
        lines.join(" ")
    }
}

/// The section (or table) a dotted key is in: `model.attention` for `model.attention.dim`.
pub fn section_of(key: &str) -> &str {
    key.rsplit_once('.').map_or("", |(section, _)| section)
}

/// Declares a section of `pipeline.toml`: the struct, its `Default` and its `settings()`, from
/// one line per key (`name: Type = default, allowed;` under its doc comment), so a key's
/// type, default, range and doc cannot drift apart. `table name: Type;` after the keys nests
/// another section declared the same way (a model's own table, `[model.attention]`).
macro_rules! section {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident = $path:literal {
            $(
                $(#[doc = $key_doc:literal])+
                $key:ident: $type:ty = $default:expr, $allowed:expr;
            )*
            $(table $table:ident: $table_type:ident;)*
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $( $(#[doc = $key_doc])+ pub $key: $type, )*
            $( #[doc = concat!("`[", $path, ".", stringify!($table), "]`")] pub $table: $table_type, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    $($key: $default,)*
                    $($table: $table_type::default(),)*
                }
            }
        }

        impl $name {
            /// Every key of this section and of its tables, in declaration order.
            pub fn settings() -> Vec<$crate::config::settings::Setting> {
                #[allow(unused_mut)]
                let mut settings = vec![$(
                    $crate::config::settings::Setting {
                        key: concat!($path, ".", stringify!($key)),
                        allowed: $allowed,
                        doc: &[$($key_doc),+],
                    },
                )*];
                $(settings.extend($table_type::settings());)*
                settings
            }
        }
    };
}
pub(super) use section;

/// Every key of the configuration, in file order: the loader's list.
#[derive(Debug)]
pub struct Settings(Vec<Setting>);

impl Settings {
    pub fn new(settings: Vec<Setting>) -> Self {
        Self(settings)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Setting> {
        self.0.iter()
    }

    /// The setting of `key` (`section.key`), if there is one.
    pub fn find(&self, key: &str) -> Option<&Setting> {
        self.0.iter().find(|s| s.key == key)
    }

    /// The keys of `section`, for the message about a key it does not have.
    pub fn keys_of(&self, section: &str) -> Vec<&'static str> {
        self.0
            .iter()
            .filter(|s| s.section() == section)
            .map(Setting::name)
            .collect()
    }

    /// The sections and tables, in file order (`model`, `model.merge`, ...).
    pub fn sections(&self) -> Vec<&'static str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.0 {
            if !out.contains(&s.section()) {
                out.push(s.section());
            }
        }
        out
    }
}
