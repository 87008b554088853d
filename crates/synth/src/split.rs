//! The seeded 80/10/10 train/dev/test split, by image, written as the list files the
//! original Flickr8k release ships (so the cleaner reads it like the real thing).

use contracts::Split;

use crate::random::{shuffle, split_rng};

/// Each split's list file, named as in the Flickr8k release ("dev" is the `val` split).
pub const LIST_FILES: [(Split, &str); 3] = [
    (Split::Train, "Flickr_8k.trainImages.txt"),
    (Split::Val, "Flickr_8k.devImages.txt"),
    (Split::Test, "Flickr_8k.testImages.txt"),
];

/// The split of each of `n` images: a seeded shuffle, then 10% (rounded) to dev, 10% to test
/// and the rest to train.
pub fn assign(n: usize, seed: u64) -> Vec<Split> {
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut split_rng(seed), &mut order);
    let tenth = (n + 5) / 10;
    let mut splits = vec![Split::Train; n];
    for &i in &order[..tenth] {
        splits[i] = Split::Val;
    }
    for &i in &order[tenth..2 * tenth] {
        splits[i] = Split::Test;
    }
    splits
}

/// Images per split, in the order of [`Split::ALL`].
pub fn counts(splits: &[Split]) -> [usize; 3] {
    Split::ALL.map(|s| splits.iter().filter(|&&x| x == s).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportions_are_80_10_10() {
        assert_eq!(counts(&assign(1500, 7)), [1200, 150, 150]);
        assert_eq!(counts(&assign(20, 7)), [16, 2, 2]);
        assert_eq!(counts(&assign(1, 7)), [1, 0, 0]);
        assert_eq!(counts(&assign(0, 7)), [0, 0, 0]);
    }

    #[test]
    fn split_is_seeded() {
        assert_eq!(assign(200, 1), assign(200, 1));
        assert_ne!(assign(200, 1), assign(200, 2));
        // Shuffled: dev and test are not a cut at the end (or start) of the list.
        let splits = assign(200, 1);
        assert!(splits[..160].contains(&Split::Val) && splits[..160].contains(&Split::Test));
        assert!(splits[40..].contains(&Split::Val) && splits[40..].contains(&Split::Test));
    }
}
