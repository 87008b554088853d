//! Five captions per scene, from five fixed templates with a few synonyms.
//!
//! The templates are consistent on purpose: a captioner trained on ResNet features has to
//! learn them (the project expects BLEU-4 >= 0.35 on the test split), so every caption names
//! every shape's colour and kind and the background, in one of a few fixed orders; synonyms
//! ("disc", "plus sign", "dark", "grey", ...) only add some variety. Each template has its own
//! wording, so the five captions of an image always differ.
//!
//! Single shape (`{size}` is big/large or small/little; `background` is now and then
//! `backdrop`; "a" becomes "an" before a vowel):
//! 1. `A {size} {colour} {shape} on a {bg} background.`
//! 2. `A {colour} {shape} on a {bg} background.`
//! 3. `One {size} {colour} {shape} against {bg}.`
//! 4. `There is|The picture shows a {size} {colour} {shape} on a plain {bg} background.`
//! 5. `A {bg} background with a {size} {colour} {shape}.`
//!
//! Two shapes (A and B in a fixed colour order, whatever their places; L and R as drawn):
//! 1. `A {A} and a {B} on a {bg} background.`
//! 2. `Two shapes|objects, a {A} and a {B}, on {bg}.`
//! 3. `A {R} to the right of a {L} on a {bg} background.` or `A {L} to the left of a {R} ...`
//! 4. `A {A} next to|beside a {B} against a plain {bg} background.`
//! 5. `A {bg} background with a {A} and a {B}.`
//!
//! Three or four small shapes (a `small-shapes` scene; `{list}` names every shape in reading
//! order, rows top to bottom and each left to right: "a {A}, a {B} and a {C}"):
//! 1. `{list} on a {bg} background.`
//! 2. `Three|Four small|little shapes|objects, {list}, on {bg}.`
//! 3. `There is|The picture shows a {A} next to|beside {the rest of the list} against a plain
//!    {bg} background.`
//! 4. `From the top left, {list} on a {bg} background.`
//! 5. `A {bg} background with {list}.`
//!
//! Four shapes named with the longest synonyms make 31 words, within the tokenizer's default
//! `max_len` of 32.
//!
//! Words: shape colours red, green, blue, yellow, purple, orange, pink; shapes circle (disc,
//! round shape), square (box), triangle (triangular shape), star (five pointed star), cross
//! (plus sign), diamond; backgrounds black (dark), white (light), gray (grey).
//!
//! Naming the pair in a fixed colour order (not left to right) keeps four of the five captions
//! learnable from globally pooled features, which barely encode where things are.

use rand::RngCore;

use crate::random::{chance, weighted};
use crate::scene::{Colour, Objects, Scene, Shape, ShapeKind, Size};

/// Captions written for each image.
pub const PER_IMAGE: usize = 5;

/// The words (with relative frequencies) that name a kind of shape.
pub fn shape_words(kind: ShapeKind) -> &'static [(&'static str, usize)] {
    match kind {
        ShapeKind::Circle => &[("circle", 3), ("disc", 1), ("round shape", 1)],
        ShapeKind::Square => &[("square", 3), ("box", 1)],
        ShapeKind::Triangle => &[("triangle", 3), ("triangular shape", 1)],
        ShapeKind::Star => &[("star", 3), ("five pointed star", 1)],
        ShapeKind::Cross => &[("cross", 3), ("plus sign", 1)],
        ShapeKind::Diamond => &[("diamond", 1)],
    }
}

/// The words (with relative frequencies) that name a background colour.
pub fn background_words(colour: Colour) -> &'static [(&'static str, usize)] {
    match colour {
        Colour::Black => &[("black", 3), ("dark", 1)],
        Colour::White => &[("white", 3), ("light", 1)],
        Colour::Gray => &[("gray", 3), ("grey", 1)],
        // Shape colours are not used as backgrounds; name them plainly should that change.
        Colour::Red => &[("red", 1)],
        Colour::Green => &[("green", 1)],
        Colour::Blue => &[("blue", 1)],
        Colour::Yellow => &[("yellow", 1)],
        Colour::Purple => &[("purple", 1)],
        Colour::Orange => &[("orange", 1)],
        Colour::Pink => &[("pink", 1)],
    }
}

/// The words (with relative frequencies) that name a size class.
pub fn size_words(size: Size) -> &'static [(&'static str, usize)] {
    match size {
        Size::Big => &[("large", 1), ("big", 1)],
        Size::Small => &[("small", 1), ("little", 1)],
    }
}

/// The five captions of `scene`, raw (capitalised, with punctuation), as a person would write
/// them; the cleaner lowercases them and strips the punctuation.
pub fn captions(scene: &Scene, rng: &mut impl RngCore) -> [String; PER_IMAGE] {
    let texts = match &scene.objects {
        Objects::One(shape) => one_shape(shape, scene.background, rng),
        Objects::Two { left, right } => two_shapes(left, right, scene.background, rng),
        Objects::Grid(shapes) => grid_shapes(shapes, scene.background, rng),
    };
    texts.map(|text| sentence(&text))
}

fn one_shape(shape: &Shape, bg: Colour, rng: &mut dyn RngCore) -> [String; PER_IMAGE] {
    let sized = |rng: &mut dyn RngCore| article(&noun_phrase(shape, true, rng));
    let first = format!("{} on {}", sized(rng), backdrop(bg, rng));
    let second = format!(
        "{} on {}",
        article(&noun_phrase(shape, false, rng)),
        backdrop(bg, rng)
    );
    let third = format!(
        "one {} against {}",
        noun_phrase(shape, true, rng),
        bg_word(bg, rng)
    );
    let opening = weighted(rng, &[("there is", 1), ("the picture shows", 1)]);
    let fourth = format!(
        "{opening} {} on a plain {} {}",
        sized(rng),
        bg_word(bg, rng),
        bg_noun(rng)
    );
    let fifth = format!("{} with {}", backdrop(bg, rng), sized(rng));
    [first, second, third, fourth, fifth]
}

fn two_shapes(
    left: &Shape,
    right: &Shape,
    bg: Colour,
    rng: &mut dyn RngCore,
) -> [String; PER_IMAGE] {
    // A fixed order (by colour), so these captions do not depend on where the shapes are.
    let (a, b) = if left.colour <= right.colour {
        (left, right)
    } else {
        (right, left)
    };
    let np = |shape: &Shape, rng: &mut dyn RngCore| article(&noun_phrase(shape, false, rng));
    let first = format!("{} and {} on {}", np(a, rng), np(b, rng), backdrop(bg, rng));
    let two = weighted(rng, &[("two shapes", 1), ("two objects", 1)]);
    let second = format!(
        "{two}, {} and {}, on {}",
        np(a, rng),
        np(b, rng),
        bg_word(bg, rng)
    );
    let third = if chance(rng, 1, 2) {
        format!("{} to the right of {}", np(right, rng), np(left, rng))
    } else {
        format!("{} to the left of {}", np(left, rng), np(right, rng))
    };
    let third = format!("{third} on {}", backdrop(bg, rng));
    let beside = weighted(rng, &[("next to", 1), ("beside", 1)]);
    let fourth = format!(
        "{} {beside} {} against a plain {} {}",
        np(a, rng),
        np(b, rng),
        bg_word(bg, rng),
        bg_noun(rng)
    );
    let fifth = format!(
        "{} with {} and {}",
        backdrop(bg, rng),
        np(a, rng),
        np(b, rng)
    );
    [first, second, third, fourth, fifth]
}

/// Every template names the shapes in the same (reading) order, so that only a model that
/// knows where each shape is can get the order right.
fn grid_shapes(shapes: &[Shape], bg: Colour, rng: &mut dyn RngCore) -> [String; PER_IMAGE] {
    let list = |shapes: &[Shape], rng: &mut dyn RngCore| {
        let phrases: Vec<String> = shapes
            .iter()
            .map(|shape| article(&noun_phrase(shape, false, rng)))
            .collect();
        enumeration(&phrases)
    };
    let first = format!("{} on {}", list(shapes, rng), backdrop(bg, rng));
    let count = if shapes.len() == 3 { "three" } else { "four" };
    let small = weighted(rng, size_words(Size::Small));
    let things = weighted(rng, &[("shapes", 1), ("objects", 1)]);
    let second = format!(
        "{count} {small} {things}, {}, on {}",
        list(shapes, rng),
        bg_word(bg, rng)
    );
    let opening = weighted(rng, &[("there is", 1), ("the picture shows", 1)]);
    let head = article(&noun_phrase(&shapes[0], false, rng));
    let beside = weighted(rng, &[("next to", 1), ("beside", 1)]);
    let third = format!(
        "{opening} {head} {beside} {} against a plain {} {}",
        list(&shapes[1..], rng),
        bg_word(bg, rng),
        bg_noun(rng)
    );
    let fourth = format!(
        "from the top left, {} on {}",
        list(shapes, rng),
        backdrop(bg, rng)
    );
    let fifth = format!("{} with {}", backdrop(bg, rng), list(shapes, rng));
    [first, second, third, fourth, fifth]
}

/// "a, b and c".
fn enumeration(phrases: &[String]) -> String {
    match phrases {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// `[size] colour shape`, e.g. "large red circle".
fn noun_phrase(shape: &Shape, with_size: bool, rng: &mut dyn RngCore) -> String {
    let size = if with_size {
        format!("{} ", weighted(rng, size_words(shape.size)))
    } else {
        String::new()
    };
    let noun = weighted(rng, shape_words(shape.kind));
    format!("{size}{} {noun}", shape.colour.name())
}

fn bg_word(colour: Colour, rng: &mut dyn RngCore) -> &'static str {
    weighted(rng, background_words(colour))
}

/// "background", now and then "backdrop".
fn bg_noun(rng: &mut dyn RngCore) -> &'static str {
    weighted(rng, &[("background", 4), ("backdrop", 1)])
}

/// "a black background", "a dark backdrop", ...
fn backdrop(colour: Colour, rng: &mut dyn RngCore) -> String {
    let word = bg_word(colour, rng);
    format!("{} {}", article(word), bg_noun(rng))
}

/// "a red ..." / "an orange ...".
fn article(phrase: &str) -> String {
    let vowel = phrase.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {phrase}", if vowel { "an" } else { "a" })
}

/// Capitalises the first letter and ends with a full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use contracts::config::TokenizerConfig;
    use contracts::text::clean_caption;

    use super::*;
    use crate::random::image_rng;
    use crate::scene::{SHAPE_COLOURS, sample_scene, sample_small_shapes};

    fn samples(n: usize) -> Vec<(Scene, [String; PER_IMAGE])> {
        (0..n)
            .map(|i| {
                let mut rng = image_rng(3, i);
                let scene = sample_scene(&mut rng, 256);
                let captions = captions(&scene, &mut rng);
                (scene, captions)
            })
            .collect()
    }

    /// Small-shapes scenes and their captions.
    fn grid_samples(n: usize) -> Vec<(Scene, [String; PER_IMAGE])> {
        (0..n)
            .map(|i| {
                let mut rng = image_rng(4, i);
                let scene = sample_small_shapes(&mut rng, 256);
                let captions = captions(&scene, &mut rng);
                (scene, captions)
            })
            .collect()
    }

    /// Whether `clean` holds one of `words` as whole words.
    fn mentions(clean: &str, words: &[(&str, usize)]) -> bool {
        let padded = format!(" {clean} ");
        words
            .iter()
            .any(|(w, _)| padded.contains(&format!(" {w} ")))
    }

    #[test]
    fn every_caption_names_the_scene() {
        for (scene, captions) in samples(400).into_iter().chain(grid_samples(200)) {
            let shapes = scene.shapes();
            for caption in &captions {
                let clean = clean_caption(caption);
                let tokens: BTreeSet<&str> = clean.split(' ').collect();
                for shape in &shapes {
                    assert!(
                        tokens.contains(shape.colour.name()),
                        "{caption:?} {scene:?}"
                    );
                    assert!(
                        mentions(&clean, shape_words(shape.kind)),
                        "{caption:?} {scene:?}"
                    );
                }
                assert!(
                    mentions(&clean, background_words(scene.background)),
                    "{caption:?} {scene:?}"
                );
                // No colour that is not in the picture.
                for colour in SHAPE_COLOURS {
                    if shapes.iter().all(|s| s.colour != colour) {
                        assert!(!tokens.contains(colour.name()), "{caption:?} {scene:?}");
                    }
                }
                // A size word, where there is one, is the right one.
                for size in [Size::Big, Size::Small] {
                    if mentions(&clean, size_words(size)) {
                        assert!(
                            shapes.iter().all(|s| s.size == size),
                            "{caption:?} {scene:?}"
                        );
                    }
                }
                // No other kind of shape is named.
                for kind in crate::scene::SHAPE_KINDS {
                    if shapes.iter().all(|s| s.kind != kind) {
                        assert!(
                            !mentions(&clean, shape_words(kind)),
                            "{caption:?} {scene:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn single_shapes_are_sized_in_four_captions() {
        for (scene, captions) in samples(200) {
            if let Objects::One(shape) = scene.objects {
                let sized = captions
                    .iter()
                    .filter(|c| mentions(&clean_caption(c), size_words(shape.size)))
                    .count();
                assert_eq!(sized, 4, "{captions:?}");
            }
        }
    }

    #[test]
    fn the_spatial_caption_is_true() {
        for (scene, captions) in samples(300) {
            if let Objects::Two { left, right } = scene.objects {
                let clean = clean_caption(&captions[2]);
                let (first, second) = if clean.contains("to the right of") {
                    (right, left)
                } else {
                    (left, right)
                };
                assert!(
                    clean.contains("to the left of") || clean.contains("to the right of"),
                    "{clean}"
                );
                let at = |shape: &Shape| clean.find(shape.colour.name()).unwrap();
                assert!(at(&first) < at(&second), "{clean} {scene:?}");
            }
        }
    }

    #[test]
    fn grid_captions_name_every_shape_in_reading_order() {
        for (scene, captions) in grid_samples(400) {
            let shapes = scene.shapes();
            for caption in &captions {
                let padded = format!(" {} ", clean_caption(caption));
                // Where "colour kind" of each shape starts; the colours differ, so each is
                // found once.
                let at: Vec<usize> = shapes
                    .iter()
                    .map(|shape| {
                        shape_words(shape.kind)
                            .iter()
                            .find_map(|(w, _)| {
                                padded.find(&format!(" {} {w} ", shape.colour.name()))
                            })
                            .unwrap_or_else(|| panic!("{caption:?} misses {shape:?}"))
                    })
                    .collect();
                assert!(at.windows(2).all(|w| w[0] < w[1]), "{caption:?} {scene:?}");
                let colours = padded
                    .split(' ')
                    .filter(|t| SHAPE_COLOURS.iter().any(|c| c.name() == *t))
                    .count();
                assert_eq!(colours, shapes.len(), "{caption:?}");
            }
        }
    }

    #[test]
    fn grid_captions_fit_the_tokenizer() {
        // Four shapes with the longest name: every caption of them, with every synonym drawn.
        let star = |x| Shape {
            kind: ShapeKind::Star,
            colour: SHAPE_COLOURS[x as usize],
            size: Size::Small,
            x: 10 + 60 * x,
            y: 10,
            extent: 40,
        };
        let scene = Scene {
            background: Colour::Gray,
            objects: Objects::Grid((0..4).map(star).collect()),
        };
        let max_len = TokenizerConfig::default().max_len;
        let mut longest = [0; PER_IMAGE];
        for i in 0..2000 {
            for (k, caption) in captions(&scene, &mut image_rng(5, i)).iter().enumerate() {
                let words = clean_caption(caption).split(' ').count();
                assert!(words <= max_len, "{words} words: {caption:?}");
                longest[k] = longest[k].max(words);
            }
        }
        // The longest of each template: the loop did reach the worst case.
        assert_eq!(longest, [25, 26, 31, 29, 25]);
    }

    #[test]
    fn five_distinct_captions_per_image() {
        for (_, captions) in samples(400).into_iter().chain(grid_samples(400)) {
            let distinct: BTreeSet<String> = captions.iter().map(|c| clean_caption(c)).collect();
            assert_eq!(distinct.len(), PER_IMAGE, "{captions:?}");
        }
    }

    #[test]
    fn captions_read_as_sentences() {
        let all: Vec<_> = samples(100).into_iter().chain(grid_samples(100)).collect();
        assert!(
            all.iter()
                .flat_map(|(_, c)| c)
                .all(|c| c.starts_with(char::is_uppercase) && c.ends_with('.'))
        );
        assert!(
            all.iter()
                .flat_map(|(_, c)| c)
                .any(|c| c.contains("an orange"))
        );
        assert!(
            !all.iter()
                .flat_map(|(_, c)| c)
                .any(|c| c.contains("a orange"))
        );
    }

    #[test]
    fn vocabulary_is_moderate() {
        let vocabulary: BTreeSet<String> = samples(1000)
            .iter()
            .flat_map(|(_, c)| c.iter().map(|c| clean_caption(c)).collect::<Vec<_>>())
            .flat_map(|c| c.split(' ').map(str::to_string).collect::<Vec<_>>())
            .collect();
        assert!(
            (40..=120).contains(&vocabulary.len()),
            "{} words: {vocabulary:?}",
            vocabulary.len()
        );
    }
}
