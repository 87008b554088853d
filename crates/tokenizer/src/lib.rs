//! The tokenizer stage: `captions.parquet` -> `vocab.parquet` + `tokens.parquet`.

pub mod vocab;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{Result, bail};
use contracts::config::TokenizerConfig;
use contracts::tables::{
    CAPTIONS_FILE, CaptionsTable, TOKENS_FILE, TokenRow, TokensTable, VOCAB_FILE, VocabTable, read,
    write,
};
use contracts::{Provenance, Split, Stage};

use contracts::vocab::UNK;

use crate::vocab::Vocab;

/// What the tokenizer produced.
#[derive(Debug)]
pub struct Summary {
    pub vocab_size: usize,
    pub min_count: u64,
    pub captions: BTreeMap<Split, usize>,
    pub truncated: usize,
    pub max_len: usize,
    /// Share of train words that map to a vocabulary entry (not `<unk>`).
    pub train_coverage: f64,
    pub unk_per_split: BTreeMap<Split, usize>,
}

/// Reads `work_dir/captions.parquet`, writes the vocabulary and token ids next to it.
pub fn run(work_dir: &Path, config: &TokenizerConfig) -> Result<Summary> {
    let _lock = contracts::lock::lock_work_dir(work_dir, "tokenizer")?;
    let captions_path = work_dir.join(CAPTIONS_FILE);
    let (captions, _) = read::<CaptionsTable>(&captions_path)?;
    let train = captions.iter().filter(|c| c.split == Split::Train);
    if train.clone().next().is_none() {
        bail!(
            "{}: the train split is empty, so there is no vocabulary to build",
            captions_path.display()
        );
    }
    let vocab = Vocab::build(train.map(|c| c.clean.as_str()), config.min_count);
    let mut summary = Summary {
        vocab_size: vocab.len(),
        min_count: config.min_count,
        captions: BTreeMap::new(),
        truncated: 0,
        max_len: config.max_len,
        train_coverage: 0.0,
        unk_per_split: BTreeMap::new(),
    };
    let mut train_words = (0usize, 0usize);
    let tokens: Vec<TokenRow> = captions
        .into_iter()
        .map(|c| {
            let (token_ids, truncated) = vocab.encode(&c.clean, config.max_len);
            let words = token_ids.len() - 2;
            let unknown = token_ids.iter().filter(|t| **t == UNK).count();
            summary.truncated += usize::from(truncated);
            *summary.captions.entry(c.split).or_default() += 1;
            *summary.unk_per_split.entry(c.split).or_default() += unknown;
            if c.split == Split::Train {
                train_words.0 += words - unknown;
                train_words.1 += words;
            }
            TokenRow {
                image: c.image,
                caption_idx: c.caption_idx,
                split: c.split,
                token_ids,
            }
        })
        .collect();
    summary.train_coverage = train_words.0 as f64 / train_words.1.max(1) as f64;

    let provenance =
        Provenance::new(Stage::Tokenizer, config).with_input(CAPTIONS_FILE, &captions_path)?;
    write::<VocabTable>(&work_dir.join(VOCAB_FILE), &vocab.rows, &provenance)?;
    write::<TokensTable>(&work_dir.join(TOKENS_FILE), &tokens, &provenance)?;
    Ok(summary)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "vocabulary  {} tokens (4 special + words seen >= {} times in train)",
            self.vocab_size, self.min_count
        )?;
        writeln!(
            f,
            "coverage    {:.2}% of train words are in the vocabulary",
            100.0 * self.train_coverage
        )?;
        for split in Split::ALL {
            let n = self.captions.get(&split).unwrap_or(&0);
            let unk = self.unk_per_split.get(&split).unwrap_or(&0);
            writeln!(f, "{:<11} {n} captions, {unk} <unk> tokens", split.as_str())?;
        }
        writeln!(
            f,
            "truncated   {} captions longer than {} words",
            self.truncated, self.max_len
        )
    }
}
