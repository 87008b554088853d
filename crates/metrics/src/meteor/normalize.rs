//! The jar's `-norm` text processing: `Normalizer.normalizeLine(line, english, keepPunctuation
//! = true)` (a Moses tokenizer with METEOR's additions), then `toLowerCase()`, then the
//! `StringTokenizer` split into words.
//!
//! Each step below is one statement of `edu.cmu.meteor.util.Normalizer`, in its order, with its
//! regular expressions. Java's classes are spelled out where Rust's would differ: `\s` is
//! `[ \t\n\x0B\f\r]`, `\p{Digit}` is `[0-9]` and `\p{Lower}` is `[a-z]` (ASCII only, as in
//! `java.util.regex` without `UNICODE_CHARACTER_CLASS`). Both engines replace leftmost,
//! non-overlapping matches, so `replaceAll` and `Regex::replace_all` agree on these patterns.

use std::collections::HashMap;

use regex::Regex;

use super::java;

/// The jar's "alpha" characters: ASCII letters, Latin-1 and Latin Extended-A letters, Cyrillic.
const ALPHA: &str = r"A-Za-z\x{160}\x{17D}\x{161}\x{17E}\x{178}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{17E}\x{400}-\x{4FF}\x{500}-\x{527}\x{A640}-\x{A66E}\x{A67E}-\x{A697}\x{1D00}-\x{1D7F}";

/// A nonbreaking prefix: a word that keeps its final dot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Prefix {
    /// Always keeps its dot (`Mr.`, `e.g.`).
    Any,
    /// Keeps its dot only before a number (`No. 5`).
    NumericOnly,
}

/// Parses `nonbreaking/english.prefixes` as the jar does: one prefix per line, `#` comments,
/// `#NUMERIC_ONLY#` after the prefix for the numeric-only kind.
pub(crate) fn parse_prefixes(text: &str) -> HashMap<String, Prefix> {
    let mut prefixes = HashMap::new();
    for line in text.lines() {
        let mut fields = java::tokens(line);
        let Some(prefix) = fields.next() else {
            continue;
        };
        if prefix.starts_with('#') {
            continue;
        }
        let kind = if fields.next() == Some("#NUMERIC_ONLY#") {
            Prefix::NumericOnly
        } else {
            Prefix::Any
        };
        prefixes.insert(prefix.to_owned(), kind);
    }
    prefixes
}

/// The compiled patterns of `Normalizer` and the nonbreaking prefixes.
pub(crate) struct Normalizer {
    prefixes: HashMap<String, Prefix>,
    sep_other: Regex,
    multi_dot: Regex,
    multi_dot2: Regex,
    comma: Regex,
    comma2: Regex,
    comma3: Regex,
    quote_norm: Regex,
    quote_norm2: Regex,
    rm_dash: Regex,
    cont_en: Regex,
    cont_en2: Regex,
    cont_en3: Regex,
    cont_en4: Regex,
    cont_en5: Regex,
    nbp_alpha: Regex,
    white: Regex,
}

impl Normalizer {
    pub(crate) fn new(prefixes: HashMap<String, Prefix>) -> Self {
        let alnum = format!("0-9{ALPHA}");
        let re = |pattern: &str| Regex::new(pattern).expect("the normalizer's patterns are valid");
        Normalizer {
            prefixes,
            sep_other: re(&format!(
                r"([^{alnum} \t\n\x0B\x0C\r.'`,\-\x{{2018}}\x{{2019}}])"
            )),
            multi_dot: re(r"\.([.]+)"),
            multi_dot2: re(r"DOTMULTI\.([^.])"),
            comma: re(r"([^0-9])[,]([^0-9])"),
            comma2: re(r"([0-9])[,]([^0-9])"),
            comma3: re(r"([^0-9])[,]([0-9])"),
            quote_norm: re(r"([`\x{2018}\x{2019}])"),
            quote_norm2: re(r"([\x{201C}\x{201D}]|'')"),
            rm_dash: re(&format!(r"([{alnum}.])[\-]([{alnum}])")),
            cont_en: re(&format!(r"([^{ALPHA}])[']([^{ALPHA}])")),
            cont_en2: re(&format!(r"([^{ALPHA}0-9])[']([{ALPHA}])")),
            cont_en3: re(&format!(r"([{ALPHA}])[']([^{ALPHA}])")),
            cont_en4: re(&format!(r"([{ALPHA}])[']([{ALPHA}])")),
            cont_en5: re(r"([0-9])[']([s])"),
            nbp_alpha: re(&format!(r"[{ALPHA}]")),
            white: re(r"[ \x{2000}-\x{200A}\x{202F}\x{205F}\x{3000}\x{A0}]+"),
        }
    }

    /// `Normalizer.normalizeLine(line, LANG_EN, true)`: the tokenized line, words joined by
    /// single spaces, case kept.
    pub(crate) fn normalize_line(&self, line: &str) -> String {
        // Wrap line in whitespace; separate all non-alphanumeric characters that aren't
        // special cases.
        let mut s = format!(" {line} ");
        s = self.sep_other.replace_all(&s, " ${1} ").into_owned();

        // Escape multiple dots.
        s = self.multi_dot.replace_all(&s, " DOTMULTI${1}").into_owned();
        while s.contains("DOTMULTI.") {
            s = self
                .multi_dot2
                .replace_all(&s, "DOTDOTMULTI ${1}")
                .into_owned();
            s = s.replace("DOTMULTI.", "DOTDOTMULTI");
        }

        // Separate commas except within numbers.
        s = self.comma.replace_all(&s, "${1} , ${2}").into_owned();
        s = self.comma2.replace_all(&s, "${1} , ${2}").into_owned();
        s = self.comma3.replace_all(&s, "${1} , ${2}").into_owned();

        // Normalize quotes and dashes; split dashes between words (`U.S.-based`).
        s = self.quote_norm.replace_all(&s, "'").into_owned();
        s = self.quote_norm2.replace_all(&s, " \" ").into_owned();
        s = s.replace('\u{2013}', "-");
        s = s.replace("--", "-");
        s = self.rm_dash.replace_all(&s, "${1} ${2}").into_owned();

        // English splits contractions to the right.
        s = self.cont_en.replace_all(&s, "${1} ' ${2}").into_owned();
        s = self.cont_en2.replace_all(&s, "${1} ' ${2}").into_owned();
        s = self.cont_en3.replace_all(&s, "${1} ' ${2}").into_owned();
        s = self.cont_en4.replace_all(&s, "${1} '${2}").into_owned();
        s = self.cont_en5.replace_all(&s, "${1} '${2}").into_owned();

        // Rebuild the line word by word, splitting final dots unless nonbreaking.
        let words: Vec<&str> = java::tokens(&s).collect();
        let mut rebuilt = String::with_capacity(s.len() + 8);
        for (i, word) in words.iter().enumerate() {
            let next = words.get(i + 1);
            match word.strip_suffix('.').filter(|pre| !pre.is_empty()) {
                Some(pre) => {
                    let kind = self.prefixes.get(pre).copied();
                    // Always nonbreaking, or followed by lowercase (catches unlisted items such
                    // as "Inc."), or nonbreaking before a number and followed by one.
                    let keeps_dot = kind == Some(Prefix::Any)
                        || next.is_some_and(|n| n.starts_with(|c: char| c.is_ascii_lowercase()))
                        || (kind == Some(Prefix::NumericOnly)
                            && next.is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit())));
                    if pre.contains('.') && self.nbp_alpha.is_match(pre) {
                        // Mixed (U.S.): drop the dots to match undotted output.
                        rebuilt.push_str(&word.replace('.', ""));
                    } else if keeps_dot {
                        rebuilt.push_str(word);
                    } else {
                        rebuilt.push_str(pre);
                        rebuilt.push_str(" .");
                    }
                }
                None => rebuilt.push_str(word),
            }
            rebuilt.push(' ');
        }
        s = rebuilt;

        // Unescape multiple dots.
        while s.contains("DOTDOTMULTI") {
            s = s.replace("DOTDOTMULTI", "DOTMULTI.");
        }
        s = s.replace("DOTMULTI", ".");

        // Normalize whitespace.
        let s = self.white.replace_all(&s, " ");
        java::trim(&s).to_owned()
    }

    /// What the jar aligns for one input line: normalized, lowercased, split into words.
    pub(crate) fn words(&self, line: &str) -> Vec<String> {
        let lowered = self.normalize_line(line).to_lowercase();
        java::tokens(&lowered).map(str::to_owned).collect()
    }
}

/// What the jar receives for one image from pycocoevalcap's `meteor.py`: the `SCORE` line it
/// writes, split back into fields as `Meteor.scoreStdio` splits it.
///
/// `meteor.py` removes `|||` from the hypothesis (and turns double spaces into single ones)
/// but not from the references, so a reference containing `|||` reaches the jar as several
/// references. Returns `(hypothesis, references)`, each trimmed as Java trims.
pub(crate) fn protocol_fields<R: AsRef<str>>(
    hypothesis: &str,
    references: &[R],
) -> (String, Vec<String>) {
    let hypothesis = hypothesis.replace("|||", "").replace("  ", " ");
    let references: Vec<&str> = references.iter().map(AsRef::as_ref).collect();
    let line = format!("SCORE ||| {} ||| {hypothesis}", references.join(" ||| "));
    let fields = java::split_dropping_trailing_empty(&line, "|||");
    // The line always holds at least the command, one reference field and a non-empty last
    // field (" " + hypothesis), so there are at least three fields.
    let (last, middle) = fields[1..]
        .split_last()
        .expect("a SCORE line has a reference and a hypothesis field");
    let refs = middle.iter().map(|r| java::trim(r).to_owned()).collect();
    (java::trim(last).to_owned(), refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalizer() -> Normalizer {
        Normalizer::new(parse_prefixes("# comment\n\nMr\nNo #NUMERIC_ONLY# \ne.g\n"))
    }

    #[test]
    fn prefixes_parse_kinds_and_skip_comments() {
        let prefixes = parse_prefixes("#A\nMr\n  \nNo #NUMERIC_ONLY#\npp #NUMERIC_ONLY# x\nv x\n");
        let mut got: Vec<(&str, Prefix)> = prefixes.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("Mr", Prefix::Any),
                ("No", Prefix::NumericOnly),
                ("pp", Prefix::NumericOnly),
                ("v", Prefix::Any)
            ]
        );
    }

    #[test]
    fn clean_captions_are_unchanged() {
        let n = normalizer();
        let caption = "a dog runs through the grass";
        assert_eq!(n.normalize_line(caption), caption);
        assert_eq!(n.words(caption), caption.split(' ').collect::<Vec<_>>());
    }

    #[test]
    fn protocol_escapes_the_hypothesis_only() {
        let (hyp, refs) = protocol_fields("a ||| dog  runs", &["ref one", " two ||| three "]);
        assert_eq!(hyp, "a dog runs");
        assert_eq!(refs, ["ref one", "two", "three"]);
        let (hyp, refs) = protocol_fields("", &["", "x"]);
        assert_eq!(hyp, "");
        assert_eq!(refs, ["", "x"]);
    }
}
