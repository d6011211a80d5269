//! `conv`: the 3×3 stride-1 convolutions of ResNet-20 (CIFAR, batch 128), ResNet-18 (64 px,
//! batch 16) and ResNet-50 (224 px, batch 16 and 1), forward, input gradient and weight
//! gradient, timed with im2col + GEMM (the shifted-window GEMMs for large-plane weight
//! gradients) and with Winograd F(4×4, 3×3) (forward and input gradient in its tiled and
//! whole-batch layouts; the weight gradient has one), interleaved in one process (medians).
//! Maps of 2×2 and 1×1 are also timed in the dense form (one GEMM with a matrix built from
//! the weights, cached like the Winograd filters: the forward times here read the caches, the
//! build shows in whole training steps). This is the measurement behind `ConvAlgo::Auto`'s
//! shape rules; the last line lists each shape's ratios.

use crate::util::{median, time, Opts};
use ferrovision::prelude::*;
use ferrovision::tensor::ops::conv::{set_conv_algo, ConvAlgo};
use ferrovision::tensor::ConvOpts;

/// (name, batch, channels, side): a 3×3 conv with `channels` in and out, padding 1.
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("r20_s1", 128, 16, 32),
    ("r20_s2", 128, 32, 16),
    ("r20_s3", 128, 64, 8),
    ("r18_s1", 16, 64, 16),
    ("r18_s2", 16, 128, 8),
    ("r18_s3", 16, 256, 4),
    ("r18_s4", 16, 512, 2),
    ("r18_s2_b32", 32, 128, 8),
    ("r18_s3_b32", 32, 256, 4),
    ("r18_s4_b32", 32, 512, 2),
    ("r18_s4_b1", 1, 512, 2),
    ("r18_s4_b4", 4, 512, 2),
    ("r18_s4_b8", 8, 512, 2),
    ("r18_1px", 16, 512, 1),
    ("r50_s1", 16, 64, 56),
    ("r50_s2", 16, 128, 28),
    ("r50_s3", 16, 256, 14),
    ("r50_s4", 16, 512, 7),
    ("r50_s1_b1", 1, 64, 56),
    ("r50_s3_b1", 1, 256, 14),
    ("r50_s4_b1", 1, 512, 7),
    ("r50_s3_b32", 32, 256, 14),
    ("r50_s4_b32", 32, 512, 7),
    ("r18_s2_b1", 1, 128, 8),
    ("r18_s3_b1", 1, 256, 4),
    ("r18_s3_b4", 4, 256, 4),
    ("r20_s2_b1", 1, 32, 16),
    ("r20_s3_b1", 1, 64, 8),
];

pub fn run(_opts: &Opts) -> std::result::Result<(), String> {
    run_inner().map_err(|e| e.to_string())
}

fn run_inner() -> ferrovision::tensor::Result<()> {
    let mut rng = Rng::new(0);
    let mut summary = Vec::new();
    println!(
        "{:<10} {:>5} {:>4} {:>4} | {:>9} {:>9} {:>9} {:>6} | {:>9} {:>9} {:>9} {:>6} | {:>9} {:>9} {:>6} | {:>9} {:>9} {:>6}",
        "shape",
        "batch",
        "ch",
        "side",
        "fwd i2c",
        "wino-til",
        "wino-wide",
        "ratio",
        "dx i2c",
        "wino-til",
        "wino-wide",
        "ratio",
        "dw i2c",
        "wino",
        "ratio",
        "fwd dense",
        "dx dense",
        "ratio"
    );
    let only = std::env::var("FERROVISION_BENCH_CONV").ok();
    // For profiling one algorithm: FERROVISION_BENCH_CONV_ALGO=im2col|dense|winograd-tiled|
    // winograd-wide runs only it.
    let profile_only = match std::env::var("FERROVISION_BENCH_CONV_ALGO").as_deref() {
        Ok("winograd-tiled") => Some(ConvAlgo::WinogradTiled),
        Ok("winograd-wide") => Some(ConvAlgo::WinogradWide),
        Ok("im2col") => Some(ConvAlgo::Im2col),
        Ok("dense") => Some(ConvAlgo::Dense),
        _ => None,
    };
    const ALGOS: [ConvAlgo; 4] = [
        ConvAlgo::Im2col,
        ConvAlgo::WinogradTiled,
        ConvAlgo::WinogradWide,
        ConvAlgo::Dense,
    ];
    for &(name, n, c, side) in SHAPES {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|s| s == name))
        {
            continue;
        }
        let x = Tensor::randn(&[n, c, side, side], 0.0, 1.0, &mut rng)?;
        let w = Tensor::randn(&[c, c, 3, 3], 0.0, 0.05, &mut rng)?;
        let opts = ConvOpts::new().pad(1);
        let reps = (2e9 / (2.0 * 9.0 * (c * c * side * side * n) as f64)).clamp(3.0, 40.0) as usize;
        // t[algorithm][forward | input gradient | weight gradient]: one sample per repetition,
        // interleaved.
        let mut t: [[Vec<f64>; 3]; 4] = Default::default();
        // The dense form where it applies: input positions at most half the kernel's taps.
        let dense_fits = 2 * side * side <= 9;
        for rep in 0..reps + 1 {
            for (ai, algo) in ALGOS.into_iter().enumerate() {
                let skip = algo == ConvAlgo::Dense && !dense_fits;
                if skip || profile_only.is_some_and(|p| p != algo) {
                    for v in &mut t[ai] {
                        v.push(f64::NAN);
                    }
                    continue;
                }
                set_conv_algo(algo);
                // Forward alone (no recording), then forward + input gradient.
                let (y, fwd) = time(|| no_grad(|| x.conv2d(&w, None, &opts)));
                y?;
                let xg = x.detach().requires_grad_(true);
                let w0 = w.detach();
                let y = xg.conv2d(&w0, None, &opts)?;
                let seed = Tensor::ones(y.shape());
                let (r, bwd) = time(|| y.backward_with(&seed));
                r?;
                // Weight gradient alone.
                let wg = w.detach().requires_grad_(true);
                let y = x.detach().conv2d(&wg, None, &opts)?;
                let (r, dw) = time(|| y.backward_with(&seed));
                r?;
                if rep > 0 {
                    t[ai][0].push(fwd);
                    t[ai][1].push(bwd);
                    t[ai][2].push(dw);
                }
            }
        }
        set_conv_algo(ConvAlgo::Auto);
        let ms = |v: &mut Vec<f64>| median(v) * 1e3;
        let f: Vec<f64> = t.iter_mut().map(|a| ms(&mut a[0])).collect();
        let b: Vec<f64> = t.iter_mut().map(|a| ms(&mut a[1])).collect();
        // The weight gradient has one Winograd layout: the tiled and wide settings both take it.
        let d: Vec<f64> = t.iter_mut().map(|a| ms(&mut a[2])).collect();
        let dw_wino = d[1].min(d[2]);
        // Ratio: im2col time over the faster Winograd layout's.
        let best = |v: &[f64]| v[0] / v[1].min(v[2]);
        // Dense: im2col time over the dense form's, forward and input gradient together.
        let dense = (f[0] + b[0]) / (f[3] + b[3]);
        println!(
            "{name:<10} {n:>5} {c:>4} {side:>4} | {:>7.3}ms {:>7.3}ms {:>7.3}ms {:>5.2}x | {:>7.3}ms {:>7.3}ms {:>7.3}ms {:>5.2}x | {:>7.3}ms {:>7.3}ms {:>5.2}x | {:>7.3}ms {:>7.3}ms {:>5.2}x",
            f[0], f[1], f[2], best(&f), b[0], b[1], b[2], best(&b), d[0], dw_wino, d[0] / dw_wino,
            f[3], b[3], dense
        );
        summary.push(format!(
            "{name}_fwd={:.2}/{:.2} {name}_dx={:.2}/{:.2} {name}_dw={:.2}",
            f[0] / f[1],
            f[0] / f[2],
            b[0] / b[1],
            b[0] / b[2],
            d[0] / dw_wino
        ));
        if dense_fits {
            summary.push(format!(
                "{name}_dense_fwd={:.2} {name}_dense_dx={:.2}",
                f[0] / f[3],
                b[0] / b[3]
            ));
        }
    }
    println!(
        "RESULT conv (im2col time / tiled, / wide; weight gradient: / Winograd) {}",
        summary.join(" ")
    );
    Ok(())
}
