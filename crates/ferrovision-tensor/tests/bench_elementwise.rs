//! Timings of the elementwise and reduction kernels (ignored by default; run in release):
//! `cargo test --release -p ferrovision-tensor --test bench_elementwise -- --ignored --nocapture`

mod common;
use common::uniform;
use ferrovision_tensor::kernels::elementwise as ew;
use ferrovision_tensor::kernels::{set_isa_override, Isa};
use ferrovision_tensor::Tensor;
use std::hint::black_box;
use std::time::Instant;

/// Best time of `reps` runs of `f`, in milliseconds.
fn best_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    best
}

type SliceKernel = fn(&[f32], &mut [f32]);

#[test]
#[ignore]
fn kernel_throughput() {
    let n = 1 << 16; // in L2
    let x: Vec<f32> = uniform(&[n], -8.0, 8.0, 1).to_vec().unwrap();
    let xp: Vec<f32> = x.iter().map(|v| v.abs() + 0.1).collect();
    let mut out = vec![0.0f32; n];
    let kernels: Vec<(&str, SliceKernel, bool)> = vec![
        ("exp", ew::exp_slice, false),
        ("log", ew::log_slice, true),
        ("tanh", ew::tanh_slice, false),
        ("sigmoid", ew::sigmoid_slice, false),
        ("erf", ew::erf_slice, false),
        ("gelu", ew::gelu_slice, false),
        ("gelu_tanh", ew::gelu_tanh_slice, false),
    ];
    println!("single thread, {n} elements, ns/element:");
    for (name, k, pos) in &kernels {
        let src = if *pos { &xp } else { &x };
        let mut line = format!("{name:>10}:");
        for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
            set_isa_override(Some(isa));
            let ms = best_ms(50, || k(black_box(src), &mut out));
            line += &format!("  {isa:?} {:.3}", ms * 1e6 / n as f64);
        }
        set_isa_override(None);
        let libm: fn(f32) -> f32 = match *name {
            "exp" => f32::exp,
            "log" => f32::ln,
            "tanh" => f32::tanh,
            "sigmoid" => |v| 1.0 / (1.0 + (-v).exp()),
            _ => |v| v,
        };
        if !matches!(*name, "erf" | "gelu" | "gelu_tanh") {
            let ms = best_ms(50, || {
                for (o, &v) in out.iter_mut().zip(black_box(src)) {
                    *o = libm(v);
                }
            });
            line += &format!("  std {:.3}", ms * 1e6 / n as f64);
        }
        println!("{line}");
    }
    for isa in [Isa::Scalar, Isa::Avx512] {
        set_isa_override(Some(isa));
        let ms = best_ms(50, || {
            ew::map2(black_box(&x), &xp, &mut out, |g, x| g * ew::gelu_grad(x))
        });
        println!(
            "gelu grad map2 {isa:?}: {:.3} ns/element",
            ms * 1e6 / n as f64
        );
        let ms = best_ms(50, || ew::map1(black_box(&x), &mut out, ew::gelu_grad));
        println!(
            "gelu grad map1 {isa:?}: {:.3} ns/element",
            ms * 1e6 / n as f64
        );
        let ms = best_ms(50, || ew::map1(black_box(&x), &mut out, ew::normal_cdf));
        println!("normal_cdf {isa:?}: {:.3} ns/element", ms * 1e6 / n as f64);
        let ms = best_ms(50, || ew::map1(black_box(&x), &mut out, ew::normal_pdf));
        println!("normal_pdf {isa:?}: {:.3} ns/element", ms * 1e6 / n as f64);
    }
    set_isa_override(None);
    let ms = best_ms(200, || {
        black_box(ew::reduce(black_box(&x), ew::SumOp));
    });
    println!("       sum: {:.3} ns/element", ms * 1e6 / n as f64);
}

#[test]
#[ignore]
fn tensor_ops() {
    println!("threads: {}", ferrovision_tensor::kernels::num_threads());
    let x = uniform(&[32, 64, 56, 56], -3.0, 3.0, 2); // 6.4M elements, 25.7 MB
    let n = x.numel() as f64;
    let bias = uniform(&[1, 64, 1, 1], -1.0, 1.0, 3);
    let report = |name: &str, ms: f64| {
        println!(
            "{name:>36}: {ms:8.3} ms  ({:.2} GB/s read)",
            n * 4.0 / ms / 1e6
        )
    };
    report(
        "gelu fwd",
        best_ms(10, || drop(black_box(x.gelu().unwrap()))),
    );
    report(
        "relu fwd",
        best_ms(10, || drop(black_box(x.relu().unwrap()))),
    );
    report("exp fwd", best_ms(10, || drop(black_box(x.exp().unwrap()))));
    report(
        "add bias [1,C,1,1]",
        best_ms(10, || drop(black_box(x.add(&bias).unwrap()))),
    );
    report(
        "mul same shape",
        best_ms(10, || drop(black_box(x.mul(&x).unwrap()))),
    );
    let xr = x.detach().requires_grad_(true);
    report(
        "relu fwd+bwd",
        best_ms(5, || {
            xr.zero_grad();
            xr.relu().unwrap().backward_with(&x).unwrap();
        }),
    );
    report(
        "gelu fwd+bwd",
        best_ms(5, || {
            xr.zero_grad();
            xr.gelu().unwrap().backward_with(&x).unwrap();
        }),
    );
    let seed = x.mul_scalar(1.0).unwrap();
    report(
        "gelu fwd+bwd (seed in other storage)",
        best_ms(5, || {
            xr.zero_grad();
            xr.gelu().unwrap().backward_with(&seed).unwrap();
        }),
    );
    report(
        "gelu fwd recorded",
        best_ms(5, || drop(black_box(xr.gelu().unwrap()))),
    );
    report(
        "silu fwd+bwd",
        best_ms(5, || {
            xr.zero_grad();
            xr.silu().unwrap().backward_with(&seed).unwrap();
        }),
    );
    for (name, f) in [
        (
            "elu",
            (|t: &Tensor| t.elu(1.0)) as fn(&Tensor) -> ferrovision_tensor::Result<Tensor>,
        ),
        ("selu", |t| t.selu()),
        ("sigmoid", |t| t.sigmoid()),
        ("tanh", |t| t.tanh()),
        ("softplus", |t| t.softplus()),
        ("gelu_tanh", |t| t.gelu_tanh()),
        ("hard_swish", |t| t.hard_swish()),
        ("clamp", |t| t.clamp(Some(-1.0), Some(1.0))),
    ] {
        report(
            &format!("{name} fwd+bwd"),
            best_ms(5, || {
                xr.zero_grad();
                f(&xr).unwrap().backward_with(&seed).unwrap();
            }),
        );
    }
    let br = bias.detach().requires_grad_(true);
    report(
        "add bias fwd+bwd (bias grad only)",
        best_ms(5, || {
            br.zero_grad();
            x.add(&br).unwrap().backward_with(&x).unwrap();
        }),
    );
    report(
        "mul by [1,C,1,1] fwd+bwd (both grads)",
        best_ms(5, || {
            xr.zero_grad();
            br.zero_grad();
            xr.mul(&br).unwrap().backward_with(&seed).unwrap();
        }),
    );
    for _ in 0..2 {
        report(
            "mul by [1,C,1,1] + its grad, fused",
            best_ms(10, || {
                br.zero_grad();
                x.mul(&br).unwrap().backward_with(&seed).unwrap();
            }),
        );
        report(
            "  same, unfused (g*x then sum_to_shape)",
            best_ms(10, || {
                drop(black_box(x.mul(&bias).unwrap()));
                drop(black_box(
                    seed.mul(&x).unwrap().sum_to_shape(&[1, 64, 1, 1]).unwrap(),
                ))
            }),
        );
    }
    let b2 = uniform(&[64, 1, 1], 0.5, 2.0, 4).requires_grad_(true);
    report(
        "div by [C,1,1] fwd+bwd (both grads)",
        best_ms(5, || {
            xr.zero_grad();
            b2.zero_grad();
            xr.div(&b2).unwrap().backward_with(&seed).unwrap();
        }),
    );
    report(
        "maximum with [C,1,1] fwd+bwd",
        best_ms(5, || {
            xr.zero_grad();
            b2.zero_grad();
            xr.maximum(&b2).unwrap().backward_with(&seed).unwrap();
        }),
    );
    report(
        "sum over [0,2,3] (batch norm)",
        best_ms(10, || drop(black_box(x.sum(&[0, 2, 3], false).unwrap()))),
    );
    report(
        "  same via permute+copy (old path)",
        best_ms(5, || {
            let p = x.permute(&[1, 0, 2, 3]).unwrap().contiguous().unwrap();
            drop(black_box(p.sum(&[1, 2, 3], false).unwrap()));
        }),
    );
    report(
        "sum over [0] (leading)",
        best_ms(10, || drop(black_box(x.sum(&[0], false).unwrap()))),
    );
    report(
        "sum over [3] (trailing)",
        best_ms(10, || drop(black_box(x.sum(&[3], false).unwrap()))),
    );
    report(
        "sum all",
        best_ms(10, || drop(black_box(x.sum_all().unwrap()))),
    );
    report(
        "max over [1]",
        best_ms(10, || drop(black_box(x.max(&[1], false).unwrap()))),
    );
    report(
        "var over [0,2,3]",
        best_ms(5, || drop(black_box(x.var(&[0, 2, 3], 0, false).unwrap()))),
    );
    report(
        "logsumexp over [1]",
        best_ms(5, || drop(black_box(x.logsumexp(&[1], false).unwrap()))),
    );
    report(
        "gt_scalar",
        best_ms(10, || drop(black_box(x.gt_scalar(0.0).unwrap()))),
    );
}
