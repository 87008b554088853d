//! The candidate matches between a hypothesis and one reference: the jar's `Stage`, filled by
//! its four matchers in module order (exact, stem, synonym, paraphrase).
//!
//! Line 1 is the hypothesis ("test"), line 2 the reference. Matches are listed by their start
//! word in line 2, and within a start word in the order the matchers add them; the beam search
//! tries them in that order, so the order is part of the result. Like the jar, the matchers do
//! not look at each other's matches: a word pair matched exactly is not offered again by the
//! stem matcher (which requires different words), but a paraphrase may cover words other
//! modules matched, and a paraphrase found from both sides is listed twice.

use super::paraphrase::{Found, Paraphrases};

/// Module numbers, as the jar numbers its stages.
pub(crate) const EXACT: usize = 0;
pub(crate) const STEM: usize = 1;
pub(crate) const SYNONYM: usize = 2;
pub(crate) const PARAPHRASE: usize = 3;
pub(crate) const MODULES: usize = 4;

/// One candidate match: `length` words of line 2 from `start` with `match_length` words of
/// line 1 from `match_start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Match {
    pub(crate) start: usize,
    pub(crate) length: usize,
    pub(crate) match_start: usize,
    pub(crate) match_length: usize,
    pub(crate) module: usize,
}

/// A normalized sentence with everything the matchers compare, computed once per sentence.
pub(crate) struct Sentence {
    pub(crate) words: Vec<String>,
    /// `String.hashCode()` of each word: the jar's exact matcher compares these.
    pub(crate) keys: Vec<i32>,
    /// `hashCode()` of each word's Snowball stem.
    pub(crate) stem_keys: Vec<i32>,
    /// Each word's WordNet synsets (its own and its base form's), sorted.
    pub(crate) synsets: Vec<Vec<u32>>,
    /// Each word's id in the paraphrase table's left phrases.
    pub(crate) phrase_ids: Vec<Option<u16>>,
    /// The words joined by single spaces, and where each word starts in it (paraphrases are
    /// compared as text).
    pub(crate) text: String,
    pub(crate) word_starts: Vec<usize>,
    /// Whether each word is on the function-word list.
    pub(crate) function: Vec<bool>,
}

/// The matches, by start word in line 2, and how many matches cover each word.
pub(crate) struct Stage {
    pub(crate) matches: Vec<Vec<Match>>,
    pub(crate) coverage1: Vec<u32>,
    pub(crate) coverage2: Vec<u32>,
}

impl Stage {
    fn add(&mut self, m: Match) {
        for c in &mut self.coverage1[m.match_start..m.match_start + m.match_length] {
            *c += 1;
        }
        for c in &mut self.coverage2[m.start..m.start + m.length] {
            *c += 1;
        }
        self.matches[m.start].push(m);
    }

    /// Runs the matchers on `test` (line 1) and `reference` (line 2). When the two have the
    /// same word keys, only the exact matcher runs ("prevents beam search errors", says the
    /// jar).
    pub(crate) fn new(test: &Sentence, reference: &Sentence, paraphrases: &Paraphrases) -> Self {
        let (n1, n2) = (test.words.len(), reference.words.len());
        let mut stage = Stage {
            matches: vec![Vec::new(); n2],
            coverage1: vec![0; n1],
            coverage2: vec![0; n2],
        };
        let one = |start, match_start, module| Match {
            start,
            length: 1,
            match_start,
            match_length: 1,
            module,
        };
        for j in 0..n2 {
            for i in 0..n1 {
                if test.keys[i] == reference.keys[j] {
                    stage.add(one(j, i, EXACT));
                }
            }
        }
        if test.keys == reference.keys {
            return stage;
        }
        for j in 0..n2 {
            for i in 0..n1 {
                if test.stem_keys[i] == reference.stem_keys[j] && test.keys[i] != reference.keys[j]
                {
                    stage.add(one(j, i, STEM));
                }
            }
        }
        for j in 0..n2 {
            for i in 0..n1 {
                if intersect(&test.synsets[i], &reference.synsets[j])
                    && test.keys[i] != reference.keys[j]
                {
                    stage.add(one(j, i, SYNONYM));
                }
            }
        }
        let mut found: Vec<Found> = Vec::new();
        // Phrases of line 2 whose paraphrase occurs in line 1 ...
        for j in 0..n2 {
            paraphrases.paths(&reference.phrase_ids, j, &mut found);
            for f in &found {
                let words = paraphrases.paraphrase_words(f.paraphrase);
                for i in occurrences(test, paraphrases.paraphrase(f.paraphrase), words) {
                    stage.add(Match {
                        start: j,
                        length: f.len,
                        match_start: i,
                        match_length: words,
                        module: PARAPHRASE,
                    });
                }
            }
        }
        // ... then phrases of line 1 whose paraphrase occurs in line 2.
        for i in 0..n1 {
            paraphrases.paths(&test.phrase_ids, i, &mut found);
            for f in &found {
                let words = paraphrases.paraphrase_words(f.paraphrase);
                for j in occurrences(reference, paraphrases.paraphrase(f.paraphrase), words) {
                    stage.add(Match {
                        start: j,
                        length: words,
                        match_start: i,
                        match_length: f.len,
                        module: PARAPHRASE,
                    });
                }
            }
        }
        stage
    }
}

/// Whether two sorted sets share an element.
fn intersect(a: &[u32], b: &[u32]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// The word positions, ascending, where the phrase `text` (`words` words joined by single
/// spaces) occurs in `sentence`: the jar's word-by-word comparison, done on the joined text
/// (words hold no spaces, so equal text from a word start to a word end is equal words).
fn occurrences<'a>(
    sentence: &'a Sentence,
    text: &'a [u8],
    words: usize,
) -> impl Iterator<Item = usize> + 'a {
    let bytes = sentence.text.as_bytes();
    let n = sentence.words.len();
    (0..n.saturating_sub(words - 1)).filter(move |&i| {
        let start = sentence.word_starts[i];
        let end = start + text.len();
        bytes.get(start..end) == Some(text) && (end == bytes.len() || bytes[end] == b' ')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_sets_intersect() {
        assert!(intersect(&[1, 4, 9], &[2, 9]));
        assert!(!intersect(&[1, 4], &[2, 3, 5]));
        assert!(!intersect(&[], &[1]));
    }

    fn sentence(text: &str) -> Sentence {
        let words: Vec<String> = text.split(' ').map(str::to_owned).collect();
        let mut word_starts = Vec::new();
        let mut at = 0;
        for w in &words {
            word_starts.push(at);
            at += w.len() + 1;
        }
        Sentence {
            keys: Vec::new(),
            stem_keys: Vec::new(),
            synsets: Vec::new(),
            phrase_ids: Vec::new(),
            function: Vec::new(),
            text: text.to_owned(),
            word_starts,
            words,
        }
    }

    #[test]
    fn phrases_occur_at_whole_words_only() {
        let s = sentence("a dog x a dogs a dog");
        assert_eq!(occurrences(&s, b"a dog", 2).collect::<Vec<_>>(), [0, 5]);
        assert_eq!(occurrences(&s, b"dog", 1).collect::<Vec<_>>(), [1, 6]);
        assert_eq!(occurrences(&s, b"og", 1).count(), 0);
        assert_eq!(occurrences(&sentence("a"), b"a dog", 2).count(), 0);
        assert_eq!(occurrences(&sentence(""), b"a", 1).count(), 0);
    }
}
