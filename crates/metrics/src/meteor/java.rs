//! The few `java.lang.String` and `java.util` behaviours the jar's results depend on.
//!
//! The jar compares words by `String.hashCode()` (exact and stem matches, "identical
//! sentences"), trims with `String.trim()`, splits words with a default `StringTokenizer`, and
//! splits protocol lines with `String.split("\\|\\|\\|")`. Each differs from the obvious Rust
//! call in some corner: `trim` strips every character up to U+0020 (not Unicode white space),
//! the tokenizer splits only on space, tab, newline, carriage return and form feed, and `split`
//! drops trailing empty fields.

/// `String.hashCode()`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, wrapping.
pub(crate) fn hash_code(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// `String.trim()`: strips leading and trailing characters `<= U+0020`.
pub(crate) fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// The delimiters of `new StringTokenizer(s)`: `" \t\n\r\f"`.
fn is_tokenizer_delimiter(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

/// The tokens of `new StringTokenizer(s)`.
pub(crate) fn tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_tokenizer_delimiter).filter(|t| !t.is_empty())
}

/// `s.split(Pattern.quote(separator))`: the fields between non-overlapping occurrences, left
/// to right, without the trailing empty ones (Java's `split` with limit 0).
pub(crate) fn split_dropping_trailing_empty<'a>(s: &'a str, separator: &str) -> Vec<&'a str> {
    let mut fields: Vec<&str> = s.split(separator).collect();
    // Java returns the whole input when the separator never occurs, even an empty one.
    if fields.len() > 1 {
        while fields.last().is_some_and(|f| f.is_empty()) {
            fields.pop();
        }
    }
    fields
}

/// `s.length()`: the length in UTF-16 code units.
pub(crate) fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_code_is_javas_polynomial_over_utf16_units() {
        assert_eq!(hash_code(""), 0);
        assert_eq!(hash_code("a"), 97);
        assert_eq!(hash_code("ab"), 97 * 31 + 98);
        // Two different words with one hash: the jar treats them as an exact match.
        assert_eq!(hash_code("c0"), hash_code("an"));
        assert_ne!("c0", "an");
        // A character outside the BMP counts as its two surrogates.
        assert_eq!(hash_code("\u{1F600}"), 0xD83D * 31 + 0xDE00);
        // Long words overflow and wrap as Java's int does.
        let long = "pneumonoultramicroscopicsilicovolcanoconiosis";
        let wrapped = long
            .bytes()
            .fold(0i64, |h, b| (h * 31 + i64::from(b)) & 0xFFFF_FFFF);
        assert_eq!(hash_code(long), wrapped as u32 as i32);
    }

    #[test]
    fn trim_strips_control_characters_but_not_unicode_spaces() {
        assert_eq!(trim("\x01 a b\t\x1f"), "a b");
        assert_eq!(trim("\u{a0}a\u{a0}"), "\u{a0}a\u{a0}");
    }

    #[test]
    fn tokenizer_splits_on_its_five_delimiters_only() {
        let got: Vec<&str> = tokens(" a\tb\n\nc\rd\x0ce\x0bf\u{a0}g ").collect();
        assert_eq!(got, ["a", "b", "c", "d", "e\x0bf\u{a0}g"]);
        assert_eq!(tokens("   ").count(), 0);
    }

    #[test]
    fn split_drops_trailing_empty_fields_only() {
        assert_eq!(
            split_dropping_trailing_empty("SCORE ||| a |||  ||| ", "|||"),
            ["SCORE ", " a ", "  ", " "]
        );
        assert_eq!(split_dropping_trailing_empty("a||||||", "|||"), ["a"]);
        assert_eq!(split_dropping_trailing_empty("||||", "|||"), ["", "|"]);
        assert_eq!(
            split_dropping_trailing_empty("|||", "|||"),
            Vec::<&str>::new()
        );
        assert_eq!(split_dropping_trailing_empty("", "|||"), [""]);
    }

    #[test]
    fn utf16_length_counts_surrogate_pairs_twice() {
        assert_eq!(utf16_len("ab"), 2);
        assert_eq!(utf16_len("\u{e9}"), 1);
        assert_eq!(utf16_len("\u{1F600}"), 2);
    }
}
