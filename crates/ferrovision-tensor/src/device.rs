//! Where a tensor's memory lives. Only the CPU has kernels today ([`crate::backend::CpuBackend`]);
//! see `docs/engine.md` for how a CUDA backend plugs in (a `Buffer` variant and an
//! `impl Backend`).

/// A compute device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory and the CPU kernels in [`crate::kernels`].
    #[default]
    Cpu,
    /// A CUDA device by ordinal (no backend yet: ops on it return `Error::DeviceMismatch`).
    Cuda(usize),
}
