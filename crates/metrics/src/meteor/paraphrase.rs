//! The paraphrase table (`paraphrase-en.gz`) and the jar's paraphrase matching.
//!
//! The file is a sequence of three-line records: a probability (ignored by the jar), a phrase,
//! and one of its paraphrases, words separated by spaces. The jar loads it into a trie of
//! phrases (`ParaphraseTransducer`); a walk from word `j` of a sentence yields every phrase
//! starting there, shortest first, and for each its paraphrases in file order. Here a left
//! phrase is packed into a `u128`, 16 bits per word (the word's id + 1, first word lowest), and
//! looked up by its length-1, length-2, ... prefixes of the sentence from `j`: the same phrases
//! in the same order as the trie walk, since a phrase is only found through its prefixes.
//!
//! Loading is the slow part of METEOR (5.3 million records, 272 MB inflated), so it inflates on
//! one thread and parses blocks of lines on another, and it relies on what the file is like
//! without requiring it: records sorted by left phrase, so consecutive records share their left
//! line (another order costs one sort), and single-spaced paraphrases, kept as text.
//!
//! The table of pycocoevalcap 1.2 has 43,139 distinct words and phrases of at most 7 words; a
//! table whose left phrases have more than 65,535 distinct words or more than 8 words, or with
//! a paraphrase of more than 255 words, is refused.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use super::MeteorError;

/// Most words in one phrase (slots of a packed `u128`).
const MAX_WORDS: usize = 8;

/// A left phrase, packed: word `k`'s id + 1 in bits `16k..16k+16`, zero after the last word.
type Packed = u128;

/// A multiply-rotate hash (the rustc/Fx scheme) with murmur3's finalizer, for the table's
/// millions of lookups; the input is the verified data file and the caller's captions, so hash
/// flooding is not a concern. (Without the finalizer the low bits, which pick the bucket, depend
/// only on a word's first bytes and length, and loading took four times as long.)
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.write_u64(word);
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.write_u64(u64::from_le_bytes(tail) ^ ((rest.len() as u64) << 56));
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u128(&mut self, word: u128) {
        self.write_u64(word as u64);
        self.write_u64((word >> 64) as u64);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// The loaded table.
pub(crate) struct Paraphrases {
    /// Word -> id, for the words of left phrases (the only ones looked up by id).
    vocab: FastMap<Box<[u8]>, u16>,
    /// Left phrase (packed) -> its group: the records with that left phrase.
    groups: FastMap<Packed, u32>,
    /// Group `g`'s paraphrases are numbers `group_starts[g]..group_starts[g + 1]`, in file order.
    group_starts: Vec<u32>,
    /// Paraphrase `k` is `text[text_starts[k]..text_starts[k + 1]]`, its words joined by single
    /// spaces, and has `word_counts[k]` words. Kept as text: the right-hand sides are 2.4
    /// million distinct phrases, and comparing their text with a sentence's gives what
    /// comparing word ids does, without a vocabulary lookup per word at load time.
    text: Vec<u8>,
    text_starts: Vec<u32>,
    word_counts: Vec<u8>,
    /// Longest left phrase.
    max_words: usize,
}

/// One phrase found from a start word: its length there and the number of one of its
/// paraphrases.
pub(crate) struct Found {
    pub(crate) len: usize,
    pub(crate) paraphrase: u32,
}

/// Inflated bytes go from the inflating thread to the parsing one in blocks of whole lines of
/// about this size.
const BLOCK: usize = 4 << 20;

/// Inflates `gz` on its own thread and hands the parser blocks of whole lines (the last line
/// of the file may lack its newline).
fn inflate_in_blocks(gz: &[u8], blocks: std::sync::mpsc::SyncSender<std::io::Result<Vec<u8>>>) {
    let mut decoder = MultiGzDecoder::new(gz);
    let mut carry = Vec::new();
    loop {
        let mut block = std::mem::take(&mut carry);
        let start = block.len();
        block.resize(start + BLOCK, 0);
        let mut filled = start;
        while filled < block.len() {
            match decoder.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    let _ = blocks.send(Err(e));
                    return;
                }
            }
        }
        block.truncate(filled);
        let at_end = filled < start + BLOCK;
        if !at_end {
            // Keep the partial last line for the next block.
            if let Some(newline) = memchr::memrchr(b'\n', &block) {
                carry = block.split_off(newline + 1);
            } else {
                carry = block;
                continue;
            }
        }
        if !block.is_empty() && blocks.send(Ok(block)).is_err() {
            return;
        }
        if at_end {
            return;
        }
    }
}

impl Paraphrases {
    /// Parses the gzip-compressed table (already read and checked by size and hash),
    /// inflating it on a second thread.
    pub(crate) fn parse(path: &Path, gz: &[u8]) -> Result<Self, MeteorError> {
        std::thread::scope(|scope| {
            let (sender, blocks) = std::sync::mpsc::sync_channel(2);
            scope.spawn(move || inflate_in_blocks(gz, sender));
            let mut parser = Parser::new(path);
            for block in blocks {
                let block = block.map_err(|source| MeteorError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                let mut start = 0;
                for end in memchr::memchr_iter(b'\n', &block) {
                    parser.line(&block[start..end])?;
                    start = end + 1;
                }
                if start < block.len() {
                    parser.line(&block[start..])?;
                }
            }
            parser.finish()
        })
    }
    /// Reorders the paraphrases so that each group's are contiguous, keeping file order
    /// within a group, and recomputes `group_starts`.
    fn regroup(&mut self, record_groups: &[u32]) {
        let mut order: Vec<usize> = (0..record_groups.len()).collect();
        order.sort_by_key(|&r| record_groups[r]);
        let mut group_starts = vec![0u32; self.group_starts.len()];
        for (k, &r) in order.iter().enumerate().rev() {
            group_starts[record_groups[r] as usize] = k as u32;
        }
        let (mut text, mut starts) = (Vec::with_capacity(self.text.len()), vec![0]);
        for &r in &order {
            text.extend_from_slice(self.paraphrase(r as u32));
            starts.push(text.len() as u32);
        }
        self.word_counts = order.iter().map(|&r| self.word_counts[r]).collect();
        self.text = text;
        self.text_starts = starts;
        self.group_starts = group_starts;
    }

    /// Appends the ids of one phrase line's words to `out`, adding new words to the
    /// vocabulary.
    fn words_of(
        &mut self,
        path: &Path,
        line_no: usize,
        line: &[u8],
        out: &mut Vec<u16>,
    ) -> Result<(), MeteorError> {
        let before = out.len();
        for word in line
            .split(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c'))
            .filter(|w| !w.is_empty())
        {
            if out.len() - before == MAX_WORDS {
                return Err(parse_error(
                    path,
                    line_no,
                    &format!("a phrase of more than {MAX_WORDS} words"),
                ));
            }
            let id = match self.vocab.get(word) {
                Some(&id) => id,
                None => {
                    if std::str::from_utf8(word).is_err() {
                        return Err(parse_error(path, line_no, "a word that is not UTF-8"));
                    }
                    let id = u16::try_from(self.vocab.len())
                        .ok()
                        .filter(|&id| id < u16::MAX)
                        .ok_or_else(|| {
                            parse_error(path, line_no, "more than 65,535 distinct words")
                        })?;
                    self.vocab.insert(word.into(), id);
                    id
                }
            };
            out.push(id);
        }
        if out.len() == before {
            return Err(parse_error(path, line_no, "an empty phrase"));
        }
        Ok(())
    }

    /// The table's id of each word (`None` for words it does not have), as the jar's
    /// `translate` gives -1 for them.
    pub(crate) fn translate(&self, words: &[String]) -> Vec<Option<u16>> {
        words
            .iter()
            .map(|w| self.vocab.get(w.as_bytes()).copied())
            .collect()
    }

    /// `ParaphraseTransducer.getReferencePaths(words, start)`: every phrase of the table that
    /// starts at `words[start]`, shortest first, each with its paraphrases in file order.
    pub(crate) fn paths(&self, words: &[Option<u16>], start: usize, out: &mut Vec<Found>) {
        out.clear();
        let mut key: Packed = 0;
        for (k, word) in words[start..].iter().take(self.max_words).enumerate() {
            let Some(id) = word else {
                break;
            };
            key |= Packed::from(id + 1) << (16 * k);
            let Some(&group) = self.groups.get(&key) else {
                continue;
            };
            let g = group as usize;
            out.extend(
                (self.group_starts[g]..self.group_starts[g + 1]).map(|paraphrase| Found {
                    len: k + 1,
                    paraphrase,
                }),
            );
        }
    }

    /// The text of paraphrase number `k` (words joined by single spaces).
    pub(crate) fn paraphrase(&self, k: u32) -> &[u8] {
        let k = k as usize;
        &self.text[self.text_starts[k] as usize..self.text_starts[k + 1] as usize]
    }

    /// The number of words of paraphrase number `k`.
    pub(crate) fn paraphrase_words(&self, k: u32) -> usize {
        usize::from(self.word_counts[k as usize])
    }
}

/// The parser's state between lines: records are three lines (probability, phrase,
/// paraphrase).
struct Parser<'a> {
    path: &'a Path,
    table: Paraphrases,
    line_no: usize,
    /// The group of each record, and whether each group's records are contiguous (the
    /// table is sorted by left phrase; another order costs a sort at the end).
    record_groups: Vec<u32>,
    contiguous: bool,
    /// The last left phrase line and its group: consecutive records mostly share it.
    left_line: Vec<u8>,
    group: u32,
}

impl<'a> Parser<'a> {
    fn new(path: &'a Path) -> Self {
        Parser {
            path,
            table: Paraphrases {
                vocab: FastMap::default(),
                groups: FastMap::default(),
                group_starts: Vec::new(),
                text: Vec::new(),
                text_starts: vec![0],
                word_counts: Vec::new(),
                max_words: 0,
            },
            line_no: 0,
            record_groups: Vec::new(),
            contiguous: true,
            left_line: Vec::new(),
            group: 0,
        }
    }

    fn line(&mut self, line: &[u8]) -> Result<(), MeteorError> {
        self.line_no += 1;
        let (path, line_no, table) = (self.path, self.line_no, &mut self.table);
        match line_no % 3 {
            // The probability, which the jar ignores too.
            1 => {}
            2 => {
                if !self.record_groups.is_empty() && line == self.left_line.as_slice() {
                    return Ok(());
                }
                let mut left = Vec::with_capacity(MAX_WORDS);
                table.words_of(path, line_no, line, &mut left)?;
                table.max_words = table.max_words.max(left.len());
                let next_group = table.group_starts.len() as u32;
                self.group = *table.groups.entry(pack(&left)).or_insert(next_group);
                if self.group == next_group {
                    table.group_starts.push(self.record_groups.len() as u32);
                } else {
                    self.contiguous = false;
                }
                self.left_line.clear();
                self.left_line.extend_from_slice(line);
            }
            _ => {
                let words = push_phrase_text(&mut table.text, line)
                    .ok_or_else(|| parse_error(path, line_no, "an empty phrase"))?;
                table.word_counts.push(u8::try_from(words).map_err(|_| {
                    parse_error(path, line_no, "a paraphrase of more than 255 words")
                })?);
                let end = u32::try_from(table.text.len())
                    .map_err(|_| parse_error(path, line_no, "more than 4 GiB of paraphrases"))?;
                table.text_starts.push(end);
                self.record_groups.push(self.group);
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Paraphrases, MeteorError> {
        if !self.line_no.is_multiple_of(3) {
            return Err(parse_error(
                self.path,
                self.line_no,
                "the file ends inside a record",
            ));
        }
        if self.record_groups.is_empty() {
            return Err(parse_error(self.path, 0, "no paraphrases"));
        }
        if !self.contiguous {
            self.table.regroup(&self.record_groups);
        }
        self.table
            .group_starts
            .push(self.record_groups.len() as u32);
        Ok(self.table)
    }
}

/// Appends a phrase line's words joined by single spaces (what `StringTokenizer` splits it
/// into) to `text`; returns the number of words, `None` for a line without any.
fn push_phrase_text(text: &mut Vec<u8>, line: &[u8]) -> Option<usize> {
    let is_delimiter = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c');
    // The common case, already single-spaced, is copied as it is (checked with passes the
    // compiler vectorizes).
    let spaces = line.iter().filter(|&&b| b == b' ').count();
    let other_delimiters = line.iter().fold(false, |any, &b| {
        any | matches!(b, b'\t' | b'\n' | b'\r' | b'\x0c')
    });
    let canonical = !other_delimiters
        && line.first().is_some_and(|&b| b != b' ')
        && line.last().is_some_and(|&b| b != b' ')
        && memchr::memmem::find(line, b"  ").is_none();
    if canonical {
        text.extend_from_slice(line);
        return Some(spaces + 1);
    }
    let mut words = 0;
    for word in line.split(is_delimiter).filter(|w| !w.is_empty()) {
        if words > 0 {
            text.push(b' ');
        }
        text.extend_from_slice(word);
        words += 1;
    }
    (words > 0).then_some(words)
}

/// Packs a phrase of at most `MAX_WORDS` word ids.
fn pack(ids: &[u16]) -> Packed {
    ids.iter()
        .enumerate()
        .fold(0, |key, (k, &id)| key | Packed::from(id + 1) << (16 * k))
}

fn parse_error(path: &Path, line: usize, message: &str) -> MeteorError {
    MeteorError::Parse {
        path: PathBuf::from(path),
        line,
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(text: &str) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap()
    }

    fn table(text: &str) -> Result<Paraphrases, MeteorError> {
        Paraphrases::parse(Path::new("p.gz"), &gz(text))
    }

    fn found(t: &Paraphrases, sentence: &str, start: usize) -> Vec<(usize, String)> {
        let words: Vec<String> = sentence.split(' ').map(str::to_owned).collect();
        let ids = t.translate(&words);
        let mut out = Vec::new();
        t.paths(&ids, start, &mut out);
        out.iter()
            .map(|p| {
                let text = std::str::from_utf8(t.paraphrase(p.paraphrase)).unwrap();
                assert_eq!(t.paraphrase_words(p.paraphrase), text.split(' ').count());
                (p.len, text.to_owned())
            })
            .collect()
    }

    #[test]
    fn paths_come_shortest_first_then_in_file_order() {
        let t = table(
            "0.1\na dog\na puppy\n0.2\na\none\n0.3\na dog\nthe hound\n0.4\ndog runs\ndog sprints\n",
        )
        .unwrap();
        assert_eq!(
            found(&t, "a dog runs", 0),
            [
                (1, "one".to_owned()),
                (2, "a puppy".to_owned()),
                (2, "the hound".to_owned())
            ]
        );
        assert_eq!(found(&t, "a dog runs", 1), [(2, "dog sprints".to_owned())]);
        assert_eq!(found(&t, "a dog runs", 2), []);
        // A word the table lacks ends the walk.
        assert_eq!(found(&t, "zebra a dog", 0), []);
    }

    #[test]
    fn paraphrases_are_kept_single_spaced() {
        let mut text = Vec::new();
        assert_eq!(push_phrase_text(&mut text, b"a puppy\n"), Some(2));
        assert_eq!(
            push_phrase_text(&mut text, b" the\t big  hound \n"),
            Some(3)
        );
        assert_eq!(push_phrase_text(&mut text, b"x"), Some(1));
        assert_eq!(push_phrase_text(&mut text, b" \n"), None);
        assert_eq!(text, b"a puppythe big houndx");
    }

    #[test]
    fn a_table_sorted_by_phrase_reads_the_same() {
        let t = table(
            "0.2\na\none\n0.1\na dog\na puppy\n0.3\na dog\nthe hound\n0.4\ndog runs\ndog sprints\n",
        )
        .unwrap();
        assert_eq!(
            found(&t, "a dog runs", 0),
            [
                (1, "one".to_owned()),
                (2, "a puppy".to_owned()),
                (2, "the hound".to_owned())
            ]
        );
        assert_eq!(found(&t, "a dog runs", 1), [(2, "dog sprints".to_owned())]);
    }

    #[test]
    fn a_truncated_table_is_an_error_naming_the_line() {
        let err = table("0.1\na dog\na puppy\n0.2\nthe\n").err().unwrap();
        assert_eq!(err.to_string(), "p.gz:5: the file ends inside a record");
        let err = table("0.1\na b c d e f g h i\nx\n").err().unwrap();
        assert_eq!(err.to_string(), "p.gz:2: a phrase of more than 8 words");
        let err = table("0.1\n \nx\n").err().unwrap();
        assert_eq!(err.to_string(), "p.gz:2: an empty phrase");
        let err = table("0.1\nx\n \t\n").err().unwrap();
        assert_eq!(err.to_string(), "p.gz:3: an empty phrase");
    }

    #[test]
    fn corrupt_gzip_is_an_io_error_naming_the_file() {
        let mut bytes = gz("0.1\na dog\na puppy\n");
        let n = bytes.len();
        bytes[n - 6] ^= 0xFF; // inside the CRC-32 trailer
        let err = Paraphrases::parse(Path::new("p.gz"), &bytes).err().unwrap();
        assert!(matches!(err, MeteorError::Io { ref path, .. } if path == Path::new("p.gz")));
    }
}
