//! Caption cleaning: the one definition shared by the cleaner (training text) and the
//! evaluator (scoring any captions), so references and predictions are tokenized alike.
//!
//! The rules follow the de facto Flickr8k standard (Karpathy's tokens, and the Kaggle
//! notebooks the project's seed follows): lowercase; hyphens and every other punctuation
//! character become spaces; tokens that contain a digit are dropped; whitespace collapses to
//! single spaces.

/// Cleans one caption; the result may be empty (the caller decides what that means).
pub fn clean_caption(raw: &str) -> String {
    let spaced: String = raw
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .to_lowercase();
    spaced
        .split_whitespace()
        .filter(|token| !token.chars().any(|c| c.is_numeric()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::clean_caption;

    #[test]
    fn real_flickr8k_captions() {
        // Lines of Flickr8k.token.txt.
        assert_eq!(
            clean_caption(
                "A child in a pink dress is climbing up a set of stairs in an entry way ."
            ),
            "a child in a pink dress is climbing up a set of stairs in an entry way"
        );
        assert_eq!(
            clean_caption(
                "A black dog and a white dog with brown spots are staring at each other in the street ."
            ),
            "a black dog and a white dog with brown spots are staring at each other in the street"
        );
        assert_eq!(
            clean_caption("A man in a red-and-white shirt ."),
            "a man in a red and white shirt"
        );
        assert_eq!(
            clean_caption("The dog's ball , \"mine\" ."),
            "the dog s ball mine"
        );
    }

    #[test]
    fn tokens_with_digits_are_dropped() {
        assert_eq!(
            clean_caption("Player number 23 runs, 2nd base"),
            "player number runs base"
        );
    }

    #[test]
    fn whitespace_collapses_and_tabs_count() {
        assert_eq!(clean_caption("  Two\tdogs \n play  "), "two dogs play");
    }

    #[test]
    fn punctuation_only_becomes_empty() {
        assert_eq!(clean_caption(" . , ! 42 "), "");
    }

    #[test]
    fn non_ascii_letters_are_kept_and_lowercased() {
        assert_eq!(clean_caption("Café ÉCOLE"), "café école");
    }
}
