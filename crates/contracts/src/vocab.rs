//! The vocabulary as every stage sees it: token ids `0..n`, the four special tokens first,
//! and the one policy that turns a generated caption's ids back into text.

use std::path::Path;

use crate::error::ContractError;
use crate::stage::Stage;
use crate::tables::{VocabRow, VocabTable, read};

/// Padding after `<end>`; never a training target.
pub const PAD: u32 = 0;
/// First input token of every caption.
pub const START: u32 = 1;
/// Last target of every caption; decoding stops when it is produced.
pub const END: u32 = 2;
/// A word outside the vocabulary.
pub const UNK: u32 = 3;
/// Number of special tokens; ids from here on are words.
pub const SPECIALS: u32 = 4;
/// The special tokens, by id.
pub const SPECIAL_TOKENS: [&str; 4] = ["<pad>", "<start>", "<end>", "<unk>"];

/// Token of each id.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    tokens: Vec<String>,
}

impl Vocabulary {
    /// Checks that the ids are `0..n` without gaps, the specials first, and at least one word.
    pub fn from_rows(path: &Path, mut rows: Vec<VocabRow>) -> Result<Self, ContractError> {
        let bad = |message: String| ContractError::Provenance {
            path: path.to_path_buf(),
            message,
            stage: Stage::Tokenizer,
        };
        rows.sort_by_key(|r| r.token_id);
        for (expected, row) in rows.iter().enumerate() {
            if row.token_id as usize != expected {
                return Err(bad(format!(
                    "token ids must be 0..{} without gaps, found id {} at position {expected}",
                    rows.len(),
                    row.token_id
                )));
            }
        }
        for (id, special) in SPECIAL_TOKENS.iter().enumerate() {
            let found = rows.get(id).map(|r| r.token.as_str());
            if found != Some(*special) {
                return Err(bad(format!("id {id} must be {special}, found {found:?}")));
            }
        }
        if rows.len() <= SPECIALS as usize {
            return Err(bad("the vocabulary has no words".into()));
        }
        Ok(Self {
            tokens: rows.into_iter().map(|r| r.token).collect(),
        })
    }

    /// Reads and checks `vocab.parquet`.
    pub fn read(path: &Path) -> Result<Self, ContractError> {
        let (rows, _) = read::<VocabTable>(path)?;
        Self::from_rows(path, rows)
    }

    /// Special tokens and `words`, in that order of ids (tests, benchmarks).
    pub fn with_words<S: Into<String>>(words: impl IntoIterator<Item = S>) -> Self {
        let tokens = SPECIAL_TOKENS
            .iter()
            .map(|t| t.to_string())
            .chain(words.into_iter().map(Into::into))
            .collect();
        Self { tokens }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// A generated caption's words: `<unk>` stays as it is (the decoders avoid it when told
    /// to); `<pad>`, `<start>`, `<end>` or an id outside the vocabulary is a model that does
    /// not fit this vocabulary, and an error.
    pub fn words<'a>(&'a self, ids: &[u32]) -> Result<Vec<&'a str>, UnknownToken> {
        ids.iter()
            .map(|&id| match self.token(id) {
                Some(token) if id >= SPECIALS || id == UNK => Ok(token),
                _ => Err(UnknownToken {
                    id,
                    vocab_size: self.len(),
                }),
            })
            .collect()
    }

    /// [`Self::words`] joined by spaces.
    pub fn caption(&self, ids: &[u32]) -> Result<String, UnknownToken> {
        Ok(self.words(ids)?.join(" "))
    }
}

/// A generated id that is not a word of the vocabulary.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "the model produced token id {id}, which is not a word of the vocabulary of {vocab_size} \
     tokens; retrain with `make model`"
)]
pub struct UnknownToken {
    pub id: u32,
    pub vocab_size: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(tokens: &[&str]) -> Vec<VocabRow> {
        tokens
            .iter()
            .enumerate()
            .map(|(i, t)| VocabRow {
                token_id: i as u32,
                token: t.to_string(),
                count: 1,
            })
            .collect()
    }

    #[test]
    fn the_specials_come_first_and_ids_have_no_gaps() {
        let path = Path::new("vocab.parquet");
        let vocab = Vocabulary::from_rows(path, rows(&["<pad>", "<start>", "<end>", "<unk>", "a"]));
        assert_eq!(vocab.unwrap(), Vocabulary::with_words(["a"]));
        assert_eq!(
            Vocabulary::from_rows(path, rows(&["<start>", "<pad>", "<end>", "<unk>", "a"]))
                .unwrap_err()
                .to_string(),
            "vocab.parquet: id 0 must be <pad>, found Some(\"<start>\"); rerun the tokenizer \
             stage (`make tokens`)"
        );
        let mut gap = rows(&["<pad>", "<start>", "<end>", "<unk>", "a"]);
        gap[4].token_id = 7;
        assert_eq!(
            Vocabulary::from_rows(path, gap).unwrap_err().to_string(),
            "vocab.parquet: token ids must be 0..5 without gaps, found id 7 at position 4; \
             rerun the tokenizer stage (`make tokens`)"
        );
    }

    #[test]
    fn captions_keep_unk_and_refuse_other_specials_and_unknown_ids() {
        let vocab = Vocabulary::with_words(["a", "dog"]);
        assert_eq!(vocab.caption(&[4, UNK, 5]).unwrap(), "a <unk> dog");
        assert_eq!(vocab.caption(&[]).unwrap(), "");
        for id in [PAD, START, END, 6] {
            assert_eq!(
                vocab.caption(&[4, id]).unwrap_err().to_string(),
                format!(
                    "the model produced token id {id}, which is not a word of the vocabulary \
                     of 6 tokens; retrain with `make model`"
                )
            );
        }
    }
}
