//! What one synthetic image shows: one large shape, or two shapes side by side, in saturated
//! colours on a plain background.
//!
//! The attributes are chosen so that a ResNet50 (even an untrained one) separates them well:
//! shapes are large (a "small" one still spans 35-42% of the image side, a "big" one 60-75%),
//! colours are saturated and far apart, and backgrounds are neutral and never the colour of a
//! shape on them. Two shapes sit left and right of the middle with a gap, so they never
//! touch. Every shape keeps a margin of 6% of the side from the edges, about what the
//! featurizer's 224-of-256 centre crop removes.
//!
//! The `small-shapes` scene ([`sample_small_shapes`]) is the opposite on purpose: three or
//! four shapes of 16-22% of the side, each in its own cell of a 3x3 layout, so that naming
//! them in order needs to know where each one is, which a pooled feature vector barely does
//! and a 7x7 feature grid can.

use rand::RngCore;

use crate::random::{between, chance, pick, shuffle};

/// A colour used for shapes or backgrounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Colour {
    Red,
    Green,
    Blue,
    Yellow,
    Purple,
    Orange,
    Pink,
    Black,
    White,
    Gray,
}

/// Colours a shape can have.
pub const SHAPE_COLOURS: [Colour; 7] = [
    Colour::Red,
    Colour::Green,
    Colour::Blue,
    Colour::Yellow,
    Colour::Purple,
    Colour::Orange,
    Colour::Pink,
];

/// Colours a background can have.
pub const BACKGROUNDS: [Colour; 3] = [Colour::Black, Colour::White, Colour::Gray];

impl Colour {
    /// The exact pixel value.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [230, 30, 30],
            Colour::Green => [30, 190, 40],
            Colour::Blue => [30, 70, 235],
            Colour::Yellow => [250, 225, 20],
            Colour::Purple => [145, 40, 200],
            Colour::Orange => [255, 135, 10],
            Colour::Pink => [255, 110, 190],
            Colour::Black => [0, 0, 0],
            Colour::White => [255, 255, 255],
            Colour::Gray => [128, 128, 128],
        }
    }

    /// The colour's name, as captions use it for a shape.
    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Purple => "purple",
            Colour::Orange => "orange",
            Colour::Pink => "pink",
            Colour::Black => "black",
            Colour::White => "white",
            Colour::Gray => "gray",
        }
    }
}

/// The kind of a shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShapeKind {
    Circle,
    Square,
    Triangle,
    Star,
    Cross,
    Diamond,
}

/// Every kind of shape.
pub const SHAPE_KINDS: [ShapeKind; 6] = [
    ShapeKind::Circle,
    ShapeKind::Square,
    ShapeKind::Triangle,
    ShapeKind::Star,
    ShapeKind::Cross,
    ShapeKind::Diamond,
];

/// A shape's size class, as captions name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// 60-75% of the image side.
    Big,
    /// 35-42% of the image side (16-22% in a small-shapes scene).
    Small,
}

/// Size range of each class, in percent of the image side.
const BIG_PERCENT: (i32, i32) = (60, 75);
const SMALL_PERCENT: (i32, i32) = (35, 42);
/// Size range of the shapes of a small-shapes scene, in percent of the image side.
const GRID_SHAPE_PERCENT: (i32, i32) = (16, 22);
/// Cells per row and per column of a small-shapes scene.
const GRID: i32 = 3;
/// Distance kept from the image edges, in percent of the side.
const MARGIN_PERCENT: i32 = 6;
/// Smallest gap between the boxes of two shapes (side by side, or in neighbouring cells), in
/// percent of the side.
const GAP_PERCENT: i32 = 4;
/// Chance of a two-shape scene, as numerator / denominator.
const TWO_SHAPES_CHANCE: (usize, usize) = (3, 10);

/// Smallest image side the geometry supports.
pub const MIN_IMAGE_SIZE: u32 = 32;

/// One shape: its kind and colour, and the square box (in pixels) it is drawn inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub kind: ShapeKind,
    pub colour: Colour,
    pub size: Size,
    /// Left edge of the box.
    pub x: i32,
    /// Top edge of the box.
    pub y: i32,
    /// Side of the box; the shape touches or nearly touches each of its edges.
    pub extent: i32,
}

/// Geometry the tests check the drawing against.
#[cfg(test)]
impl Shape {
    /// The centre of the box; every kind of shape covers it.
    pub fn centre(&self) -> (i32, i32) {
        (self.x + self.extent / 2, self.y + self.extent / 2)
    }

    /// Whether pixel `(px, py)` lies inside the box.
    pub fn box_contains(&self, px: i32, py: i32) -> bool {
        (self.x..self.x + self.extent).contains(&px) && (self.y..self.y + self.extent).contains(&py)
    }
}

/// What an image holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Objects {
    One(Shape),
    /// Two shapes of different colours, side by side.
    Two {
        left: Shape,
        right: Shape,
    },
    /// Three or four small shapes of different colours in distinct cells of a 3x3 layout, in
    /// reading order (rows top to bottom, each left to right).
    Grid(Vec<Shape>),
}

/// Everything drawn in one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scene {
    pub background: Colour,
    pub objects: Objects,
}

impl Scene {
    /// The shapes, left to right (a grid's in reading order).
    pub fn shapes(&self) -> Vec<Shape> {
        match &self.objects {
            Objects::One(shape) => vec![*shape],
            Objects::Two { left, right } => vec![*left, *right],
            Objects::Grid(shapes) => shapes.clone(),
        }
    }
}

/// Draws a scene's attributes for an image of `side` x `side` pixels (`side >= MIN_IMAGE_SIZE`).
///
/// The order of the draws defines the dataset: changing it changes every image of a seed.
pub fn sample_scene(rng: &mut impl RngCore, side: u32) -> Scene {
    let side = side as i32;
    let margin = (side * MARGIN_PERCENT / 100).max(1);
    let objects = if chance(rng, TWO_SHAPES_CHANCE.0, TWO_SHAPES_CHANCE.1) {
        let gap = (side * GAP_PERCENT / 100).max(2);
        let left_colour = pick(rng, &SHAPE_COLOURS);
        let others: Vec<Colour> = SHAPE_COLOURS
            .into_iter()
            .filter(|&c| c != left_colour)
            .collect();
        let right_colour = pick(rng, &others);
        let left_kind = pick(rng, &SHAPE_KINDS);
        let right_kind = pick(rng, &SHAPE_KINDS);
        let left_extent = extent(rng, side, Size::Small);
        let right_extent = extent(rng, side, Size::Small);
        let left_x = between(rng, margin, side / 2 - gap / 2 - left_extent);
        let right_x = between(rng, side / 2 + (gap + 1) / 2, side - margin - right_extent);
        let left_y = between(rng, margin, side - margin - left_extent);
        let right_y = between(rng, margin, side - margin - right_extent);
        Objects::Two {
            left: Shape {
                kind: left_kind,
                colour: left_colour,
                size: Size::Small,
                x: left_x,
                y: left_y,
                extent: left_extent,
            },
            right: Shape {
                kind: right_kind,
                colour: right_colour,
                size: Size::Small,
                x: right_x,
                y: right_y,
                extent: right_extent,
            },
        }
    } else {
        let kind = pick(rng, &SHAPE_KINDS);
        let colour = pick(rng, &SHAPE_COLOURS);
        let size = pick(rng, &[Size::Big, Size::Small]);
        let extent = extent(rng, side, size);
        let x = between(rng, margin, side - margin - extent);
        let y = between(rng, margin, side - margin - extent);
        Objects::One(Shape {
            kind,
            colour,
            size,
            x,
            y,
            extent,
        })
    };
    with_background(rng, objects)
}

/// Draws a small-shapes scene for an image of `side` x `side` pixels (`side >=
/// MIN_IMAGE_SIZE`): 3 or 4 shapes in distinct cells of a 3x3 layout inside the margins, each
/// at a random place in its cell with a gap to the cell's right and bottom edges, so boxes
/// of neighbouring cells never touch.
pub fn sample_small_shapes(rng: &mut impl RngCore, side: u32) -> Scene {
    let side = side as i32;
    let margin = (side * MARGIN_PERCENT / 100).max(1);
    let gap = (side * GAP_PERCENT / 100).max(2);
    let cell = (side - 2 * margin) / GRID;
    let count = pick(rng, &[3, 4]);
    let mut cells: Vec<i32> = (0..GRID * GRID).collect();
    shuffle(rng, &mut cells);
    let mut cells = cells[..count].to_vec();
    cells.sort_unstable();
    let mut colours = SHAPE_COLOURS.to_vec();
    shuffle(rng, &mut colours);
    let shapes = cells
        .into_iter()
        .zip(colours)
        .map(|(index, colour)| {
            let kind = pick(rng, &SHAPE_KINDS);
            let (lo, hi) = GRID_SHAPE_PERCENT;
            let extent = between(rng, side * lo / 100, side * hi / 100).min(cell - gap);
            let (left, top) = (margin + index % GRID * cell, margin + index / GRID * cell);
            let x = between(rng, left, left + cell - gap - extent);
            let y = between(rng, top, top + cell - gap - extent);
            Shape {
                kind,
                colour,
                size: Size::Small,
                x,
                y,
                extent,
            }
        })
        .collect();
    with_background(rng, Objects::Grid(shapes))
}

/// The scene of `objects` on a background none of them has.
fn with_background(rng: &mut impl RngCore, objects: Objects) -> Scene {
    let scene = Scene {
        background: Colour::Black,
        objects,
    };
    let free: Vec<Colour> = BACKGROUNDS
        .into_iter()
        .filter(|bg| scene.shapes().iter().all(|s| s.colour != *bg))
        .collect();
    Scene {
        background: pick(rng, &free),
        ..scene
    }
}

/// The side of a shape's box for a size class.
fn extent(rng: &mut impl RngCore, side: i32, size: Size) -> i32 {
    let (lo, hi) = match size {
        Size::Big => BIG_PERCENT,
        Size::Small => SMALL_PERCENT,
    };
    between(rng, side * lo / 100, side * hi / 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::image_rng;

    fn scenes(side: u32, n: usize) -> Vec<Scene> {
        (0..n)
            .map(|i| sample_scene(&mut image_rng(11, i), side))
            .collect()
    }

    #[test]
    fn shapes_stay_inside_the_margins_and_sizes() {
        for side in [MIN_IMAGE_SIZE, 64, 100, 256, 301] {
            let s = side as i32;
            for scene in scenes(side, 300) {
                for shape in scene.shapes() {
                    assert!(shape.x >= 1 && shape.y >= 1, "{side}: {shape:?}");
                    assert!(
                        shape.x + shape.extent < s && shape.y + shape.extent < s,
                        "{side}: {shape:?}"
                    );
                    let percent = shape.extent * 100 / s;
                    let (lo, hi) = if shape.size == Size::Big {
                        BIG_PERCENT
                    } else {
                        SMALL_PERCENT
                    };
                    assert!((lo - 1..=hi).contains(&percent), "{side}: {shape:?}");
                }
            }
        }
    }

    #[test]
    fn two_shapes_never_overlap() {
        for side in [MIN_IMAGE_SIZE, 64, 256, 257] {
            let mut pairs = 0;
            for scene in scenes(side, 400) {
                if let Objects::Two { left, right } = scene.objects {
                    pairs += 1;
                    // The boxes are separated by a gap (each shape lies inside its box).
                    let gap = right.x - (left.x + left.extent);
                    assert!(gap >= 2, "{side}: {left:?} {right:?}");
                    assert_eq!(left.size, Size::Small);
                    assert_eq!(right.size, Size::Small);
                    assert_ne!(left.colour, right.colour);
                }
            }
            assert!(pairs > 60, "{pairs} two-shape scenes of 400");
        }
    }

    fn grids(side: u32, n: usize) -> Vec<Scene> {
        (0..n)
            .map(|i| sample_small_shapes(&mut image_rng(11, i), side))
            .collect()
    }

    #[test]
    fn small_shapes_are_three_or_four_in_distinct_cells_in_reading_order() {
        for side in [MIN_IMAGE_SIZE, 64, 100, 256, 301] {
            let s = side as i32;
            let margin = (s * MARGIN_PERCENT / 100).max(1);
            let cell = (s - 2 * margin) / GRID;
            let mut counts = [0usize; 2];
            let mut used = [false; 9];
            for scene in grids(side, 300) {
                let Objects::Grid(shapes) = &scene.objects else {
                    panic!("{scene:?}");
                };
                assert!((3..=4).contains(&shapes.len()), "{scene:?}");
                counts[shapes.len() - 3] += 1;
                let mut cells = Vec::new();
                for shape in shapes {
                    assert_eq!(shape.size, Size::Small);
                    assert!(shape.x >= 1 && shape.y >= 1, "{side}: {shape:?}");
                    assert!(
                        shape.x + shape.extent < s && shape.y + shape.extent < s,
                        "{side}: {shape:?}"
                    );
                    let percent = shape.extent * 100 / s;
                    let (lo, hi) = GRID_SHAPE_PERCENT;
                    assert!((lo - 1..=hi).contains(&percent), "{side}: {shape:?}");
                    // The whole box lies in one cell of the 3x3 layout.
                    let (col, row) = ((shape.x - margin) / cell, (shape.y - margin) / cell);
                    assert!((0..GRID).contains(&col) && (0..GRID).contains(&row));
                    let (left, top) = (margin + col * cell, margin + row * cell);
                    assert!(shape.x + shape.extent <= left + cell, "{side}: {shape:?}");
                    assert!(shape.y + shape.extent <= top + cell, "{side}: {shape:?}");
                    cells.push(row * GRID + col);
                    used[(row * GRID + col) as usize] = true;
                }
                // Distinct cells, in reading order: rows top to bottom, each left to right.
                assert!(cells.windows(2).all(|w| w[0] < w[1]), "{cells:?}");
                for (i, a) in shapes.iter().enumerate() {
                    for b in &shapes[i + 1..] {
                        let apart_x = b.x >= a.x + a.extent + 2 || a.x >= b.x + b.extent + 2;
                        let apart_y = b.y >= a.y + a.extent + 2 || a.y >= b.y + b.extent + 2;
                        assert!(apart_x || apart_y, "{side}: {a:?} {b:?} overlap or touch");
                        assert_ne!(a.colour, b.colour);
                    }
                }
            }
            assert!(counts.iter().all(|&c| c > 100), "{counts:?}");
            assert!(used.iter().all(|&u| u), "{used:?}");
        }
    }

    #[test]
    fn small_shapes_use_every_kind_colour_and_background() {
        let all = grids(256, 300);
        let shapes: Vec<Shape> = all.iter().flat_map(Scene::shapes).collect();
        for kind in SHAPE_KINDS {
            assert!(shapes.iter().any(|s| s.kind == kind), "{kind:?}");
        }
        for colour in SHAPE_COLOURS {
            assert!(shapes.iter().any(|s| s.colour == colour), "{colour:?}");
        }
        for bg in BACKGROUNDS {
            assert!(all.iter().any(|s| s.background == bg), "{bg:?}");
        }
    }

    #[test]
    fn background_differs_from_every_shape() {
        for scene in scenes(256, 500).into_iter().chain(grids(256, 200)) {
            assert!(BACKGROUNDS.contains(&scene.background));
            for shape in scene.shapes() {
                assert_ne!(shape.colour, scene.background);
                assert!(SHAPE_COLOURS.contains(&shape.colour));
            }
        }
    }

    #[test]
    fn every_attribute_value_occurs() {
        let all = scenes(256, 500);
        let shapes: Vec<Shape> = all.iter().flat_map(Scene::shapes).collect();
        for kind in SHAPE_KINDS {
            assert!(shapes.iter().any(|s| s.kind == kind), "{kind:?}");
        }
        for colour in SHAPE_COLOURS {
            assert!(shapes.iter().any(|s| s.colour == colour), "{colour:?}");
        }
        for bg in BACKGROUNDS {
            assert!(all.iter().any(|s| s.background == bg), "{bg:?}");
        }
        assert!(shapes.iter().any(|s| s.size == Size::Big));
    }
}
