//! Runs plain Rust loops compiled for the best instruction set of this CPU.
//!
//! `vectorize(|| body)` calls `body` inside a function compiled with AVX-512 (or AVX2+FMA)
//! enabled, chosen at run time from [`super::isa`]. Code inlined into it — the closure and any
//! `#[inline(always)]` helpers it calls — is auto-vectorised with the wide registers, so op files
//! get SIMD speed from safe code; this module holds the only `unsafe` needed for that.

use super::{isa, Isa};
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::cell::Cell;

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
    match dispatch_level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `dispatch_level()` (= `isa()`) reports Avx512 only when the CPU supports every feature enabled on
        // `run_avx512` (checked with is_x86_feature_detected! in `detect`).
        Isa::Avx512 => unsafe { run_avx512(f) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX2 and FMA.
        Isa::Avx2 => unsafe { run_avx2(f) },
        _ => f(),
    }
}

/// `multiversion!(fn name<G: Bound>(args) -> R { body })` defines `name`, which runs `body`
/// compiled for AVX-512 (or AVX2 + FMA, or baseline x86-64), picked at run time by
/// [`kernels::isa()`](crate::kernels::isa) (so the `FERROVISION_ISA` variable and
/// [`set_isa_override`](crate::kernels::set_isa_override) apply), so plain loops in `body` (and
/// the `#[inline(always)]` helpers it calls) are auto-vectorised with the wide registers.
/// Generic parameters (`<F: Fn(f32) -> f32>`, `<R: Rule>`) are optional.
///
/// This is the engine's one run-time ISA dispatcher: the elementwise kernels, the data crate's
/// fused colour loops and the optimizers' update loops all go through it (the `unsafe`
/// dispatch stays written here, in `kernels/`). Why not [`vectorize`]`(|| body)` for large
/// bodies: that needs LLVM to inline the closure into its `#[target_feature]` function, and
/// stable Rust cannot mark a closure `#[inline(always)]`; large bodies are not inlined by the
/// heuristics, and the disassembly showed `run_avx512` jumping to the closure compiled for
/// baseline x86-64 (the data crate's hue shift ran at 5.7 ns/pixel). Here the body is an
/// `#[inline(always)]` fn called directly from the `#[target_feature]` fns, so it is always
/// compiled with their features.
#[macro_export]
macro_rules! multiversion {
    (
        $(#[$m:meta])*
        $vis:vis fn $name:ident $(<$($g:ident : $bound:path),* $(,)?>)?
            ($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? $body:block
    ) => {
        $(#[$m])*
        $vis fn $name $(<$($g: $bound),*>)? ($($a: $t),*) $(-> $r)? {
            #[inline(always)]
            fn body $(<$($g: $bound),*>)? ($($a: $t),*) $(-> $r)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
            unsafe fn avx512 $(<$($g: $bound),*>)? ($($a: $t),*) $(-> $r)? {
                body($($a),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2 $(<$($g: $bound),*>)? ($($a: $t),*) $(-> $r)? {
                body($($a),*)
            }
            use $crate::kernels::Isa;
            match $crate::kernels::simd::dispatch_level() {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `dispatch_level()` reports Avx512 only when the CPU has every feature
                // enabled on `avx512` (the engine checks them with is_x86_feature_detected!).
                Isa::Avx512 => unsafe { avx512($($a),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above, for AVX2 and FMA.
                Isa::Avx2 => unsafe { avx2($($a),*) },
                _ => body($($a),*),
            }
        }
    };
}

thread_local! {
    /// The level of this thread's latest dispatch (`u8::MAX`: none yet).
    static LAST: Cell<u8> = const { Cell::new(u8::MAX) };
}

/// The level a dispatch runs with now ([`isa`]), remembered for [`last_dispatched`]. Called by
/// [`vectorize`] and [`multiversion!`](crate::multiversion); one thread-local store per call.
#[doc(hidden)]
#[inline(always)]
pub fn dispatch_level() -> Isa {
    let level = isa();
    LAST.with(|l| l.set(level as u8));
    level
}

/// The level of the latest [`vectorize`] / [`multiversion!`](crate::multiversion) dispatch on
/// this thread (`None` before the first). Lets tests check that a dispatched path honours
/// [`set_isa_override`](crate::kernels::set_isa_override) and `FERROVISION_ISA`.
pub fn last_dispatched() -> Option<Isa> {
    match LAST.with(Cell::get) {
        0 => Some(Isa::Scalar),
        1 => Some(Isa::Avx2),
        2 => Some(Isa::Avx512),
        _ => None,
    }
}

/// Transposes a 16×16 block held as 16 row vectors (AVX-512; shared by the GEMM's packers and
/// the Winograd filter transforms, inlined into their `#[target_feature]` functions).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn transpose16(r: &mut [__m512; 16]) {
    unsafe {
        let mut t = [_mm512_setzero_ps(); 16];
        for g in 0..8 {
            t[2 * g] = _mm512_unpacklo_ps(r[2 * g], r[2 * g + 1]);
            t[2 * g + 1] = _mm512_unpackhi_ps(r[2 * g], r[2 * g + 1]);
        }
        // u[4g + e]: in 128-bit lane L, rows 4g..4g+4 of column 4L + e.
        let mut u = [_mm512_setzero_ps(); 16];
        for g in 0..4 {
            let (a, b, c, d) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
            let pd = _mm512_castps_pd;
            u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(a), pd(c)));
            u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(a), pd(c)));
            u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(b), pd(d)));
            u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(b), pd(d)));
        }
        for e in 0..4 {
            let v = _mm512_shuffle_f32x4::<0x88>(u[e], u[4 + e]);
            let w = _mm512_shuffle_f32x4::<0xDD>(u[e], u[4 + e]);
            let x = _mm512_shuffle_f32x4::<0x88>(u[8 + e], u[12 + e]);
            let y = _mm512_shuffle_f32x4::<0xDD>(u[8 + e], u[12 + e]);
            r[e] = _mm512_shuffle_f32x4::<0x88>(v, x);
            r[8 + e] = _mm512_shuffle_f32x4::<0xDD>(v, x);
            r[4 + e] = _mm512_shuffle_f32x4::<0x88>(w, y);
            r[12 + e] = _mm512_shuffle_f32x4::<0xDD>(w, y);
        }
    }
}

/// Transposes an 8×8 block held as 8 row vectors (AVX2; the GEMM's AVX2 packers).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn transpose8(r: &mut [__m256; 8]) {
    unsafe {
        let mut t = [_mm256_setzero_ps(); 8];
        for g in 0..4 {
            t[2 * g] = _mm256_unpacklo_ps(r[2 * g], r[2 * g + 1]);
            t[2 * g + 1] = _mm256_unpackhi_ps(r[2 * g], r[2 * g + 1]);
        }
        // u[4g + e]: in 128-bit lane L, rows 4g..4g+4 of column 4L + e.
        let mut u = [_mm256_setzero_ps(); 8];
        let pd = _mm256_castps_pd;
        for g in 0..2 {
            let (a, b, c, d) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
            u[4 * g] = _mm256_castpd_ps(_mm256_unpacklo_pd(pd(a), pd(c)));
            u[4 * g + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(pd(a), pd(c)));
            u[4 * g + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(pd(b), pd(d)));
            u[4 * g + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(pd(b), pd(d)));
        }
        for e in 0..4 {
            r[e] = _mm256_permute2f128_ps::<0x20>(u[e], u[4 + e]);
            r[4 + e] = _mm256_permute2f128_ps::<0x31>(u[e], u[4 + e]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_result_on_every_level() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        let body = || x.iter().map(|v| v * 2.0 + 1.0).collect::<Vec<f32>>();
        let _guard = super::super::ISA_TEST_LOCK
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let reference = body();
        for level in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
            super::super::set_isa_override(Some(level));
            assert_eq!(vectorize(body), reference);
            assert_eq!(
                last_dispatched(),
                Some(level.min(super::super::detected_isa()))
            );
        }
        super::super::set_isa_override(None);
    }
}
