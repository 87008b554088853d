//! The per-epoch metrics table (`metrics.csv`) and the loss curves (`loss.svg`), rewritten
//! after every epoch from the whole history (so a resumed run writes the same files).

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use contracts::ModelDir;

use crate::state::{EpochMetrics, EpochTiming, Phase};

/// The header of `metrics.csv`.
pub const METRICS_HEADER: &str = "epoch,phase,train_loss,val_loss,val_bleu4,val_cider,val_repeats,\
    mean_reward,mean_advantage,learning_rate,seconds,captions_per_s";

/// Epoch number to its timing.
pub type Timings = BTreeMap<usize, EpochTiming>;

/// `metrics.csv` as text. An epoch without a timing (trained by a run whose `metrics.csv` was
/// lost) has empty timing fields.
pub fn metrics_csv(history: &[EpochMetrics], timings: &Timings) -> String {
    let mut out = String::from(METRICS_HEADER);
    out.push('\n');
    for m in history {
        let timing = timings.get(&m.epoch).map_or_else(
            || ",".to_string(),
            |t| format!("{:.2},{:.1}", t.seconds, t.captions_per_s),
        );
        let optional = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.6}"));
        out.push_str(&format!(
            "{},{},{:.6},{:.6},{:.6},{:.6},{},{},{},{:e},{timing}\n",
            m.epoch,
            m.phase.name(),
            m.train_loss,
            m.val_loss,
            m.val_bleu4,
            m.val_cider,
            m.val_repeats,
            optional(m.mean_reward),
            optional(m.mean_advantage),
            m.learning_rate,
        ));
    }
    out
}

/// The timings of an earlier run's `metrics.csv` (a resumed run keeps them); none when it is
/// missing or unreadable.
pub fn read_timings(dir: &ModelDir) -> Timings {
    let Ok(text) = std::fs::read_to_string(dir.metrics_csv()) else {
        return Timings::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let [epoch, .., seconds, rate] = fields.as_slice() else {
                return None;
            };
            let timing = EpochTiming {
                seconds: seconds.parse().ok()?,
                captions_per_s: rate.parse().ok()?,
            };
            Some((epoch.parse().ok()?, timing))
        })
        .collect()
}

/// Writes `metrics.csv` and `loss.svg` into `dir`, each atomically.
pub fn write_reports(dir: &ModelDir, history: &[EpochMetrics], timings: &Timings) -> Result<()> {
    contracts::atomic::write_atomically(
        &dir.metrics_csv(),
        metrics_csv(history, timings).as_bytes(),
    )?;
    let plot = dir.loss_svg();
    let svg = loss_svg(history).map_err(|e| anyhow!("drawing {}: {e}", plot.display()))?;
    contracts::atomic::write_atomically(&plot, svg.as_bytes())?;
    Ok(())
}

/// Halfway between the last cross-entropy epoch and the first self-critical one, if any.
fn scst_start(history: &[EpochMetrics]) -> Option<f64> {
    history
        .iter()
        .find(|m| m.phase == Phase::SelfCritical)
        .map(|m| m.epoch as f64 - 0.5)
}

/// Train and val loss per epoch (left) and val BLEU-4 (right), as an SVG document; a line
/// marks where self-critical training begins.
pub fn loss_svg(history: &[EpochMetrics]) -> Result<String, Box<dyn std::error::Error>> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(560);
        let epochs = history.len().max(1) as f64;
        // A self-critical epoch's train loss is a policy loss, not a cross-entropy: only its
        // val loss is drawn.
        let losses = history
            .iter()
            .flat_map(|m| match m.phase {
                Phase::CrossEntropy => vec![m.train_loss, m.val_loss],
                Phase::SelfCritical => vec![m.val_loss],
            })
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
                    .filter(|m| m.phase == Phase::CrossEntropy)
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
        if let Some(start) = scst_start(history) {
            chart
                .draw_series(LineSeries::new(
                    [(start, low), (start, high)],
                    BLACK.mix(0.5).stroke_width(1),
                ))?
                .label("SCST starts")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.5)));
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
            phase: Phase::CrossEntropy,
            train_loss: 4.0 / epoch as f64,
            val_loss: 4.5 / epoch as f64,
            val_bleu4: 0.05 * epoch as f64,
            val_cider: 0.5 * epoch as f64,
            val_repeats: epoch,
            mean_reward: None,
            mean_advantage: None,
            learning_rate: 1e-3,
        }
    }

    #[test]
    fn csv_has_one_row_per_epoch_and_its_timings_read_back() {
        let timing = EpochTiming {
            seconds: 12.345,
            captions_per_s: 250.0,
        };
        let timings = Timings::from([(1, timing)]);
        let scst = EpochMetrics {
            phase: Phase::SelfCritical,
            mean_reward: Some(1.25),
            mean_advantage: Some(-0.5),
            ..row(2)
        };
        let csv = metrics_csv(&[row(1), scst], &timings);
        assert_eq!(
            csv,
            format!(
                "{METRICS_HEADER}\n1,xe,4.000000,4.500000,0.050000,0.500000,1,,,1e-3,12.35,250.0\n\
                 2,scst,2.000000,2.250000,0.100000,1.000000,2,1.250000,-0.500000,1e-3,,\n"
            )
        );
        let dir = tempfile::tempdir().unwrap();
        let model_dir = ModelDir::new(dir.path());
        std::fs::write(model_dir.metrics_csv(), csv).unwrap();
        let back = read_timings(&model_dir);
        assert_eq!(back.keys().copied().collect::<Vec<_>>(), [1]);
        assert_eq!(back[&1].captions_per_s, 250.0);
        assert!((back[&1].seconds - 12.35).abs() < 1e-12);
        assert!(read_timings(&ModelDir::new(dir.path().join("none"))).is_empty());
    }

    #[test]
    fn svg_is_drawn_without_fonts() {
        let svg = loss_svg(&[row(1), row(2), row(3)]).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline"),
            "{}",
            &svg[..200.min(svg.len())]
        );
        assert!(!svg.contains("SCST starts"));
        let scst = EpochMetrics {
            phase: Phase::SelfCritical,
            ..row(3)
        };
        assert_eq!(scst_start(&[row(1), row(2), scst.clone()]), Some(2.5));
        assert!(
            loss_svg(&[row(1), row(2), scst])
                .unwrap()
                .contains("SCST starts")
        );
        assert!(loss_svg(&[]).is_ok());
    }
}
