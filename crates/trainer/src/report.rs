//! The per-epoch metrics table (`metrics.csv`) and the loss curves (`loss.svg`), rewritten
//! after every epoch from the whole history (so a resumed run writes the same files).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::checkpoint::EpochMetrics;

pub const METRICS_FILE: &str = "metrics.csv";
pub const PLOT_FILE: &str = "loss.svg";

/// The header of `metrics.csv`.
pub const METRICS_HEADER: &str =
    "epoch,train_loss,val_loss,val_bleu4,learning_rate,seconds,captions_per_s";

/// `metrics.csv` as text.
pub fn metrics_csv(history: &[EpochMetrics]) -> String {
    let mut out = String::from(METRICS_HEADER);
    out.push('\n');
    for m in history {
        out.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:e},{:.2},{:.1}\n",
            m.epoch,
            m.train_loss,
            m.val_loss,
            m.val_bleu4,
            m.learning_rate,
            m.seconds,
            m.captions_per_s
        ));
    }
    out
}

/// Writes `metrics.csv` and `loss.svg` into `dir`, each atomically.
pub fn write_reports(dir: &Path, history: &[EpochMetrics]) -> Result<()> {
    contracts::atomic::write_atomically(&dir.join(METRICS_FILE), metrics_csv(history).as_bytes())?;
    let svg = loss_svg(history).map_err(|e| anyhow!("drawing {PLOT_FILE}: {e}"))?;
    contracts::atomic::write_atomically(&dir.join(PLOT_FILE), svg.as_bytes())?;
    Ok(())
}

/// Train and val loss per epoch (left) and val BLEU-4 (right), as an SVG document.
pub fn loss_svg(history: &[EpochMetrics]) -> Result<String, Box<dyn std::error::Error>> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(560);
        let epochs = history.len().max(1) as f64;
        let losses = history
            .iter()
            .flat_map(|m| [m.train_loss, m.val_loss])
            .filter(|x| x.is_finite());
        let (low, high) = losses.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
        let (low, high) = if low.is_finite() {
            (low.min(high) * 0.95, high * 1.05 + 1e-9)
        } else {
            (0.0, 1.0)
        };

        let mut chart = ChartBuilder::on(&left)
            .caption("cross-entropy per token", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0.5..epochs + 0.5, low..high)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .draw()?;
        let series = [
            (
                "train",
                BLUE,
                history
                    .iter()
                    .map(|m| (m.epoch as f64, m.train_loss))
                    .collect::<Vec<_>>(),
            ),
            (
                "val",
                RED,
                history
                    .iter()
                    .map(|m| (m.epoch as f64, m.val_loss))
                    .collect(),
            ),
        ];
        for (name, colour, points) in series {
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;

        let best = history.iter().map(|m| m.val_bleu4).fold(0.0f64, f64::max);
        let mut chart = ChartBuilder::on(&right)
            .caption("val BLEU-4 (greedy)", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0.5..epochs + 0.5, 0.0..(best * 1.1).max(0.05))?;
        chart.configure_mesh().x_desc("epoch").draw()?;
        chart.draw_series(LineSeries::new(
            history.iter().map(|m| (m.epoch as f64, m.val_bleu4)),
            GREEN.stroke_width(2),
        ))?;
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 4.0 / epoch as f64,
            val_loss: 4.5 / epoch as f64,
            val_bleu4: 0.05 * epoch as f64,
            learning_rate: 1e-3,
            seconds: 12.345,
            captions_per_s: 250.0,
        }
    }

    #[test]
    fn csv_has_one_row_per_epoch() {
        let csv = metrics_csv(&[row(1), row(2)]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], METRICS_HEADER);
        assert_eq!(lines[1], "1,4.000000,4.500000,0.050000,1e-3,12.35,250.0");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn svg_is_drawn_without_fonts() {
        let svg = loss_svg(&[row(1), row(2), row(3)]).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline"),
            "{}",
            &svg[..200.min(svg.len())]
        );
        assert!(loss_svg(&[]).is_ok());
    }
}
