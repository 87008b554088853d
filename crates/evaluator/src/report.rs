//! `eval/report.html`: one self-contained page (no external files) with the metrics table, the
//! training loss curve, and galleries of the best and worst test images by CIDEr-D, each with
//! its thumbnail, generated caption and references. Every caption is escaped: dataset text is
//! never markup.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use base64::Engine;
use html_escape::encode_text;

use crate::score::{METRIC_KEYS, MetricsReport};

/// Thumbnail width in pixels.
const THUMB_WIDTH: u32 = 192;

/// One image in a gallery.
pub struct Example {
    pub image: String,
    pub caption: String,
    pub references: Vec<String>,
    pub cider_d: f64,
}

/// What the page shows.
pub struct Report<'a> {
    pub title: String,
    pub metrics: &'a MetricsReport,
    /// The trainer's loss curve (an SVG document), if there is one.
    pub loss_svg: Option<String>,
    pub best: Vec<Example>,
    pub worst: Vec<Example>,
    /// Where the images are, for thumbnails (none: captions only).
    pub image_dir: Option<PathBuf>,
    /// The attention model's weights, for the attention figures of the gallery images.
    pub attention: Option<Attention>,
}

/// Where an attention model looked, per image and word.
pub struct Attention {
    /// `(height, width)` of the grid.
    pub grid: (usize, usize),
    /// Each image's words with their weights.
    pub words: BTreeMap<String, Vec<(String, Vec<f32>)>>,
    /// The encoder's `(resize, crop)`, to show the view the network had.
    pub crop: Option<(u32, u32)>,
    /// What the weights are ("its soft attention over the grid").
    pub what: &'static str,
}

/// Side of the photo in a report's attention figure.
const FIGURE_PHOTO: u32 = 160;

/// Picks the `n` best and `n` worst images by per-image CIDEr-D (ties by name, so stable).
pub fn best_and_worst(
    metrics: &MetricsReport,
    predictions: &BTreeMap<String, String>,
    references: &BTreeMap<String, Vec<String>>,
    n: usize,
) -> (Vec<Example>, Vec<Example>) {
    let mut ranked: Vec<&(String, f64)> = metrics.per_image.iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let example = |(image, cider_d): &(String, f64)| Example {
        image: image.clone(),
        caption: predictions.get(image).cloned().unwrap_or_default(),
        references: references.get(image).cloned().unwrap_or_default(),
        cider_d: *cider_d,
    };
    let n = n.min(ranked.len() / 2).max(1).min(ranked.len());
    let best = ranked.iter().take(n).map(|e| example(e)).collect();
    let worst = ranked.iter().rev().take(n).map(|e| example(e)).collect();
    (best, worst)
}

impl Report<'_> {
    pub fn to_html(&self) -> String {
        let mut html = String::new();
        let title = encode_text(&self.title);
        let _ = write!(
            html,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n"
        );
        html.push_str(&self.metrics_table());
        if let Some(svg) = &self.loss_svg {
            let _ = write!(
                html,
                "<h2>Training</h2>\n<div class=\"curve\">{}</div>\n",
                strip_xml_declaration(svg)
            );
        }
        for (heading, examples) in [
            ("Best captions (highest CIDEr-D)", &self.best),
            ("Worst captions (lowest CIDEr-D)", &self.worst),
        ] {
            let _ = write!(html, "<h2>{heading}</h2>\n<div class=\"gallery\">\n");
            for example in examples {
                html.push_str(&self.card(example));
            }
            html.push_str("</div>\n");
        }
        html.push_str(&self.attention_figures());
        html.push_str("</body></html>\n");
        html
    }

    fn metrics_table(&self) -> String {
        let mut html = String::from("<table class=\"metrics\"><tr>");
        // Only the metrics computed (METEOR is left out without its data).
        let keys = METRIC_KEYS
            .iter()
            .filter(|k| self.metrics.scores.contains_key(**k));
        for key in keys.clone() {
            let _ = write!(html, "<th>{key}</th>");
        }
        html.push_str("</tr><tr>");
        for key in keys {
            let _ = write!(html, "<td>{:.4}</td>", self.metrics.scores[*key]);
        }
        html.push_str("</tr></table>\n<p class=\"context\">");
        let _ = write!(html, "{} images", self.metrics.images);
        for (key, value) in &self.metrics.context {
            let value = value.as_str().map_or(value.to_string(), str::to_string);
            let _ = write!(
                html,
                " &middot; {}: {}",
                encode_text(key),
                encode_text(&value)
            );
        }
        html.push_str("</p>\n");
        html
    }

    fn card(&self, example: &Example) -> String {
        let thumbnail = self
            .image_dir
            .as_ref()
            .and_then(|dir| thumbnail_data_uri(&dir.join(&example.image)))
            .map(|uri| {
                format!(
                    "<img src=\"{uri}\" alt=\"{}\">",
                    html_escape::encode_double_quoted_attribute(&example.image)
                )
            })
            .unwrap_or_else(|| "<div class=\"noimg\">no image</div>".into());
        let mut refs = String::new();
        for reference in &example.references {
            let _ = write!(refs, "<li>{}</li>", encode_text(reference));
        }
        format!(
            "<figure>{thumbnail}<figcaption><b>{}</b><span class=\"score\">CIDEr-D {:.3} &middot; {}</span><ul>{refs}</ul></figcaption></figure>\n",
            encode_text(&example.caption),
            example.cider_d,
            encode_text(&example.image),
        )
    }
}

impl Report<'_> {
    /// The attention figure of every gallery image, best first.
    fn attention_figures(&self) -> String {
        let (Some(attention), Some(dir)) = (&self.attention, &self.image_dir) else {
            return String::new();
        };
        let mut html = format!(
            "<h2>Where the model looked</h2>\n<p class=\"context\">Each word of the caption with {} (brighter: more weight), for the gallery images.</p>\n",
            attention.what
        );
        for example in self.best.iter().chain(&self.worst) {
            let Some(words) = attention.words.get(&example.image) else {
                continue;
            };
            let Some(uri) = attention_figure_uri(&dir.join(&example.image), attention, words)
            else {
                continue;
            };
            let _ = writeln!(
                html,
                "<figure class=\"attention\"><img src=\"{uri}\" alt=\"attention of {}\"><figcaption>{} &middot; <b>{}</b></figcaption></figure>",
                html_escape::encode_double_quoted_attribute(&example.image),
                encode_text(&example.image),
                encode_text(&example.caption),
            );
        }
        html
    }
}

/// An image's attention figure ([`models::attention_map`]) as a JPEG `data:` URI.
fn attention_figure_uri(
    path: &Path,
    attention: &Attention,
    words: &[(String, Vec<f32>)],
) -> Option<String> {
    let image = models::preprocess::load_image(path)
        .map_err(|e| tracing::warn!("report: no attention figure: {e}"))
        .ok()?;
    let (resize, crop) = attention.crop.unwrap_or((256, 224));
    let view = models::preprocess::Preprocess::new(resize, crop).resize_and_crop(&image);
    let photo = image::imageops::resize(
        &view,
        FIGURE_PHOTO,
        FIGURE_PHOTO,
        image::imageops::FilterType::Triangle,
    );
    let words: Vec<models::attention_map::AttendedWord> = words
        .iter()
        .map(|(word, weights)| models::attention_map::AttendedWord {
            word: word.clone(),
            weights: weights.clone(),
        })
        .collect();
    let figure = models::attention_map::render(&photo, attention.grid, &words)
        .map_err(|e| tracing::warn!("report: no attention figure for {}: {e}", path.display()))
        .ok()?;
    jpeg_data_uri(figure)
}

/// A JPEG thumbnail as a `data:` URI; `None` (with a warning) when the image cannot be read.
fn thumbnail_data_uri(path: &Path) -> Option<String> {
    let image = match models::preprocess::load_image(path) {
        Ok(image) => image,
        Err(e) => {
            tracing::warn!("report: no thumbnail: {e}");
            return None;
        }
    };
    let height =
        (image.height() as u64 * THUMB_WIDTH as u64 / image.width().max(1) as u64).max(1) as u32;
    jpeg_data_uri(image::imageops::thumbnail(&image, THUMB_WIDTH, height))
}

/// `image` as a JPEG `data:` URI, for a page without external files.
fn jpeg_data_uri(image: image::RgbImage) -> Option<String> {
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Jpeg)
        .ok()?;
    Some(format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

fn strip_xml_declaration(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}\
table.metrics{border-collapse:collapse}table.metrics td,table.metrics th{border:1px solid #ccc;padding:.4em .8em;text-align:right}\
.context{color:#666}.curve svg{max-width:100%;height:auto}\
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:1em}\
figure{margin:0;border:1px solid #ddd;border-radius:6px;padding:.5em}figure img{width:100%;border-radius:4px}\
figcaption b{display:block;margin:.3em 0}.score{color:#666;font-size:.85em}figcaption ul{padding-left:1.2em;font-size:.85em;color:#444}\
.attention{margin:1em 0}.attention img{width:auto;max-width:100%}.noimg{height:120px;background:#eee;display:flex;align-items:center;justify-content:center;color:#999}";

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> MetricsReport {
        MetricsReport {
            scores: METRIC_KEYS.iter().map(|k| (k.to_string(), 0.5)).collect(),
            images: 3,
            context: [("decoder".to_string(), serde_json::json!("beam3"))].into(),
            per_image: vec![("a".into(), 1.0), ("b".into(), 3.0), ("c".into(), 2.0)],
        }
    }

    #[test]
    fn captions_are_escaped_and_galleries_ranked() {
        let metrics = metrics();
        let predictions: BTreeMap<String, String> = [
            ("a", "<script>alert(1)</script>"),
            ("b", "a dog & a cat"),
            ("c", "x"),
        ]
        .map(|(k, v)| (k.into(), v.into()))
        .into();
        let references = [("b".to_string(), vec!["<b>bold</b>".to_string()])].into();
        let (best, worst) = best_and_worst(&metrics, &predictions, &references, 1);
        assert_eq!(
            (best[0].image.as_str(), worst[0].image.as_str()),
            ("b", "a")
        );
        let report = Report {
            title: "t".into(),
            metrics: &metrics,
            loss_svg: None,
            best,
            worst,
            image_dir: None,
            attention: None,
        };
        let html = report.to_html();
        assert!(!html.contains("<script>alert"), "caption must be escaped");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("a dog &amp; a cat"));
        assert!(html.contains("&lt;b&gt;bold&lt;/b&gt;"));
        assert!(html.contains("<td>0.5000</td>") && html.contains("beam3"));
        assert!(html.contains("<th>BLEU-4</th><th>METEOR</th><th>ROUGE-L</th>"));
    }

    #[test]
    fn the_table_leaves_out_metrics_not_computed() {
        let mut metrics = metrics();
        metrics.scores.remove("METEOR");
        let report = Report {
            title: "t".into(),
            metrics: &metrics,
            loss_svg: None,
            best: Vec::new(),
            worst: Vec::new(),
            image_dir: None,
            attention: None,
        };
        let table = report.metrics_table();
        assert_eq!(
            table,
            "<table class=\"metrics\"><tr><th>BLEU-1</th><th>BLEU-2</th><th>BLEU-3</th><th>BLEU-4</th>\
             <th>ROUGE-L</th><th>CIDEr-D</th></tr><tr><td>0.5000</td><td>0.5000</td><td>0.5000</td>\
             <td>0.5000</td><td>0.5000</td><td>0.5000</td></tr></table>\n\
             <p class=\"context\">3 images &middot; decoder: beam3</p>\n"
        );
    }
}
