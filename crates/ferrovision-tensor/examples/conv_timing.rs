//! Times conv2d forward and forward+backward on the LeNet-5 (batch 64) and ResNet-18 at 64×64
//! (batch 16) convolution shapes, and the GEMM / im2col parts of the same work on their own.
//!
//! ```text
//! cargo run --release -p ferrovision-tensor --example conv_timing [-- columns...]
//! ```
//! Optional arguments are values of `ops::conv::set_min_gemm_columns` to compare (default: the
//! built-in setting only); `1` means one GEMM per image.

use ferrovision_tensor::kernels::gemm::{sgemm, Epilogue};
use ferrovision_tensor::kernels::im2col::{col2im, im2col, Window};
use ferrovision_tensor::ops::conv::{self, ConvOpts};
use ferrovision_tensor::rng::Rng;
use ferrovision_tensor::Tensor;
use std::time::Instant;

struct Shape {
    name: &'static str,
    /// How many times the shape occurs in one forward pass of the network.
    count: usize,
    n: usize,
    cin: usize,
    hw: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
}

#[allow(clippy::too_many_arguments)]
const fn s(
    name: &'static str,
    count: usize,
    n: usize,
    cin: usize,
    hw: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> Shape {
    Shape {
        name,
        count,
        n,
        cin,
        hw,
        cout,
        k,
        stride,
        pad,
    }
}

const SHAPES: &[Shape] = &[
    s("lenet c1 1->6 5x5 p2 @28", 1, 64, 1, 28, 6, 5, 1, 2),
    s("lenet c2 6->16 5x5 @14", 1, 64, 6, 14, 16, 5, 1, 0),
    s("r18 stem 3->64 7x7 s2 @64", 1, 16, 3, 64, 64, 7, 2, 3),
    s("r18 l1 64->64 3x3 @16", 4, 16, 64, 16, 64, 3, 1, 1),
    s("r18 l2 64->128 3x3 s2 @16", 1, 16, 64, 16, 128, 3, 2, 1),
    s("r18 l2 proj 64->128 1x1 s2", 1, 16, 64, 16, 128, 1, 2, 0),
    s("r18 l2 128->128 3x3 @8", 3, 16, 128, 8, 128, 3, 1, 1),
    s("r18 l3 128->256 3x3 s2 @8", 1, 16, 128, 8, 256, 3, 2, 1),
    s("r18 l3 proj 128->256 1x1 s2", 1, 16, 128, 8, 256, 1, 2, 0),
    s("r18 l3 256->256 3x3 @4", 3, 16, 256, 4, 256, 3, 1, 1),
    s("r18 l4 256->512 3x3 s2 @4", 1, 16, 256, 4, 512, 3, 2, 1),
    s("r18 l4 proj 256->512 1x1 s2", 1, 16, 256, 4, 512, 1, 2, 0),
    s("r18 l4 512->512 3x3 @2", 3, 16, 512, 2, 512, 3, 1, 1),
];

fn rand(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// Best-of milliseconds of `f` over enough runs to fill ~0.3 s (at least 3 after a warm-up).
/// The minimum is the most stable statistic on a machine shared with other work.
fn time_ms(mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::MAX;
    let mut runs = 0;
    let start = Instant::now();
    while runs < 3 || (start.elapsed().as_secs_f64() < 0.3 && runs < 50) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
        runs += 1;
    }
    best
}

fn main() {
    let columns: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("columns must be integers"))
        .collect();
    let settings = if columns.is_empty() {
        vec![conv::min_gemm_columns()]
    } else {
        columns
    };
    println!(
        "threads: {}, isa: {:?}",
        ferrovision_tensor::kernels::num_threads(),
        ferrovision_tensor::kernels::isa()
    );
    for cols in settings {
        conv::set_min_gemm_columns(cols);
        println!("\nmin_gemm_columns = {cols}");
        println!(
            "{:<30} {:>9} {:>11} {:>9} {:>10} {:>8}",
            "shape", "fwd ms", "fwd+bwd ms", "GEMM ms", "im2col ms", "GFLOP/s"
        );
        let (mut lenet, mut resnet) = (0.0, 0.0);
        for sh in SHAPES {
            let x = rand(&[sh.n, sh.cin, sh.hw, sh.hw], 1);
            let w = rand(&[sh.cout, sh.cin, sh.k, sh.k], 2);
            let b = rand(&[sh.cout], 3);
            let opts = ConvOpts::new().stride(&[sh.stride]).pad(sh.pad);
            let fwd = time_ms(|| {
                ferrovision_tensor::no_grad(|| x.conv2d(&w, Some(&b), &opts).unwrap());
            });
            let (xg, wg, bg) = (
                x.clone().requires_grad_(true),
                w.clone().requires_grad_(true),
                b.clone().requires_grad_(true),
            );
            let y = x.conv2d(&w, Some(&b), &opts).unwrap();
            let gy = rand(y.shape(), 4);
            let both = time_ms(|| {
                for t in [&xg, &wg, &bg] {
                    t.zero_grad();
                }
                let y = xg.conv2d(&wg, Some(&bg), &opts).unwrap();
                y.backward_with(&gy).unwrap();
            });
            // The same work split into its parts: three whole-batch GEMMs and im2col + col2im.
            let oh = y.shape()[2];
            let p = oh * oh;
            let (m, kdim, ncols) = (sh.cout, sh.cin * sh.k * sh.k, sh.n * p);
            let wv = w.to_vec::<f32>().unwrap();
            let mut col = vec![0.5f32; kdim * ncols];
            let gv = vec![0.25f32; m * ncols];
            let mut out = vec![0.0f32; m * ncols];
            let mut dw = vec![0.0f32; m * kdim];
            let gemm = time_ms(|| {
                let e = Epilogue::default();
                sgemm(
                    m, ncols, kdim, &wv, kdim, 1, &col, ncols, 1, &mut out, ncols, false, e,
                );
                sgemm(
                    kdim, ncols, m, &wv, 1, kdim, &gv, ncols, 1, &mut col, ncols, false, e,
                );
                sgemm(
                    m, kdim, ncols, &gv, ncols, 1, &col, 1, ncols, &mut dw, kdim, false, e,
                );
            });
            let win = Window {
                input: vec![sh.hw, sh.hw],
                out: vec![oh, oh],
                kernel: vec![sh.k, sh.k],
                stride: vec![sh.stride; 2],
                pad: vec![sh.pad; 2],
                dilation: vec![1, 1],
            };
            let xv = x.to_vec::<f32>().unwrap();
            let mut dx = vec![0.0f32; xv.len()];
            let plane = sh.hw * sh.hw;
            let kk = sh.k * sh.k;
            let i2c = time_ms(|| {
                for img in 0..sh.n {
                    for c in 0..sh.cin {
                        let xs = &xv[(img * sh.cin + c) * plane..][..plane];
                        im2col(xs, &win, &mut col[c * kk * ncols + img * p..], ncols);
                    }
                }
                for img in 0..sh.n {
                    for c in 0..sh.cin {
                        let d = &mut dx[(img * sh.cin + c) * plane..][..plane];
                        col2im(&col[c * kk * ncols + img * p..], ncols, &win, d);
                    }
                }
            });
            let flops = 2.0 * 3.0 * (m * kdim * ncols) as f64;
            println!(
                "{:<30} {:>9.3} {:>11.3} {:>9.3} {:>10.3} {:>8.2}",
                sh.name,
                fwd,
                both,
                gemm,
                i2c,
                flops / (both * 1e-3) / 1e9
            );
            if sh.name.starts_with("lenet") {
                lenet += both * sh.count as f64;
            } else {
                resnet += both * sh.count as f64;
            }
        }
        println!(
            "total fwd+bwd over the network's convs: LeNet-5 {lenet:.2} ms, ResNet-18 {resnet:.2} ms"
        );
    }
}
