//! Per-dimension feature standardisation statistics.
//!
//! Raw ResNet50 vectors (ReLU outputs, average-pooled) have dimensions whose scales differ by
//! orders of magnitude; with untrained-network features a reference model trained on them wrote
//! the same caption for every image. Z-scoring each dimension with the train split's mean and
//! standard deviation fixed that, so the statistics are part of the model.

use crate::DecoderError;

/// A dimension whose train-split standard deviation is below this is only centred, not
/// scaled: dividing by a near-zero spread would blow up any val/test image that differs there.
pub const MIN_STD: f32 = 1e-6;

/// Mean and standard deviation of every feature dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStats {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl FeatureStats {
    /// Statistics that leave features unchanged (`model.standardize = false`).
    pub fn identity(dim: usize) -> Self {
        Self {
            mean: vec![0.0; dim],
            std: vec![1.0; dim],
        }
    }

    /// Statistics of `rows` (each `dim` long), accumulated in f64; population standard
    /// deviation, with dimensions under [`MIN_STD`] given a std of 1.
    pub fn from_rows<'a>(
        dim: usize,
        rows: impl IntoIterator<Item = &'a [f32]>,
    ) -> Result<Self, DecoderError> {
        let mut accumulator = StatsAccumulator::new(dim);
        for row in rows {
            accumulator.add(row)?;
        }
        accumulator.finish()
    }

    /// The statistics a model stores as constants: the mean and 1 / std.
    pub fn from_constants<B: burn::tensor::backend::Backend>(
        mean: &burn::module::Param<burn::tensor::Tensor<B, 1>>,
        inv_std: &burn::module::Param<burn::tensor::Tensor<B, 1>>,
    ) -> Self {
        let read =
            |t: burn::tensor::Tensor<B, 1>| t.into_data().to_vec::<f32>().unwrap_or_default();
        Self {
            mean: read(mean.val()),
            std: read(inv_std.val()).iter().map(|x| 1.0 / x).collect(),
        }
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Standardises `features` (rows of [`Self::dim`]) in place, as the model does inside
    /// [`crate::CaptionModel::start`]; for callers that inspect standardised vectors.
    pub fn apply(&self, features: &mut [f32]) {
        for row in features.chunks_mut(self.dim()) {
            for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = (*x - m) / s;
            }
        }
    }
}

/// [`FeatureStats::from_rows`] one row at a time, for rows that do not fit in memory at once
/// (the grid's regions).
#[derive(Debug, Clone)]
pub struct StatsAccumulator {
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    count: usize,
}

impl StatsAccumulator {
    pub fn new(dim: usize) -> Self {
        Self {
            sum: vec![0.0; dim],
            sum_sq: vec![0.0; dim],
            count: 0,
        }
    }

    pub fn add(&mut self, row: &[f32]) -> Result<(), DecoderError> {
        let dim = self.sum.len();
        if row.len() != dim {
            return Err(DecoderError::Config(format!(
                "feature row of length {} (expected {dim})",
                row.len()
            )));
        }
        for ((s, q), &x) in self.sum.iter_mut().zip(&mut self.sum_sq).zip(row) {
            let x = f64::from(x);
            *s += x;
            *q += x * x;
        }
        self.count += 1;
        Ok(())
    }

    pub fn finish(self) -> Result<FeatureStats, DecoderError> {
        if self.count == 0 {
            return Err(DecoderError::Config(
                "no feature rows to compute statistics from".into(),
            ));
        }
        let n = self.count as f64;
        let mean: Vec<f32> = self.sum.iter().map(|s| (s / n) as f32).collect();
        let std = self
            .sum
            .iter()
            .zip(&self.sum_sq)
            .map(|(s, q)| {
                let m = s / n;
                let std = (q / n - m * m).max(0.0).sqrt() as f32;
                if std < MIN_STD { 1.0 } else { std }
            })
            .collect();
        Ok(FeatureStats { mean, std })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_scores_and_leaves_constant_dimensions_unscaled() {
        let rows = [vec![1.0, 5.0, 0.0], vec![3.0, 5.0, 2.0]];
        let stats = FeatureStats::from_rows(3, rows.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(stats.mean, vec![2.0, 5.0, 1.0]);
        assert_eq!(stats.std, vec![1.0, 1.0, 1.0]);
        let mut x = vec![3.0, 6.0, 1.0];
        stats.apply(&mut x);
        assert_eq!(x, vec![1.0, 1.0, 0.0]);
        assert!(FeatureStats::from_rows(3, std::iter::empty()).is_err());
    }
}
