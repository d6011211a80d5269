//! CPU kernels. All `unsafe` SIMD code of the engine lives under this module; each kernel has a
//! portable scalar path that tests compare the SIMD paths against.
//!
//! The instruction set is chosen once at run time ([`isa`]); `FERROVISION_ISA=scalar|avx2|avx512`
//! forces a lower level (tests use [`set_isa_override`] for the same). Code compiled for several
//! levels is dispatched in one place, [`simd`] ([`simd::vectorize`] and
//! [`multiversion!`](crate::multiversion)); the GEMM picks its hand-written micro-kernels from
//! the same [`isa`].

pub mod depthwise;
pub mod elementwise;
pub mod gemm;
pub mod im2col;
pub mod pool2x2;
pub mod pool3x3;
pub mod simd;
pub mod winograd;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// The SIMD level the kernels run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust (auto-vectorised by the compiler for the baseline target).
    Scalar = 0,
    /// x86-64 AVX2 + FMA.
    Avx2 = 1,
    /// x86-64 AVX-512 F/BW/DQ/VL.
    Avx512 = 2,
}

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2;
        }
    }
    Isa::Scalar
}

/// The best level this CPU supports (detected once; `FERROVISION_ISA` does not apply). Paths
/// that must not exceed the hardware clamp to it; kernels pick their level with [`isa`].
pub fn hardware_isa() -> Isa {
    static HARDWARE: OnceLock<Isa> = OnceLock::new();
    *HARDWARE.get_or_init(detect)
}

/// The best level this CPU supports, lowered by `FERROVISION_ISA` if set.
pub fn detected_isa() -> Isa {
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        let hw = hardware_isa();
        let wanted = match std::env::var("FERROVISION_ISA").ok().as_deref() {
            Some("scalar") => Isa::Scalar,
            Some("avx2") => Isa::Avx2,
            _ => Isa::Avx512,
        };
        hw.min(wanted)
    })
}

static OVERRIDE: AtomicU8 = AtomicU8::new(u8::MAX);

/// Deterministic pseudo-random test values in [-1, 1) (xorshift), shared by the kernel tests.
#[cfg(test)]
pub(crate) fn test_values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Serialises the unit tests that set [`set_isa_override`] (a process-wide switch) or compare
/// bits across calls that an override elsewhere could change.
#[cfg(test)]
pub(crate) static ISA_TEST_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Forces a (lower) ISA for this process, `None` to go back to [`detected_isa`]. Requests above
/// what the CPU supports are clamped.
pub fn set_isa_override(isa: Option<Isa>) {
    OVERRIDE.store(isa.map_or(u8::MAX, |i| i as u8), Ordering::Relaxed);
}

/// The ISA kernels should use now.
#[inline]
pub fn isa() -> Isa {
    let hw = detected_isa();
    match OVERRIDE.load(Ordering::Relaxed) {
        0 => Isa::Scalar,
        1 => hw.min(Isa::Avx2),
        2 => hw,
        _ => hw,
    }
}

pub use crate::parallel::{num_threads, set_num_threads};
