//! Choosing where the networks run: Flex on the CPU always, CUDA on a `--features cuda` build.
//!
//! Stage code is written once, generic over the burn backend, as a [`BackendTask`]; the
//! `device` config key picks the backend at run time through [`run_on`].

use burn::tensor::backend::Backend;

/// The CPU backend (burn's Flex, multi-threaded with rayon).
pub type Cpu = burn::backend::Flex;

/// The CUDA backend.
#[cfg(feature = "cuda")]
pub type Gpu = burn::backend::Cuda;

/// Where to run, from the `device` keys of `pipeline.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    Cuda,
}

impl DeviceKind {
    /// Parses `cpu` or `cuda`; `cuda` on a build without CUDA says how to get one.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "cpu" => Ok(Self::Cpu),
            "cuda" if cfg!(feature = "cuda") => Ok(Self::Cuda),
            "cuda" => Err("device \"cuda\" needs a CUDA build: rebuild with \
                 `cargo build --release --features cuda` (or use device = \"cpu\")"
                .into()),
            other => Err(format!(
                "unknown device {other:?}: expected \"cpu\" or \"cuda\""
            )),
        }
    }
}

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

/// Runs `task` on the chosen backend's default device.
pub fn run_on<T: BackendTask>(kind: DeviceKind, task: T) -> T::Output {
    match kind {
        DeviceKind::Cpu => task.run::<Cpu>(Default::default()),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => task.run::<Gpu>(Default::default()),
        #[cfg(not(feature = "cuda"))]
        DeviceKind::Cuda => unreachable!("DeviceKind::parse refuses cuda on a CPU-only build"),
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
    fn cpu_parses_and_unknown_names_are_refused() {
        assert_eq!(DeviceKind::parse("cpu"), Ok(DeviceKind::Cpu));
        assert!(
            DeviceKind::parse("tpu")
                .unwrap_err()
                .contains("unknown device")
        );
        if !cfg!(feature = "cuda") {
            assert!(
                DeviceKind::parse("cuda")
                    .unwrap_err()
                    .contains("--features cuda")
            );
        }
    }
}
