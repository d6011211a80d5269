//! The machine's FP32 multiply-add peak, measured with independent FMA chains in registers
//! (the reference the GEMM benchmarks report efficiency against).

use super::arch::hw_isa;
use crate::kernels::Isa;

/// Measures the machine's FP32 multiply-add peak in GFLOP/s with `threads` threads running
/// independent FMA chains in registers (widest vectors this CPU has). Takes about 0.2 s.
pub fn measure_peak_gflops(threads: usize) -> f64 {
    use std::time::{Duration, Instant};
    let threads = threads.max(1);
    let isa = hw_isa(Isa::Avx512);
    // One probe call: returns flops done.
    let probe = move |iters: u64| -> f64 {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: feature checked by hw_isa.
                std::hint::black_box(unsafe { probes::fma_probe_512(iters) });
                iters as f64 * probes::PROBE512_FLOPS
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: feature checked by hw_isa.
                std::hint::black_box(unsafe { probes::fma_probe_256(iters) });
                iters as f64 * probes::PROBE256_FLOPS
            }
            _ => {
                let mut acc = [1.0f32; 64];
                for _ in 0..iters {
                    for a in acc.iter_mut() {
                        *a = *a * 0.999_999 + 1e-7;
                    }
                    acc = std::hint::black_box(acc);
                }
                std::hint::black_box(acc);
                iters as f64 * 128.0
            }
        }
    };
    // Calibrate a chunk of about 2 ms.
    let mut chunk = 1000u64;
    loop {
        let t = Instant::now();
        probe(chunk);
        let e = t.elapsed();
        if e >= Duration::from_millis(2) || chunk > (1 << 40) {
            break;
        }
        chunk *= 2;
    }
    let run_for = Duration::from_millis(60);
    let mut best = 0.0f64;
    for _ in 0..3 {
        let barrier = std::sync::Barrier::new(threads);
        let rates: Vec<f64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|_| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        let t = Instant::now();
                        let mut flops = 0.0;
                        while t.elapsed() < run_for {
                            flops += probe(chunk);
                        }
                        flops / t.elapsed().as_secs_f64()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0.0)).collect()
        });
        let total: f64 = rates.iter().sum::<f64>() / 1e9;
        best = best.max(total);
    }
    best
}

#[cfg(target_arch = "x86_64")]
#[clippy::msrv = "1.89"]
mod probes {
    use std::arch::x86_64::*;

    const CHAINS: usize = 24;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma_probe_512(iters: u64) -> f32 {
        let x = _mm512_set1_ps(0.999_999);
        let y = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        let mut s = _mm512_setzero_ps();
        for a in acc {
            s = _mm512_add_ps(s, a);
        }
        _mm512_reduce_add_ps(s)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma_probe_256(iters: u64) -> f32 {
        let x = _mm256_set1_ps(0.999_999);
        let y = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..iters {
            for _ in 0..2 {
                for a in acc.iter_mut() {
                    *a = _mm256_fmadd_ps(*a, x, y);
                }
            }
        }
        let mut s = _mm256_setzero_ps();
        for a in acc {
            s = _mm256_add_ps(s, a);
        }
        let mut out = [0.0f32; 8];
        _mm256_storeu_ps(out.as_mut_ptr(), s);
        out.iter().sum()
    }

    /// Flops of one probe iteration.
    pub(super) const PROBE512_FLOPS: f64 = (CHAINS * 16 * 2) as f64;
    pub(super) const PROBE256_FLOPS: f64 = (2 * 12 * 8 * 2) as f64;
}
