//! Accuracy of the fast-math kernels against f64 references, and SIMD paths against the scalar
//! path (bit-identical results on odd lengths).

use ferrovision_tensor::kernels::elementwise as ew;
use ferrovision_tensor::kernels::{set_isa_override, Isa};
use ferrovision_tensor::rng::Rng;
use std::sync::Mutex;

/// The ISA override is process-wide: tests that change it take this lock.
static ISA_LOCK: Mutex<()> = Mutex::new(());

// ----- f64 references -----

fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = x;
    let mut sum = 0.0;
    for n in 0..200 {
        let contrib = term / (2 * n + 1) as f64;
        sum += contrib;
        if contrib.abs() < 1e-18 * sum.abs() {
            break;
        }
        term *= -x2 / (n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// erfc(x) for x >= 2 by its continued fraction.
fn erfc_cf(x: f64) -> f64 {
    let mut f = x;
    for k in (1..=300).rev() {
        f = x + (k as f64 / 2.0) / f;
    }
    (-x * x).exp() / (std::f64::consts::PI.sqrt() * f)
}

fn erfc_ref(x: f64) -> f64 {
    if x.is_nan() {
        f64::NAN
    } else if x >= 2.0 {
        erfc_cf(x)
    } else if x <= -2.0 {
        2.0 - erfc_cf(-x)
    } else {
        1.0 - erf_series(x)
    }
}

fn erf_ref(x: f64) -> f64 {
    if x.is_nan() {
        f64::NAN
    } else if x.abs() < 2.0 {
        erf_series(x)
    } else {
        (1.0 - erfc_cf(x.abs())).copysign(x)
    }
}

fn sigmoid_ref(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn gelu_ref(x: f64) -> f64 {
    x * 0.5 * erfc_ref(-x / std::f64::consts::SQRT_2)
}

fn gelu_tanh_ref(x: f64) -> f64 {
    let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    x * sigmoid_ref(2.0 * u)
}

/// Error of `got` in units of the f32 spacing at the reference value.
fn ulp_err(got: f32, want: f64) -> f64 {
    if want.is_nan() {
        return if got.is_nan() { 0.0 } else { f64::INFINITY };
    }
    if want.is_infinite() || (want.abs() > f32::MAX as f64 * (1.0 + 2f64.powi(-25))) {
        return if got as f64 == want.signum() * f64::INFINITY {
            0.0
        } else {
            f64::INFINITY
        };
    }
    let w = want.abs().max(f32::MIN_POSITIVE as f64 * 2f64.powi(-23));
    let ulp = 2f64.powi((w.log2().floor() as i32).max(-126) - 23);
    (got as f64 - want).abs() / ulp
}

/// Inputs spanning the interesting ranges of a function: dense grids, log-spaced magnitudes of
/// both signs, and special values.
fn sweep(lo: f32, hi: f32) -> Vec<f32> {
    let mut v = Vec::new();
    let n = 200_000;
    for i in 0..=n {
        v.push(lo + (hi - lo) * i as f32 / n as f32);
    }
    let mut m = 1e-30f32;
    while m < 1e30 {
        for x in [m, -m] {
            if x >= lo && x <= hi {
                v.push(x);
            }
        }
        m *= 1.07;
    }
    let mut rng = Rng::new(11);
    for _ in 0..100_000 {
        let x = lo + (hi - lo) * rng.next_f32();
        v.push(x);
    }
    v
}

fn specials() -> Vec<f32> {
    vec![
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        1e-45,
        -1e-45,
        f32::MAX,
        f32::MIN,
        1.0,
        -1.0,
    ]
}

/// Max error in ulps of `f` against `r` over `xs` where |ref| >= `floor` (below it, absolute
/// error `abs_tol` is required instead).
fn max_ulp(
    name: &str,
    xs: &[f32],
    f: impl Fn(f32) -> f32,
    r: impl Fn(f64) -> f64,
    floor: f64,
    abs_tol: f64,
) -> f64 {
    let mut worst = 0.0f64;
    let mut worst_x = 0.0f32;
    for &x in xs {
        let got = f(x);
        let want = r(x as f64);
        let e = if want.is_finite() && want.abs() < floor {
            let d = (got as f64 - want).abs();
            assert!(
                d <= abs_tol,
                "{name}({x:e}) = {got:e}, want {want:e} (abs err {d:e})"
            );
            0.0
        } else {
            ulp_err(got, want)
        };
        if e.is_nan() || e > worst {
            worst = e;
            worst_x = x;
        }
    }
    println!("{name}: max error {worst:.2} ulp (at x = {worst_x:e})");
    worst
}

#[test]
fn exp_accuracy() {
    let mut xs = sweep(-110.0, 95.0);
    xs.extend(specials());
    // Results in the subnormal range have coarse spacing; exp stays within one of it there.
    let e = max_ulp("exp", &xs, ew::exp, f64::exp, 0.0, 0.0);
    assert!(e <= 1.0, "exp: {e} ulp");
}

#[test]
fn log_accuracy() {
    let mut xs: Vec<f32> = sweep(0.0, 10.0);
    xs.extend(sweep(-5.0, 1e30).into_iter().map(f32::abs));
    // Every octave boundary and subnormal inputs.
    let mut m = 1e-45f32;
    while m < 3e38 {
        xs.extend([
            m,
            m * 0.999_999,
            m * 1.000_001,
            m * std::f32::consts::SQRT_2,
        ]);
        m *= 2.0;
    }
    xs.extend([
        0.999_999_9,
        1.000_000_1,
        -1.0,
        -0.0,
        f32::INFINITY,
        f32::NAN,
    ]);
    let e = max_ulp("log", &xs, ew::log, f64::ln, 0.0, 0.0);
    assert!(e <= 2.0, "log: {e} ulp");
    assert_eq!(ew::log(0.0), f32::NEG_INFINITY);
    assert_eq!(ew::log(-0.0), f32::NEG_INFINITY);
}

#[test]
fn expm1_accuracy() {
    let mut xs = sweep(-20.0, 20.0);
    xs.extend(sweep(-1.0, 1.0));
    xs.extend(specials());
    let e = max_ulp("expm1", &xs, ew::expm1, f64::exp_m1, 0.0, 0.0);
    assert!(e <= 2.0, "expm1: {e} ulp");
}

#[test]
fn log1p_accuracy() {
    let mut xs: Vec<f32> = sweep(-1.0, 50.0);
    xs.extend(sweep(-1.0, 1e30).into_iter().filter(|&x| x > -1.0));
    xs.extend([-1.0, -2.0, f32::INFINITY, f32::NAN, 1e-30, -1e-30]);
    let e = max_ulp("log1p", &xs, ew::log1p, f64::ln_1p, 0.0, 0.0);
    assert!(e <= 3.0, "log1p: {e} ulp");
}

#[test]
fn tanh_sigmoid_accuracy() {
    let mut xs = sweep(-20.0, 20.0);
    xs.extend(specials());
    let e = max_ulp("tanh", &xs, ew::tanh, f64::tanh, 0.0, 0.0);
    assert!(e <= 2.0, "tanh: {e} ulp");
    let mut xs = sweep(-110.0, 40.0);
    xs.extend(specials());
    let e = max_ulp("sigmoid", &xs, ew::sigmoid, sigmoid_ref, 0.0, 0.0);
    assert!(e <= 2.5, "sigmoid: {e} ulp");
}

#[test]
fn erf_accuracy() {
    let mut xs = sweep(-12.0, 12.0);
    xs.extend(specials());
    let e = max_ulp("erf", &xs, ew::erf, erf_ref, 0.0, 0.0);
    assert!(e <= 4.0, "erf: {e} ulp");
    // erfc: relative accuracy where its value is a normal float and x < 8.
    let xs: Vec<f32> = sweep(-8.0, 8.0);
    let e = max_ulp("erfc (x<8)", &xs, ew::erfc, erfc_ref, 0.0, 0.0);
    assert!(e <= 16.0, "erfc: {e} ulp");
    let xs: Vec<f32> = sweep(8.0, 12.0);
    let e = max_ulp("erfc (x>=8)", &xs, ew::erfc, erfc_ref, 1e-36, 1e-41);
    assert!(e <= 256.0, "erfc tail: {e} ulp");
}

#[test]
fn gelu_accuracy() {
    // Relative error ≈1e-6 (≤ 16 ulp) down to x = -10; deeper values are below 1e-22. The tanh
    // form's argument u ∝ x³ carries a rounding error of ~1e-7·|2u|, so its relative error grows
    // to ~1e-5 where its value falls below 1e-20 (as in any f32 evaluation of that formula).
    let xs = sweep(-10.0, 10.0);
    let e = max_ulp("gelu", &xs, ew::gelu, gelu_ref, 1e-30, 1e-36);
    assert!(e <= 16.0, "gelu: {e} ulp");
    let xs = sweep(-20.0, -10.0);
    max_ulp("gelu (x<-10)", &xs, ew::gelu, gelu_ref, 1e-20, 1e-28);
    let xs = sweep(-4.0, 12.0);
    let e = max_ulp("gelu_tanh", &xs, ew::gelu_tanh, gelu_tanh_ref, 0.0, 0.0);
    assert!(e <= 32.0, "gelu_tanh: {e} ulp");
    let xs = sweep(-12.0, -4.0);
    let e = max_ulp(
        "gelu_tanh (x<-4)",
        &xs,
        ew::gelu_tanh,
        gelu_tanh_ref,
        1e-25,
        1e-30,
    );
    assert!(e <= 256.0, "gelu_tanh tail: {e} ulp");
    for x in specials() {
        let (g, r) = (ew::gelu(x), gelu_ref(x as f64));
        assert!(
            (g.is_nan() && r.is_nan())
                || (g as f64 - r).abs() <= 1e-6 * r.abs() + 1e-45
                || x.is_infinite(),
            "gelu({x}) = {g} vs {r}"
        );
    }
    assert_eq!(ew::gelu(f32::INFINITY), f32::INFINITY);
    assert_eq!(ew::gelu_tanh(f32::INFINITY), f32::INFINITY);
}

#[test]
fn gradients_of_activation_kernels() {
    // Central differences in f64 of the f64 references.
    let h = 1e-5;
    for i in 0..=400 {
        let x = -8.0 + 16.0 * i as f64 / 400.0;
        let d = (gelu_ref(x + h) - gelu_ref(x - h)) / (2.0 * h);
        assert!(
            (ew::gelu_grad(x as f32) as f64 - d).abs() < 1e-5,
            "gelu' at {x}"
        );
        let d = (gelu_tanh_ref(x + h) - gelu_tanh_ref(x - h)) / (2.0 * h);
        assert!(
            (ew::gelu_tanh_grad(x as f32) as f64 - d).abs() < 1e-5,
            "gelu_tanh' at {x}"
        );
        let silu = |x: f64| x * sigmoid_ref(x);
        let d = (silu(x + h) - silu(x - h)) / (2.0 * h);
        assert!(
            (ew::silu_grad(x as f32) as f64 - d).abs() < 1e-5,
            "silu' at {x}"
        );
    }
}

// ----- SIMD vs scalar -----

fn bits_eq(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// Values of all kinds, including specials, for kernels of one input.
fn mixed(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let sp = specials();
    (0..n)
        .map(|i| {
            if i % 11 == 5 {
                sp[(i / 11) % sp.len()]
            } else {
                let u = rng.next_f32();
                match i % 3 {
                    0 => (u - 0.5) * 20.0,
                    1 => (u - 0.5) * 200.0,
                    _ => (u - 0.5) * 2.0,
                }
            }
        })
        .collect()
}

fn with_each_isa(mut f: impl FnMut(Isa)) {
    let _g = ISA_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
        set_isa_override(Some(isa));
        f(isa);
    }
    set_isa_override(None);
}

type SliceKernel = fn(&[f32], &mut [f32]);

#[test]
fn simd_matches_scalar() {
    let kernels: Vec<(&str, SliceKernel)> = vec![
        ("exp", ew::exp_slice),
        ("log", ew::log_slice),
        ("tanh", ew::tanh_slice),
        ("sigmoid", ew::sigmoid_slice),
        ("erf", ew::erf_slice),
        ("gelu", ew::gelu_slice),
        ("gelu_tanh", ew::gelu_tanh_slice),
        ("silu", ew::silu_slice),
        ("expm1", |s, d| ew::map1(s, d, ew::expm1)),
        ("log1p", |s, d| ew::map1(s, d, ew::log1p)),
        ("softplus", |s, d| ew::map1(s, d, ew::softplus)),
        ("gelu_tanh_grad", |s, d| ew::map1(s, d, ew::gelu_tanh_grad)),
        ("silu_grad", |s, d| ew::map1(s, d, ew::silu_grad)),
        ("normal_pdf", |s, d| ew::map1(s, d, ew::normal_pdf)),
    ];
    for n in [1usize, 7, 15, 17, 33, 1000] {
        let x = mixed(n, n as u64);
        let y = mixed(n, 100 + n as u64);
        let z = mixed(n, 200 + n as u64);
        for (name, k) in &kernels {
            let mut outs = Vec::new();
            with_each_isa(|_| {
                let mut o = vec![0.0; n];
                k(&x, &mut o);
                outs.push(o);
            });
            for o in &outs[1..] {
                assert!(
                    bits_eq(&outs[0], o),
                    "{name} n={n}: SIMD differs from scalar"
                );
            }
        }
        // Generic maps with fused backward-style closures, and reductions.
        let mut outs = Vec::new();
        with_each_isa(|_| {
            let mut o1 = vec![0.0; n];
            ew::map2(&x, &y, &mut o1, |g, x| g * ew::gelu_grad(x));
            let mut o2 = vec![0.0; n];
            ew::map3(&x, &y, &z, &mut o2, |a, b, c| {
                if a > 0.0 {
                    b * c
                } else {
                    ew::softplus(c)
                }
            });
            let mut o3 = y.clone();
            ew::apply(&mut o3, ew::log1p);
            ew::zip_apply(&mut o3, &x, |a, b| a.max(b));
            let finite: Vec<f32> = x
                .iter()
                .map(|v| if v.is_finite() { *v } else { 0.5 })
                .collect();
            let reds = vec![
                ew::reduce(&finite, ew::SumOp),
                ew::reduce(&x, ew::MaxOp),
                ew::reduce(&finite, ew::MinOp),
                ew::reduce(&finite[..n.min(20)], ew::ProdOp),
                ew::sum_sq(&finite),
            ];
            let mut acc = y.clone();
            ew::combine_into(&mut acc, &x, ew::MaxOp);
            outs.push((o1, o2, o3, reds, acc));
        });
        for o in &outs[1..] {
            assert!(bits_eq(&outs[0].0, &o.0), "map2 n={n}");
            assert!(bits_eq(&outs[0].1, &o.1), "map3 n={n}");
            assert!(bits_eq(&outs[0].2, &o.2), "apply/zip_apply n={n}");
            assert!(bits_eq(&outs[0].3, &o.3), "reduce n={n}");
            assert!(bits_eq(&outs[0].4, &o.4), "combine_into n={n}");
        }
    }
}

#[test]
fn reductions_are_accurate() {
    let mut rng = Rng::new(3);
    let x: Vec<f32> = (0..1_000_003).map(|_| rng.next_f32()).collect();
    let exact: f64 = x.iter().map(|&v| v as f64).sum();
    let s = ew::reduce(&x, ew::SumOp) as f64;
    assert!((s - exact).abs() / exact < 1e-6, "{s} vs {exact}");
    let exact_sq: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let s = ew::sum_sq(&x) as f64;
    assert!((s - exact_sq).abs() / exact_sq < 1e-6, "{s} vs {exact_sq}");
    let m = ew::reduce(&x, ew::MaxOp);
    assert_eq!(m, x.iter().copied().fold(f32::NEG_INFINITY, f32::max));
}
