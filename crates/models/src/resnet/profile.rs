//! Where a forward pass spends its time, by kind of layer, for `make bench`.
//!
//! Both forms of the network ([`super::FoldedResNet`]'s tensor operations and the CPU path)
//! time each layer around its call when asked for a profile. burn's CPU backend computes
//! eagerly, so on it a layer's wall time is its own; on a GPU backend the times would only
//! say when work was queued.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The kinds of work a profile tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// Reordering the input to the CPU path's channels-last layout.
    Layout,
    /// The 7x7 stride-2 stem convolution.
    Stem7x7,
    MaxPool,
    /// The bottlenecks' 1x1 convolutions (not the shortcut projections).
    Conv1x1,
    /// The stride-1 3x3 convolutions.
    Conv3x3,
    /// The three stride-2 3x3 convolutions (first block of stages 2-4).
    Conv3x3Stride2,
    /// The 1x1 shortcut projections (first block of each stage).
    Downsample,
    /// ReLU and residual adds done as separate passes (fused into the products on the CPU
    /// path).
    ElementWise,
    AveragePool,
}

impl Layer {
    pub fn label(self) -> &'static str {
        match self {
            Self::Layout => "layout (NCHW -> NHWC)",
            Self::Stem7x7 => "stem 7x7 conv",
            Self::MaxPool => "max pool",
            Self::Conv1x1 => "1x1 conv",
            Self::Conv3x3 => "3x3 conv, stride 1",
            Self::Conv3x3Stride2 => "3x3 conv, stride 2",
            Self::Downsample => "downsample 1x1",
            Self::ElementWise => "element-wise (ReLU, add)",
            Self::AveragePool => "global average pool",
        }
    }
}

/// Time and arithmetic of one kind of layer over the passes profiled.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Entry {
    pub time: Duration,
    /// Multiply-accumulates the layer's arithmetic needs (of the direct convolution, whatever
    /// algorithm ran it).
    pub macs: u64,
    pub calls: usize,
}

/// Per-layer times, collected when enabled (else [`Profile::time`] only runs its closure).
#[derive(Debug, Clone, Default)]
pub struct Profile {
    enabled: bool,
    entries: BTreeMap<Layer, Entry>,
}

impl Profile {
    /// A profile that records.
    pub fn new() -> Self {
        Self {
            enabled: true,
            entries: BTreeMap::new(),
        }
    }

    /// A profile that records nothing (a plain forward pass).
    pub fn off() -> Self {
        Self::default()
    }

    /// Runs `f`, counting its time and `macs` against `layer`.
    pub fn time<T>(&mut self, layer: Layer, macs: u64, f: impl FnOnce() -> T) -> T {
        if !self.enabled {
            return f();
        }
        let start = Instant::now();
        let out = f();
        let entry = self.entries.entry(layer).or_default();
        entry.time += start.elapsed();
        entry.macs += macs;
        entry.calls += 1;
        out
    }

    /// Entries in [`Layer`] order.
    pub fn entries(&self) -> impl Iterator<Item = (Layer, Entry)> + '_ {
        self.entries.iter().map(|(l, e)| (*l, *e))
    }

    pub fn total(&self) -> Duration {
        self.entries.values().map(|e| e.time).sum()
    }
}

impl Profile {
    /// A Markdown table per image of `images` profiled: time, share, GFLOP/s (2 FLOP per
    /// multiply-accumulate).
    pub fn table(&self, images: usize) -> String {
        let images = images.max(1) as f64;
        let total = self.total().as_secs_f64();
        let mut out = String::from(
            "| layer | ms per image | share | GMAC per image | GFLOP/s |\n|---|---|---|---|---|\n",
        );
        for (layer, e) in self.entries() {
            let s = e.time.as_secs_f64();
            let rate = match e.macs {
                0 => String::new(),
                macs => format!("{:.0}", 2.0 * macs as f64 / s / 1e9),
            };
            out += &format!(
                "| {} | {:.2} | {:.1}% | {:.3} | {rate} |\n",
                layer.label(),
                1e3 * s / images,
                100.0 * s / total,
                e.macs as f64 / images / 1e9,
            );
        }
        let macs: u64 = self.entries.values().map(|e| e.macs).sum();
        out += &format!(
            "| total | {:.2} | 100% | {:.3} | {:.0} |\n",
            1e3 * total / images,
            macs as f64 / images / 1e9,
            2.0 * macs as f64 / total / 1e9
        );
        out
    }
}
