//! Keys that have moved, so that an old `pipeline.toml` or `--set` gets one line naming the
//! new place instead of "unknown key".

/// `(old key, new key)`: the model's own keys moved into the model's table.
const MOVED: &[(&str, &str)] = &[
    ("model.merge", "model.merge.join_image"),
    ("model.attention_dim", "model.attention.dim"),
    ("trainer.attention_reg", "model.attention.doubly_stochastic"),
];

/// What to say about `key` when it has moved: `has moved: set dim in [model.attention]`.
pub(super) fn find(key: &str) -> Option<String> {
    let (_, new) = MOVED.iter().find(|(old, _)| *old == key)?;
    let (table, name) = new.rsplit_once('.')?;
    Some(format!(
        "has moved: set {name} in [{table}] ({new}) instead"
    ))
}
