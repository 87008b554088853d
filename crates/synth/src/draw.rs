//! Renders a [`Scene`] to pixels with imageproc's filled-shape drawing (no anti-aliasing, so
//! every pixel is exactly the background or a shape colour).
//!
//! Geometry uses integers and a fixed table for the star's vertices (no `sin`/`cos` at run
//! time), so the pixels do not depend on the platform's maths library.

use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_filled_rect_mut, draw_polygon_mut};
use imageproc::point::Point;
use imageproc::rect::Rect;

use crate::scene::{Scene, Shape, ShapeKind};

/// Unit vectors of a five-pointed star's vertices, clockwise from the top point: outer
/// points at -90 + 72k degrees, inner points halfway between (cos/sin of multiples of 18 deg).
const STAR_DIRECTIONS: [(f64, f64); 10] = [
    (0.0, -1.0),
    (0.587_785_252_292, -0.809_016_994_375),
    (0.951_056_516_295, -0.309_016_994_375),
    (0.951_056_516_295, 0.309_016_994_375),
    (0.587_785_252_292, 0.809_016_994_375),
    (0.0, 1.0),
    (-0.587_785_252_292, 0.809_016_994_375),
    (-0.951_056_516_295, 0.309_016_994_375),
    (-0.951_056_516_295, -0.309_016_994_375),
    (-0.587_785_252_292, -0.809_016_994_375),
];

/// Inner radius of the star over its outer radius (0.38 is the regular star; a little fatter
/// reads better at low resolution).
const STAR_INNER: f64 = 0.45;

/// Thickness of a cross's arms over the side of its box.
const CROSS_ARM: (i32, i32) = (1, 3);

/// Draws `scene` on a `side` x `side` image.
pub fn render(scene: &Scene, side: u32) -> RgbImage {
    let mut image = RgbImage::from_pixel(side, side, Rgb(scene.background.rgb()));
    for shape in scene.shapes() {
        draw_shape(&mut image, &shape);
    }
    image
}

/// Draws one shape inside its box.
fn draw_shape(image: &mut RgbImage, shape: &Shape) {
    let colour = Rgb(shape.colour.rgb());
    let (x, y, e) = (shape.x, shape.y, shape.extent);
    let last = e - 1; // offset of the box's last pixel row / column
    match shape.kind {
        ShapeKind::Circle => {
            let radius = last / 2;
            draw_filled_circle_mut(image, (x + radius, y + radius), radius, colour);
        }
        ShapeKind::Square => {
            draw_filled_rect_mut(image, Rect::at(x, y).of_size(e as u32, e as u32), colour);
        }
        ShapeKind::Triangle => {
            let points = [
                Point::new(x + last / 2, y),
                Point::new(x + last, y + last),
                Point::new(x, y + last),
            ];
            draw_polygon_mut(image, &points, colour);
        }
        ShapeKind::Star => {
            let outer = f64::from(last) / 2.0;
            let cx = f64::from(x) + outer;
            // The points reach 0.81 of the radius downwards: move the star down by half the
            // difference so it sits in the middle of its box.
            let cy = f64::from(y) + outer * (1.0 + (1.0 - 0.809_016_994_375) / 2.0);
            let points: Vec<Point<i32>> = STAR_DIRECTIONS
                .iter()
                .enumerate()
                .map(|(k, &(dx, dy))| {
                    let r = if k % 2 == 0 {
                        outer
                    } else {
                        outer * STAR_INNER
                    };
                    Point::new((cx + r * dx).round() as i32, (cy + r * dy).round() as i32)
                })
                .collect();
            draw_polygon_mut(image, &points, colour);
        }
        ShapeKind::Diamond => {
            let (mid, end) = (last / 2, last);
            let points = [
                Point::new(x + mid, y),
                Point::new(x + end, y + mid),
                Point::new(x + mid, y + end),
                Point::new(x, y + mid),
            ];
            draw_polygon_mut(image, &points, colour);
        }
        ShapeKind::Cross => {
            let arm = (e * CROSS_ARM.0 / CROSS_ARM.1).max(1);
            let offset = (e - arm) / 2;
            draw_filled_rect_mut(
                image,
                Rect::at(x, y + offset).of_size(e as u32, arm as u32),
                colour,
            );
            draw_filled_rect_mut(
                image,
                Rect::at(x + offset, y).of_size(arm as u32, e as u32),
                colour,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::image_rng;
    use crate::scene::{Colour, Objects, SHAPE_KINDS, Size, sample_scene, sample_small_shapes};

    fn pixel(image: &RgbImage, (x, y): (i32, i32)) -> [u8; 3] {
        image.get_pixel(x as u32, y as u32).0
    }

    #[test]
    fn centre_has_the_shape_colour_and_corners_the_background() {
        for side in [32u32, 64, 256] {
            for i in 0..200 {
                let scene = if i % 2 == 0 {
                    sample_scene(&mut image_rng(5, i), side)
                } else {
                    sample_small_shapes(&mut image_rng(5, i), side)
                };
                let image = render(&scene, side);
                for shape in scene.shapes() {
                    assert_eq!(
                        pixel(&image, shape.centre()),
                        shape.colour.rgb(),
                        "{side} {scene:?}"
                    );
                }
                let s = side as i32 - 1;
                for corner in [(0, 0), (s, 0), (0, s), (s, s)] {
                    assert_eq!(
                        pixel(&image, corner),
                        scene.background.rgb(),
                        "{side} {scene:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn shapes_paint_only_inside_their_boxes() {
        // A pixel outside every box is background; inside a box it is the background or that
        // shape's colour. Together with the gap between boxes: two shapes never overlap.
        for i in 0..60 {
            let side = 96;
            let scene = if i % 2 == 0 {
                sample_scene(&mut image_rng(9, i), side)
            } else {
                sample_small_shapes(&mut image_rng(9, i), side)
            };
            let image = render(&scene, side);
            let shapes = scene.shapes();
            let mut painted = vec![0usize; shapes.len()];
            for (px, py, p) in image.enumerate_pixels() {
                let (px, py) = (px as i32, py as i32);
                match shapes.iter().position(|s| s.box_contains(px, py)) {
                    Some(k) => {
                        assert!(p.0 == scene.background.rgb() || p.0 == shapes[k].colour.rgb());
                        painted[k] += usize::from(p.0 == shapes[k].colour.rgb());
                    }
                    None => assert_eq!(p.0, scene.background.rgb(), "({px},{py}) {scene:?}"),
                }
            }
            for (shape, count) in shapes.iter().zip(painted) {
                // Every kind covers a good part of its box (the star, the thinnest, about 1/3).
                let area = (shape.extent * shape.extent) as usize;
                assert!(
                    count * 4 > area,
                    "{shape:?} covers {count} of {area} pixels"
                );
            }
        }
    }

    #[test]
    fn every_kind_draws_something_distinct() {
        let side = 128;
        let mut images = Vec::new();
        for kind in SHAPE_KINDS {
            let shape = crate::scene::Shape {
                kind,
                colour: Colour::Red,
                size: Size::Big,
                x: 20,
                y: 20,
                extent: 88,
            };
            let scene = Scene {
                background: Colour::White,
                objects: Objects::One(shape),
            };
            images.push(render(&scene, side));
        }
        for a in 0..images.len() {
            for b in a + 1..images.len() {
                assert_ne!(
                    images[a], images[b],
                    "{:?} vs {:?}",
                    SHAPE_KINDS[a], SHAPE_KINDS[b]
                );
            }
        }
    }
}
