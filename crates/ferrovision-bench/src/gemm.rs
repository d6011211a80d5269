//! The SGEMM workload: GFLOP/s of our packed kernel against the machine's measured FP32 peak.

use crate::util::{time, Opts};
use ferrovision::tensor::kernels::{self, gemm};
use ferrovision::tensor::rng::Rng;

fn gflops(m: usize, n: usize, k: usize, reps: usize) -> f64 {
    let mut rng = Rng::new(1);
    let a: Vec<f32> = (0..m * k).map(|_| rng.next_f32() - 0.5).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.next_f32() - 0.5).collect();
    let mut c = vec![0.0f32; m * n];
    let mut run = || {
        gemm::sgemm(
            m,
            n,
            k,
            &a,
            k,
            1,
            &b,
            n,
            1,
            &mut c,
            n,
            false,
            gemm::Epilogue::default(),
        );
    };
    run();
    let mut best = f64::MAX;
    for _ in 0..reps {
        let (_, s) = time(&mut run);
        best = best.min(s);
    }
    2.0 * (m * n * k) as f64 / best / 1e9
}

pub fn run(_opts: &Opts) -> Result<(), String> {
    let threads = kernels::num_threads();
    let peak = gemm::measure_peak_gflops(threads);
    println!(
        "ISA {:?}, {threads} threads, measured FP32 FMA peak {peak:.1} GFLOP/s",
        kernels::isa()
    );
    let g1024 = gflops(1024, 1024, 1024, 10);
    println!(
        "1024x1024x1024: {g1024:.1} GFLOP/s ({:.0}% of peak)",
        100.0 * g1024 / peak
    );
    let g256 = gflops(256, 576, 2304, 20);
    println!(
        "256x2304x576:   {g256:.1} GFLOP/s ({:.0}% of peak)",
        100.0 * g256 / peak
    );
    // Few columns: ResNet-18's 2x2 stage at batch 16 (512 filters of 3x3x512 over 64 output
    // positions), where every packed weight is used only 64 times.
    let g_few = gflops(512, 64, 4608, 20);
    println!(
        "512x64x4608:    {g_few:.1} GFLOP/s ({:.0}% of peak)",
        100.0 * g_few / peak
    );
    println!(
        "RESULT gemm gflops_1024={g1024:.1} gflops_256x2304x576={g256:.1} gflops_512x64x4608={g_few:.1} peak_gflops={peak:.1} peak_fraction={:.3}",
        g1024 / peak
    );
    Ok(())
}
