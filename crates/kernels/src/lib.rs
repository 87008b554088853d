//! The numeric kernels of training and decoding, each in two forms: one multi-threaded pass
//! over host memory on the CPU backend, and the same arithmetic as tensor operations for every
//! other backend (CUDA). Each pair is tested against the other beside its code.
//!
//! On the CPU backend (burn's Flex) every elementwise tensor operation is a separate
//! single-threaded pass that allocates its result; a kernel here takes the tensors' buffers
//! instead (`into_data` / `from_data` hand them over without a copy), works on the slices
//! with rayon and `wide`, and hands them back. Which form runs is decided here, once per
//! call, by [`backend::is_host`]; callers never see it.
//!
//! - [`lstm`]: a single-layer LSTM: the decoding step, and a sequence forward and backward
//!   for training.
//! - [`attention`]: the scores of additive attention and their gradients.
//! - [`cross_entropy`]: softmax cross-entropy of the output layer, and the gradient of its
//!   logits.
//! - [`adam`]: Adam as PyTorch computes it; [`clip`]: global gradient-norm clipping.
//! - [`standardise`]: per-channel standardisation of a grid.
//! - [`matmul`]: products in concurrent row blocks where gemm is slow in one call.
//!
//! No image or I/O dependencies: burn, rayon and `wide` only.

pub mod adam;
pub mod attention;
pub mod backend;
pub mod clip;
pub mod cross_entropy;
mod host;
pub mod lstm;
pub mod matmul;
pub mod standardise;

#[cfg(feature = "cuda")]
pub use backend::Gpu;
pub use backend::{BackendTask, Cpu, is_host};
pub use host::contiguous;
