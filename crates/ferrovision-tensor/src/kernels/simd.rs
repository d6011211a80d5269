//! Runs plain Rust loops compiled for the best instruction set of this CPU.
//!
//! `vectorize(|| body)` calls `body` inside a function compiled with AVX-512 (or AVX2+FMA)
//! enabled, chosen at run time from [`super::isa`]. Code inlined into it — the closure and any
//! `#[inline(always)]` helpers it calls — is auto-vectorised with the wide registers, so op files
//! get SIMD speed from safe code; this module holds the only `unsafe` needed for that.

use super::{isa, Isa};

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
unsafe fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Runs `f` compiled for the widest SIMD level available (see the module docs).
#[inline(always)]
pub fn vectorize<R>(f: impl FnOnce() -> R) -> R {
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` reports Avx512 only when the CPU supports every feature enabled on
        // `run_avx512` (checked with is_x86_feature_detected! in `detect`).
        Isa::Avx512 => unsafe { run_avx512(f) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX2 and FMA.
        Isa::Avx2 => unsafe { run_avx2(f) },
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_result_on_every_level() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        let body = || x.iter().map(|v| v * 2.0 + 1.0).collect::<Vec<f32>>();
        let reference = body();
        for level in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
            super::super::set_isa_override(Some(level));
            assert_eq!(vectorize(body), reference);
        }
        super::super::set_isa_override(None);
    }
}
