//! Choosing where the networks run: Flex on the CPU always, CUDA on a `--features cuda` build.
//!
//! Stage code is written once, generic over the burn backend, as a [`BackendTask`]; the
//! `device` config keys pick the backend at run time through [`run_on`].

pub use contracts::config::Device;
#[cfg(feature = "cuda")]
pub use kernels::backend::Gpu;
pub use kernels::backend::{BackendTask, Cpu};

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
    use burn::tensor::backend::Backend;

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
