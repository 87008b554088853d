//! The backends: burn's Flex on the CPU always, CUDA on a `--features cuda` build, and the one
//! test that tells a kernel which form to run.

use burn::tensor::backend::Backend;

/// The CPU backend (burn's Flex, multi-threaded with rayon).
pub type Cpu = burn::backend::Flex;

/// The CUDA backend.
#[cfg(feature = "cuda")]
pub type Gpu = burn::backend::Cuda;

/// Whether `B` is the CPU backend, whose tensors live in host memory: there a kernel may take
/// a tensor's data (`into_data`, no copy for an unshared contiguous tensor), work on the slice
/// and hand it back (`from_data`, no copy either), which fuses several single-threaded tensor
/// operations into one multi-threaded pass. On a GPU backend that would mean two transfers.
pub fn is_host<B: Backend>() -> bool {
    std::any::TypeId::of::<B>() == std::any::TypeId::of::<Cpu>()
}

/// Work written once, generic over the backend, that can run on any of them.
pub trait BackendTask {
    type Output;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_cpu_backend_is_host() {
        assert!(is_host::<Cpu>());
        assert!(!is_host::<burn::backend::Autodiff<Cpu>>());
    }
}
