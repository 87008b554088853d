//! The jar's alignment search (`Aligner.align` and `Aligner.resolve`), quirks included.
//!
//! 1. A match that is the only one starting at its line-2 word, and whose words no other
//!    match covers, is fixed before the search.
//! 2. A beam search (40 paths) walks line 2 left to right. At each word a path either takes
//!    one of the matches starting there whose words are free, or skips the word. Paths are
//!    ranked by, in order: more matched words, fewer chunks, less distance
//!    (`Constants.PARTIAL_COMPARE_TOTAL`), with a stable sort, so ties keep the order in which
//!    paths were made.
//! 3. The best path's chunks are then recounted from its matches.
//!
//! What the ranking sees is not what the score counts:
//! - matched words are weighted 1 (exact) and 0.5 (stem, synonym, paraphrase), and each
//!   addition is truncated to an integer (`int += double`), so a one-word non-exact match adds
//!   nothing while a two-word paraphrase adds one;
//! - a new path gets its parent's distance *before* its own match is added, and the distance of
//!   every match tried goes to the parent (`path.distance +=` where `newPath` was meant), so the
//!   path that skips a word carries the distance of all the alternatives it skipped, and later
//!   siblings carry the distances of the earlier ones.

use super::stage::{Match, Stage};

/// Paths kept at each word (`Constants.DEFAULT_BEAM_SIZE`).
const BEAM_SIZE: usize = 40;

/// The module weights the search ranks with (`MeteorScorer` sets exact 1.0, the rest 0.5;
/// the score's weights are different).
const SEARCH_WEIGHTS: [f64; 4] = [1.0, 0.5, 0.5, 0.5];

/// No chosen match (the end of a path's list).
const NONE: u32 = u32::MAX;

/// A partial alignment (`PartialAlignment`).
#[derive(Clone)]
struct Path {
    /// The last match this path chose, an index into the search's arena of choices.
    chosen: u32,
    matches1: i32,
    matches2: i32,
    chunks: i32,
    /// Next line-2 word to resolve.
    idx: usize,
    /// One past the last line-1 word of the open chunk, or -1 when no chunk is open.
    last_match_end: isize,
    distance: i32,
    /// Used words: line 1 in bits `0..n1`, line 2 in bits `n1..n1 + n2`.
    used: Vec<u64>,
}

impl Path {
    fn bit(&self, k: usize) -> bool {
        self.used[k / 64] >> (k % 64) & 1 == 1
    }

    fn set(&mut self, k: usize) {
        self.used[k / 64] |= 1 << (k % 64);
    }

    fn is_used(&self, m: &Match, n1: usize) -> bool {
        (m.start..m.start + m.length).any(|j| self.bit(n1 + j))
            || (m.match_start..m.match_start + m.match_length).any(|i| self.bit(i))
    }

    fn set_used(&mut self, m: &Match, n1: usize) {
        for j in m.start..m.start + m.length {
            self.set(n1 + j);
        }
        for i in m.match_start..m.match_start + m.match_length {
            self.set(i);
        }
    }

    /// Adds `m`'s weighted sizes, chunk break and position, as both the "fixed match" and the
    /// "new path" branches of `resolve` do (distance is handled by the caller).
    fn extend(&mut self, m: &Match) {
        let weight = SEARCH_WEIGHTS[m.module];
        // Java's `int += double`: the sum in double, truncated toward zero.
        self.matches1 = (f64::from(self.matches1) + m.match_length as f64 * weight) as i32;
        self.matches2 = (f64::from(self.matches2) + m.length as f64 * weight) as i32;
        if self.last_match_end != -1 && m.match_start as isize != self.last_match_end {
            self.chunks += 1;
        }
        self.idx = m.start + m.length;
        self.last_match_end = (m.match_start + m.match_length) as isize;
    }
}

/// `PARTIAL_COMPARE_TOTAL`: more (weighted) matched words first, then fewer chunks, then less
/// distance.
fn rank(x: &Path, y: &Path) -> std::cmp::Ordering {
    (y.matches1 + y.matches2)
        .cmp(&(x.matches1 + x.matches2))
        .then(x.chunks.cmp(&y.chunks))
        .then(x.distance.cmp(&y.distance))
}

fn distance(m: &Match) -> i32 {
    (m.start as i32 - m.match_start as i32).abs()
}

/// The best alignment of line 1 (`n1` words) to line 2: for each line-2 word, the match that
/// starts there, if any.
pub(crate) fn align(stage: &Stage, n1: usize) -> Vec<Option<Match>> {
    let n2 = stage.matches.len();
    let mut initial = Path {
        chosen: NONE,
        matches1: 0,
        matches2: 0,
        chunks: 0,
        idx: 0,
        last_match_end: -1,
        distance: 0,
        used: vec![0; (n1 + n2).div_ceil(64)],
    };
    // One-to-one, non-overlapping matches are definite.
    let mut fixed: Vec<Option<Match>> = vec![None; n2];
    for (j, matches) in stage.matches.iter().enumerate() {
        if let [m] = matches.as_slice() {
            let alone = stage.coverage2[j..j + m.length].iter().all(|&c| c == 1)
                && stage.coverage1[m.match_start..m.match_start + m.match_length]
                    .iter()
                    .all(|&c| c == 1);
            if alone {
                fixed[j] = Some(*m);
                initial.set_used(m, n1);
            }
        }
    }

    // Choices made by paths: (match, the path's previous choice).
    let mut arena: Vec<(Match, u32)> = Vec::new();
    let mut next = vec![initial];
    for current in 0..=n2 {
        let mut paths = std::mem::take(&mut next);
        paths.sort_by(rank);
        let mut first_dropped = None;
        for (rank_no, mut path) in paths.into_iter().take(BEAM_SIZE).enumerate() {
            // The path is complete: close its last chunk.
            if current == n2 {
                if path.last_match_end != -1 {
                    path.chunks += 1;
                }
                next.push(path);
                continue;
            }
            // The word is in use: inside the previous match, or the start of a fixed one.
            if path.bit(n1 + current) {
                if current < path.idx {
                    next.push(path);
                } else if let Some(m) = fixed[path.idx] {
                    // Here `path.idx == current`: a path's `idx` never falls behind `current`,
                    // and a word the path itself took lies before its `idx`.
                    path.extend(&m);
                    path.distance += distance(&m);
                    next.push(path);
                } else if rank_no == 0 {
                    first_dropped = Some(path);
                }
                continue;
            }
            // Each free match starting here makes a new path.
            for m in &stage.matches[current] {
                if path.is_used(m, n1) {
                    continue;
                }
                let mut new_path = path.clone();
                new_path.set_used(m, n1);
                arena.push((*m, path.chosen));
                new_path.chosen = (arena.len() - 1) as u32;
                new_path.extend(m);
                path.distance += distance(m);
                next.push(new_path);
            }
            // Or skip this word.
            if path.last_match_end != -1 {
                path.chunks += 1;
                path.last_match_end = -1;
            }
            path.idx += 1;
            next.push(path);
        }
        if next.is_empty() {
            // The jar warns "unexpected conditions" and continues with the best path.
            next.extend(first_dropped);
        }
    }
    next.sort_by(rank);
    let best = &next[0];
    let mut matches = fixed;
    let mut node = best.chosen;
    while node != NONE {
        let (m, previous) = arena[node as usize];
        matches[m.start] = Some(m);
        node = previous;
    }
    matches
}

/// `Aligner.getCountAndChunks`: a chunk is a run of matches adjacent in line 2 (no unmatched
/// word between them) and contiguous in line 1.
pub(crate) fn count_chunks(matches: &[Option<Match>]) -> usize {
    let mut chunks = 0;
    let mut idx = 0;
    let mut last_match_end: Option<usize> = None;
    while idx < matches.len() {
        match &matches[idx] {
            None => {
                if last_match_end.take().is_some() {
                    chunks += 1;
                }
                idx += 1;
            }
            Some(m) => {
                if last_match_end.is_some_and(|end| end != m.match_start) {
                    chunks += 1;
                }
                idx = m.start + m.length;
                last_match_end = Some(m.match_start + m.match_length);
            }
        }
    }
    if last_match_end.is_some() {
        chunks += 1;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meteor::stage::{EXACT, PARAPHRASE};

    fn one(start: usize, match_start: usize) -> Match {
        Match {
            start,
            length: 1,
            match_start,
            match_length: 1,
            module: EXACT,
        }
    }

    fn stage(n1: usize, n2: usize, matches: &[Match]) -> Stage {
        let mut stage = Stage {
            matches: vec![Vec::new(); n2],
            coverage1: vec![0; n1],
            coverage2: vec![0; n2],
        };
        for m in matches {
            for c in &mut stage.coverage1[m.match_start..m.match_start + m.match_length] {
                *c += 1;
            }
            for c in &mut stage.coverage2[m.start..m.start + m.length] {
                *c += 1;
            }
            stage.matches[m.start].push(*m);
        }
        stage
    }

    #[test]
    fn chunks_break_on_gaps_and_on_jumps_in_line_one() {
        assert_eq!(count_chunks(&[]), 0);
        assert_eq!(count_chunks(&[None, None]), 0);
        assert_eq!(count_chunks(&[Some(one(0, 0)), Some(one(1, 1))]), 1);
        // Reordered: adjacent in line 2, not contiguous in line 1.
        assert_eq!(count_chunks(&[Some(one(0, 1)), Some(one(1, 0))]), 2);
        // A gap in line 2 ends a chunk even when line 1 is contiguous.
        assert_eq!(count_chunks(&[Some(one(0, 0)), None, Some(one(2, 1))]), 2);
        // A two-word match is one step.
        let phrase = Match {
            start: 0,
            length: 2,
            match_start: 0,
            match_length: 1,
            module: PARAPHRASE,
        };
        assert_eq!(count_chunks(&[Some(phrase), None, Some(one(2, 1))]), 1);
    }

    #[test]
    fn lone_matches_are_fixed_and_ambiguous_ones_resolved() {
        // Line 1 "a b a", line 2 "a b": "b" is fixed, "a" (line 2) has two candidates and the
        // search takes the one that keeps a single chunk.
        let s = stage(3, 2, &[one(0, 0), one(0, 2), one(1, 1)]);
        assert_eq!(align(&s, 3), [Some(one(0, 0)), Some(one(1, 1))]);
        // Nothing to match.
        let s = stage(2, 3, &[]);
        assert_eq!(align(&s, 2), [None, None, None]);
    }

    #[test]
    fn sentences_longer_than_64_words_use_several_bit_words() {
        let n = 100;
        let matches: Vec<Match> = (0..n).map(|j| one(j, n - 1 - j)).collect();
        let got = align(&stage(n, n, &matches), n);
        assert_eq!(got, matches.into_iter().map(Some).collect::<Vec<_>>());
    }
}
