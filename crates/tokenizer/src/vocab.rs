//! The vocabulary: words of the train split seen at least `min_count` times, most frequent
//! first, after four special tokens. Built from train only, so val/test words never leak in.

use std::collections::HashMap;

use contracts::tables::VocabRow;
use contracts::vocab::{END, SPECIAL_TOKENS, START, UNK};

/// Word to id, with each id's token and train count.
#[derive(Debug, Clone)]
pub struct Vocab {
    pub rows: Vec<VocabRow>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    /// Counts the words of `train_captions` (clean, space-separated) and keeps those seen at
    /// least `min_count` times; ties are broken alphabetically so ids are deterministic.
    pub fn build<'a>(train_captions: impl Iterator<Item = &'a str>, min_count: u64) -> Self {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        let mut captions = 0u64;
        for caption in train_captions {
            captions += 1;
            for word in caption.split_whitespace() {
                *counts.entry(word).or_default() += 1;
            }
        }
        let mut kept: Vec<(&str, u64)> = counts
            .iter()
            .filter(|(_, c)| **c >= min_count)
            .map(|(w, c)| (*w, *c))
            .collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let unknown: u64 = counts.values().filter(|c| **c < min_count).sum();
        let special_counts = [0, captions, captions, unknown];
        let rows: Vec<VocabRow> = SPECIAL_TOKENS
            .iter()
            .zip(special_counts)
            .map(|(t, c)| (*t, c))
            .chain(kept)
            .enumerate()
            .map(|(id, (token, count))| VocabRow {
                token_id: id as u32,
                token: token.to_string(),
                count,
            })
            .collect();
        let ids = rows.iter().map(|r| (r.token.clone(), r.token_id)).collect();
        Self { rows, ids }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// `<start> w1 .. wn <end>` for the first `max_len` words; also says whether it truncated.
    pub fn encode(&self, caption: &str, max_len: usize) -> (Vec<u32>, bool) {
        let words: Vec<&str> = caption.split_whitespace().collect();
        let mut ids = Vec::with_capacity(words.len().min(max_len) + 2);
        ids.push(START);
        ids.extend(
            words
                .iter()
                .take(max_len)
                .map(|w| self.ids.get(*w).copied().unwrap_or(UNK)),
        );
        ids.push(END);
        (ids, words.len() > max_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_seen_exactly_min_count_times_is_kept() {
        let captions = ["a dog runs", "a dog sits", "a cat"];
        let vocab = Vocab::build(captions.into_iter(), 2);
        let tokens: Vec<&str> = vocab.rows.iter().map(|r| r.token.as_str()).collect();
        assert_eq!(tokens, ["<pad>", "<start>", "<end>", "<unk>", "a", "dog"]);
        assert_eq!(vocab.rows[4].count, 3);
        assert_eq!(vocab.rows[5].count, 2);
        assert_eq!(vocab.rows[3].count, 3, "runs, sits, cat became <unk>");
        assert_eq!(vocab.rows[1].count, 3);
    }

    #[test]
    fn ties_are_alphabetical() {
        let vocab = Vocab::build(["b a", "a b"].into_iter(), 1);
        assert_eq!(vocab.rows[4].token, "a");
        assert_eq!(vocab.rows[5].token, "b");
    }

    #[test]
    fn encode_wraps_maps_unknowns_and_truncates() {
        let vocab = Vocab::build(["a dog", "a dog"].into_iter(), 1);
        assert_eq!(
            vocab.encode("a cat dog", 10),
            (vec![START, 4, UNK, 5, END], false)
        );
        assert_eq!(
            vocab.encode("a dog a dog", 2),
            (vec![START, 4, 5, END], true)
        );
    }
}
