//! Choosing where the networks run: Flex on the CPU always, CUDA on a `--features cuda` build.
//!
//! Stage code is written once, generic over the burn backend, as a [`BackendTask`]; the
//! `device` config keys pick the backend at run time through [`run_on`].

use burn::tensor::backend::Backend;
pub use contracts::config::Device;

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

/// Work that can run on any backend.
pub trait BackendTask {
    type Output;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output;
}

/// `cuda` asked of a build without CUDA.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "device \"cuda\" needs a CUDA build: rebuild with `cargo build --release --features cuda` \
     (`make FEATURES=cuda ...`), or use device = \"cpu\""
)]
pub struct NoCuda;

/// Runs `task` on the chosen backend's default device.
pub fn run_on<T: BackendTask>(device: Device, task: T) -> Result<T::Output, NoCuda> {
    match device {
        Device::Cpu => Ok(task.run::<Cpu>(Default::default())),
        #[cfg(feature = "cuda")]
        Device::Cuda => Ok(task.run::<Gpu>(Default::default())),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => Err(NoCuda),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_cpu_backend_is_host() {
        assert!(is_host::<Cpu>());
        assert!(!is_host::<burn::backend::Autodiff<Cpu>>());
    }

    #[test]
    fn cuda_on_a_cpu_build_says_how_to_rebuild() {
        struct Nothing;
        impl BackendTask for Nothing {
            type Output = ();
            fn run<B: Backend>(self, _: B::Device) {}
        }
        assert_eq!(run_on(Device::Cpu, Nothing), Ok(()));
        if !cfg!(feature = "cuda") {
            assert_eq!(
                run_on(Device::Cuda, Nothing).unwrap_err().to_string(),
                "device \"cuda\" needs a CUDA build: rebuild with `cargo build --release \
                 --features cuda` (`make FEATURES=cuda ...`), or use device = \"cpu\""
            );
        }
    }
}
