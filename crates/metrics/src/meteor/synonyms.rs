//! The WordNet synonym dictionary as the jar's `SynonymDictionary` reads and uses it.
//!
//! `synonym/english.synsets` alternates a word line and a line of its synset numbers;
//! `synonym/english.exceptions` alternates a base form line and a line of its irregular forms
//! (`abet` / `abetted abetting`). A word's synsets for matching are its own plus those of its
//! base form: the listed bases for an irregular form, otherwise the first form that WordNet's
//! suffix rules (`morph`) produce and the dictionary has. (`english.relations` is not read by
//! the jar either.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::MeteorError;
use super::java;

/// WordNet's detachment rules, `(suffix, replacement)`, nouns then verbs then adjectives,
/// tried in this order (`SynonymDictionary.sufx` / `addr`).
const RULES: [(&str, &str); 20] = [
    ("s", ""),
    ("ses", "s"),
    ("xes", "x"),
    ("zes", "z"),
    ("ches", "ch"),
    ("shes", "sh"),
    ("men", "man"),
    ("ies", "y"),
    ("s", ""),
    ("ies", "y"),
    ("es", "e"),
    ("es", ""),
    ("ed", "e"),
    ("ed", ""),
    ("ing", "e"),
    ("ing", ""),
    ("er", ""),
    ("est", ""),
    ("er", "e"),
    ("est", "e"),
];

pub(crate) struct Synonyms {
    /// Word -> its synset numbers, sorted.
    synsets: HashMap<String, Vec<u32>>,
    /// Irregular form -> its base forms, in file order.
    bases: HashMap<String, Vec<String>>,
}

impl Synonyms {
    pub(crate) fn parse(
        synsets_path: &Path,
        synsets_text: &str,
        exceptions_path: &Path,
        exceptions_text: &str,
    ) -> Result<Self, MeteorError> {
        let mut synsets = HashMap::new();
        for (line_no, word, numbers) in pairs(synsets_path, synsets_text)? {
            let mut set = java::tokens(numbers)
                .map(|n| {
                    n.parse::<u32>().map_err(|_| MeteorError::Parse {
                        path: PathBuf::from(synsets_path),
                        line: line_no + 1,
                        message: format!("{n:?} is not a synset number"),
                    })
                })
                .collect::<Result<Vec<u32>, _>>()?;
            set.sort_unstable();
            set.dedup();
            // A word listed twice keeps its last entry, as the jar's Hashtable.put does.
            synsets.insert(word.to_owned(), set);
        }
        let mut bases: HashMap<String, Vec<String>> = HashMap::new();
        for (_, base, forms) in pairs(exceptions_path, exceptions_text)? {
            for form in java::tokens(forms) {
                bases
                    .entry(form.to_owned())
                    .or_default()
                    .push(base.to_owned());
            }
        }
        Ok(Synonyms { synsets, bases })
    }

    /// `getSynSets(word) ∪ getStemSynSets(word)`, sorted, without duplicates.
    pub(crate) fn synsets_of(&self, word: &str) -> Vec<u32> {
        let mut set = self.synsets.get(word).cloned().unwrap_or_default();
        match self.bases.get(word) {
            Some(bases) => {
                for base in bases {
                    set.extend(self.synsets.get(base).into_iter().flatten());
                }
            }
            None => set.extend(self.synsets.get(&self.morph(word)).into_iter().flatten()),
        }
        set.sort_unstable();
        set.dedup();
        set
    }

    /// `SynonymDictionary.morph`: the word itself when it ends in `ss` or has at most two
    /// UTF-16 units; otherwise the first rule's result that the dictionary knows; otherwise
    /// the empty string. (The jar's `-ful` handling cannot take effect: no suffix above ends a
    /// word that ends in `ful`.)
    fn morph(&self, word: &str) -> String {
        if word.ends_with("ss") || java::utf16_len(word) <= 2 {
            return word.to_owned();
        }
        for (suffix, replacement) in RULES {
            if let Some(stem) = word.strip_suffix(suffix) {
                let candidate = format!("{stem}{replacement}");
                if self.synsets.contains_key(&candidate) {
                    return candidate;
                }
            }
        }
        String::new()
    }
}

/// The (line number of the first line, first line, second line) pairs of a two-line-record
/// file.
fn pairs<'a>(path: &Path, text: &'a str) -> Result<Vec<(usize, &'a str, &'a str)>, MeteorError> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() % 2 == 1 {
        return Err(MeteorError::Parse {
            path: PathBuf::from(path),
            line: lines.len(),
            message: "the file ends inside a record (odd number of lines)".to_owned(),
        });
    }
    Ok(lines
        .chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| (2 * i + 1, pair[0], pair[1]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dictionary() -> Synonyms {
        Synonyms::parse(
            Path::new("s"),
            "dog\n02 01\nhound\n01\nbox\n07\nrun\n05\nwalk\n05\nwalking\n09\nrunning\n08\nglass\n03\nmouse\n04\n",
            Path::new("e"),
            "mouse\nmice\nrun\nran\n",
        )
        .unwrap()
    }

    #[test]
    fn synsets_join_the_words_own_and_its_base_forms() {
        let d = dictionary();
        assert_eq!(d.synsets_of("dog"), [1, 2]);
        // Regular plural: the first rule ("s" -> "") finds "dog".
        assert_eq!(d.synsets_of("dogs"), [1, 2]);
        // "-xes" -> "x" is tried after "s" -> "" (which gives the unknown "boxe").
        assert_eq!(d.synsets_of("boxes"), [7]);
        // Irregular form from the exceptions file; its own morphology is not tried.
        assert_eq!(d.synsets_of("mice"), [4]);
        assert_eq!(d.synsets_of("ran"), [5]);
        // A word in the dictionary also gets its base form's synsets.
        assert_eq!(d.synsets_of("walking"), [5, 9]);
        // The rules do not undouble consonants: "running" does not reach "run".
        assert_eq!(d.synsets_of("running"), [8]);
        // Words ending in "ss" and words of two letters are their own base form.
        assert_eq!(d.synsets_of("glass"), [3]);
        assert_eq!(d.synsets_of("zebra"), Vec::<u32>::new());
    }

    #[test]
    fn a_bad_synset_number_names_file_and_line() {
        let err = Synonyms::parse(Path::new("s.txt"), "dog\n01 x2\n", Path::new("e"), "")
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "s.txt:2: \"x2\" is not a synset number");
        let err = Synonyms::parse(Path::new("s"), "", Path::new("e.txt"), "a\nb\nc\n")
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "e.txt:3: the file ends inside a record (odd number of lines)"
        );
    }
}
