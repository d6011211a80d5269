//! Reductions: values against an f64 reference over many axis patterns (including the
//! multi-threaded paths and non-contiguous inputs), arg-reductions, gradient checks and errors.

mod common;
use common::uniform;
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::ops::reduce::NormOrd;
use ferrovision_tensor::{DType, Result, Tensor};

fn check(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    GradCheck::default().run(f, inputs).unwrap();
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

/// Reference reduction in f64: groups the row-major values of `shape` by their kept index.
fn reference(
    x: &[f32],
    shape: &[usize],
    axes: &[usize],
    init: f64,
    f: impl Fn(f64, f64) -> f64,
) -> Vec<f64> {
    let kept: Vec<usize> = (0..shape.len()).filter(|d| !axes.contains(d)).collect();
    let n_out: usize = kept.iter().map(|&d| shape[d]).product();
    let mut out = vec![init; n_out];
    let mut idx = vec![0usize; shape.len()];
    for &v in x {
        let mut o = 0;
        for &d in &kept {
            o = o * shape[d] + idx[d];
        }
        out[o] = f(out[o], v as f64);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

fn assert_vals(name: &str, got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || (*g as f64 - w).abs() <= atol + rtol * w.abs();
        assert!(ok, "{name}: element {i}: {g} vs {w}");
    }
}

fn pos_axes(axes: &[usize]) -> Vec<isize> {
    axes.iter().map(|&a| a as isize).collect()
}

/// Shapes and axis sets covering leading, trailing, middle, alternating and all-axes patterns;
/// the big ones exercise every parallel split.
fn patterns() -> Vec<(Vec<usize>, Vec<usize>)> {
    vec![
        (vec![7], vec![0]),
        (vec![5, 9], vec![0]),
        (vec![5, 9], vec![1]),
        (vec![5, 9], vec![0, 1]),
        (vec![2, 3, 4, 5], vec![0, 2, 3]),
        (vec![2, 3, 4, 5], vec![1]),
        (vec![2, 3, 4, 5], vec![1, 3]),
        (vec![2, 3, 4, 5], vec![0, 2]),
        (vec![2, 1, 4, 1], vec![1, 3]),
        (vec![2, 1, 4, 1], vec![0, 1]),
        (vec![3, 4], vec![]),
        (vec![0, 4], vec![0]),
        (vec![4, 0], vec![1]),
        // Parallel paths: many rows; few long rows; tall-narrow; wide; batch-norm style.
        (vec![300, 301], vec![1]),
        (vec![2, 70_001], vec![1]),
        (vec![70_001, 3], vec![0]),
        (vec![700, 1_000], vec![0]),
        (vec![9, 130, 60], vec![1]),
        (vec![8, 16, 24, 24], vec![0, 2, 3]),
        (vec![150_000], vec![0]),
    ]
}

#[test]
fn sum_mean_max_min_match_reference() {
    for (i, (shape, axes)) in patterns().into_iter().enumerate() {
        let x = uniform(&shape, -1.0, 1.0, i as u64 + 1);
        let xv = vals(&x);
        let ax = pos_axes(&axes);
        let axes_all: Vec<usize> = if axes.is_empty() {
            (0..shape.len()).collect()
        } else {
            axes.clone()
        };
        let count: usize = axes_all.iter().map(|&d| shape[d]).product();
        let sum = reference(&xv, &shape, &axes_all, 0.0, |a, b| a + b);
        let name = format!("sum {shape:?} over {axes:?}");
        let tol = 2e-6 * (count as f64).sqrt().max(1.0);
        assert_vals(&name, &vals(&x.sum(&ax, false).unwrap()), &sum, 1e-5, tol);
        let keep = x.sum(&ax, true).unwrap();
        assert_eq!(keep.rank(), shape.len(), "{name} keepdim");
        if count == 0 {
            continue;
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / count as f64).collect();
        assert_vals(
            &format!("mean {shape:?} {axes:?}"),
            &vals(&x.mean(&ax, false).unwrap()),
            &mean,
            1e-5,
            tol / count as f64,
        );
        let mx = reference(&xv, &shape, &axes_all, f64::NEG_INFINITY, f64::max);
        assert_vals("max", &vals(&x.max(&ax, false).unwrap()), &mx, 0.0, 0.0);
        let mn = reference(&xv, &shape, &axes_all, f64::INFINITY, f64::min);
        assert_vals("min", &vals(&x.min(&ax, true).unwrap()), &mn, 0.0, 0.0);
    }
}

#[test]
fn reductions_of_non_contiguous_inputs() {
    let base = uniform(&[6, 5, 4], -1.0, 1.0, 40);
    let x = base.permute(&[2, 0, 1]).unwrap(); // [4, 6, 5]
    let xc = x.contiguous().unwrap();
    for axes in [vec![0isize], vec![1], vec![2], vec![0, 2], vec![]] {
        assert_eq!(
            vals(&x.sum(&axes, false).unwrap()),
            vals(&xc.sum(&axes, false).unwrap())
        );
        assert_eq!(
            vals(&x.max(&axes, true).unwrap()),
            vals(&xc.max(&axes, true).unwrap())
        );
    }
    let s = base.slice(1, 0, 5, 2).unwrap();
    assert_eq!(
        vals(&s.var(&[1], 1, false).unwrap()),
        vals(&s.contiguous().unwrap().var(&[1], 1, false).unwrap())
    );
}

#[test]
fn shapes_and_convenience() {
    let x = uniform(&[2, 3, 4], -1.0, 1.0, 2);
    assert_eq!(x.sum(&[1], false).unwrap().shape(), &[2, 4]);
    assert_eq!(x.sum(&[-1, 0], true).unwrap().shape(), &[1, 3, 1]);
    assert_eq!(x.max(&[], false).unwrap().shape(), &[] as &[usize]);
    assert_eq!(x.sum_all().unwrap().shape(), &[] as &[usize]);
    let v = vals(&x);
    let total: f32 = v.iter().sum();
    assert!((x.sum_all().unwrap().item().unwrap() as f32 - total).abs() < 1e-5);
    assert!((x.mean_all().unwrap().item().unwrap() as f32 - total / 24.0).abs() < 1e-6);
    let mx = v.iter().copied().fold(f32::MIN, f32::max);
    let mn = v.iter().copied().fold(f32::MAX, f32::min);
    assert_eq!(x.max_all().unwrap().item().unwrap() as f32, mx);
    assert_eq!(x.min_all().unwrap().item().unwrap() as f32, mn);
    // A 0-d tensor reduces to itself.
    let s = Tensor::scalar(3.0);
    assert_eq!(s.sum_all().unwrap().item().unwrap(), 3.0);
    assert_eq!(s.max(&[], true).unwrap().item().unwrap(), 3.0);
    // Empty reductions: sum 0, prod 1.
    let e = Tensor::zeros(&[0, 3]);
    assert_eq!(vals(&e.sum(&[0], false).unwrap()), vec![0.0; 3]);
    assert_eq!(vals(&e.prod(&[0], false).unwrap()), vec![1.0; 3]);
}

#[test]
fn nan_propagates_through_max_min() {
    let x = Tensor::from_vec(vec![1.0f32, f32::NAN, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let m = vals(&x.max(&[1], false).unwrap());
    assert!(m[0].is_nan());
    assert_eq!(m[1], 6.0);
    let m = vals(&x.min(&[0], false).unwrap());
    assert_eq!(m[0], 1.0);
    assert!(m[1].is_nan());
    assert_eq!(
        x.argmax(1, false).unwrap().to_vec::<i64>().unwrap(),
        vec![1, 2]
    );
}

#[test]
fn argmax_argmin_exact() {
    let x = Tensor::from_vec(
        vec![
            3.0f32, 1.0, 3.0, 0.0, 2.0, 2.0, -1.0, 5.0, 5.0, 4.0, 4.0, 4.0,
        ],
        &[3, 4],
    )
    .unwrap();
    assert_eq!(
        x.argmax(1, false).unwrap().to_vec::<i64>().unwrap(),
        vec![0, 3, 0]
    );
    assert_eq!(
        x.argmin(1, false).unwrap().to_vec::<i64>().unwrap(),
        vec![3, 2, 1]
    );
    assert_eq!(
        x.argmax(0, false).unwrap().to_vec::<i64>().unwrap(),
        vec![2, 2, 2, 1]
    );
    assert_eq!(
        x.argmin(-2, true).unwrap().to_vec::<i64>().unwrap(),
        vec![1, 0, 1, 0]
    );
    let k = x.argmax(1, true).unwrap();
    assert_eq!(k.shape(), &[3, 1]);
    assert_eq!(k.dtype(), DType::I64);
    assert_eq!(x.argmax_all().unwrap().item().unwrap(), 7.0);
    assert_eq!(x.argmin_all().unwrap().item().unwrap(), 6.0);
    // Integer dtypes and non-contiguous views.
    let i = Tensor::from_vec(vec![5i64, 9, 9, -2, 0, 7], &[2, 3]).unwrap();
    assert_eq!(
        i.argmax(1, false).unwrap().to_vec::<i64>().unwrap(),
        vec![1, 2]
    );
    assert_eq!(
        i.t()
            .unwrap()
            .argmax(1, false)
            .unwrap()
            .to_vec::<i64>()
            .unwrap(),
        vec![0, 0, 0]
    );
    let u = Tensor::from_vec(vec![3u8, 200, 7], &[3]).unwrap();
    assert_eq!(u.argmin(0, false).unwrap().item().unwrap(), 0.0);
    let i32t = Tensor::from_vec(vec![3i32, -200, 7], &[3]).unwrap();
    assert_eq!(i32t.argmin(0, false).unwrap().item().unwrap(), 1.0);
    // Large input along a middle axis.
    let big = uniform(&[3, 1000, 7], -1.0, 1.0, 9);
    let bv = vals(&big);
    let am = big.argmax(1, false).unwrap().to_vec::<i64>().unwrap();
    for a in 0..3 {
        for c in 0..7 {
            let col: Vec<f32> = (0..1000).map(|j| bv[a * 7000 + j * 7 + c]).collect();
            let best = col.iter().copied().fold(f32::MIN, f32::max);
            let first = col.iter().position(|&v| v == best).unwrap() as i64;
            assert_eq!(am[a * 7 + c], first);
        }
    }
    assert!(x.argmax(2, false).is_err());
    assert!(Tensor::zeros(&[0, 2]).argmax(0, false).is_err());
}

#[test]
fn prod_var_std_logsumexp_norm_values() {
    let x = uniform(&[3, 4, 5], -1.5, 1.5, 11);
    let xv = vals(&x);
    let shape = [3usize, 4, 5];
    for axes in [vec![1usize], vec![0, 2], vec![0, 1, 2]] {
        let ax = pos_axes(&axes);
        let count: usize = axes.iter().map(|&d| shape[d]).product();
        let p = reference(&xv, &shape, &axes, 1.0, |a, b| a * b);
        assert_vals("prod", &vals(&x.prod(&ax, false).unwrap()), &p, 1e-5, 1e-12);
        let s = reference(&xv, &shape, &axes, 0.0, |a, b| a + b);
        let s2 = reference(&xv, &shape, &axes, 0.0, |a, b| a + b * b);
        for corr in [0usize, 1] {
            let var: Vec<f64> = s
                .iter()
                .zip(&s2)
                .map(|(s, s2)| (s2 - s * s / count as f64) / (count - corr) as f64)
                .collect();
            assert_vals(
                "var",
                &vals(&x.var(&ax, corr, false).unwrap()),
                &var,
                1e-5,
                1e-6,
            );
            let std: Vec<f64> = var.iter().map(|v| v.sqrt()).collect();
            assert_vals(
                "std",
                &vals(&x.std(&ax, corr, true).unwrap()),
                &std,
                1e-5,
                1e-6,
            );
        }
        let lse = reference(&xv, &shape, &axes, 0.0, |a, b| a + b.exp());
        let lse: Vec<f64> = lse.iter().map(|v| v.ln()).collect();
        assert_vals(
            "logsumexp",
            &vals(&x.logsumexp(&ax, false).unwrap()),
            &lse,
            1e-6,
            1e-6,
        );
        let l1 = reference(&xv, &shape, &axes, 0.0, |a, b| a + b.abs());
        assert_vals(
            "l1",
            &vals(&x.norm(NormOrd::L1, &ax, false).unwrap()),
            &l1,
            1e-6,
            1e-6,
        );
        let l2: Vec<f64> = s2.iter().map(|v| v.sqrt()).collect();
        assert_vals(
            "l2",
            &vals(&x.norm(NormOrd::L2, &ax, false).unwrap()),
            &l2,
            1e-6,
            1e-6,
        );
    }
    // Stability: huge values and -inf rows.
    let big =
        Tensor::from_vec(vec![1000.0f32, 1000.0, -1000.0, f32::NEG_INFINITY], &[2, 2]).unwrap();
    let l = vals(&big.logsumexp(&[1], false).unwrap());
    assert!((l[0] - (1000.0 + 2f32.ln())).abs() < 1e-3);
    assert_eq!(l[1], -1000.0);
    let ninf = Tensor::full(&[3], f32::NEG_INFINITY);
    assert_eq!(
        vals(&ninf.logsumexp(&[], false).unwrap()),
        vec![f32::NEG_INFINITY]
    );
    // Whole-tensor L2 norm of a large input (parallel path).
    let large = uniform(&[200_000], -1.0, 1.0, 12);
    let want: f64 = vals(&large)
        .iter()
        .map(|&v| (v as f64) * (v as f64))
        .sum::<f64>()
        .sqrt();
    let got = large.norm(NormOrd::L2, &[], false).unwrap().item().unwrap();
    assert!((got - want).abs() < 1e-5 * want);
    // var with a single element and correction 1 is NaN, like PyTorch.
    assert!(vals(&Tensor::ones(&[1]).var(&[0], 1, false).unwrap())[0].is_nan());
}

#[test]
fn reduction_gradients() {
    let x = uniform(&[3, 4, 5], -1.0, 1.0, 20);
    for axes in [vec![0isize], vec![1], vec![-1], vec![0, 2], vec![]] {
        for keep in [false, true] {
            let a = axes.clone();
            check(|t| t[0].sum(&a, keep), std::slice::from_ref(&x));
            check(|t| t[0].mean(&a, keep), std::slice::from_ref(&x));
            check(|t| t[0].var(&a, 1, keep), std::slice::from_ref(&x));
            check(|t| t[0].var(&a, 0, keep), std::slice::from_ref(&x));
            check(|t| t[0].std(&a, 1, keep), std::slice::from_ref(&x));
            check(|t| t[0].logsumexp(&a, keep), std::slice::from_ref(&x));
            check(
                |t| t[0].norm(NormOrd::L2, &a, keep),
                std::slice::from_ref(&x),
            );
            check(|t| t[0].prod(&a, keep), &[x.add_scalar(1.5).unwrap()]);
        }
    }
    // Max/min: distinct values spaced wider than the FD step.
    let perm: Vec<f32> = (0..60)
        .map(|i| ((i * 37) % 60) as f32 * 0.1 - 3.0)
        .collect();
    let d = Tensor::from_vec(perm, &[3, 4, 5]).unwrap();
    for axes in [vec![0isize], vec![2], vec![0, 2], vec![]] {
        let a = axes.clone();
        check(|t| t[0].max(&a, false), std::slice::from_ref(&d));
        check(|t| t[0].min(&a, true), std::slice::from_ref(&d));
    }
    // L1 away from 0.
    let nz: Vec<f32> = vals(&x)
        .into_iter()
        .map(|v| {
            if v.abs() < 0.05 {
                0.05f32.copysign(v)
            } else {
                v
            }
        })
        .collect();
    let nz = Tensor::from_vec(nz, &[3, 4, 5]).unwrap();
    check(|t| t[0].norm(NormOrd::L1, &[1], false), &[nz]);
}

#[test]
fn reduction_gradients_non_contiguous() {
    let x = uniform(&[4, 3, 5], -1.0, 1.0, 21);
    check(
        |t| t[0].permute(&[2, 0, 1])?.sum(&[0, 2], false),
        std::slice::from_ref(&x),
    );
    check(
        |t| t[0].transpose(0, 1)?.mean(&[1], true),
        std::slice::from_ref(&x),
    );
    check(
        |t| t[0].slice(2, 0, 5, 2)?.var(&[2], 1, false),
        std::slice::from_ref(&x),
    );
    check(
        |t| t[0].t()?.logsumexp(&[0], false),
        &[uniform(&[4, 6], -2.0, 2.0, 22)],
    );
    check(
        |t| t[0].permute(&[1, 0, 2])?.prod(&[2], false),
        &[x.add_scalar(1.5).unwrap()],
    );
    // Broadcast gradient reduction (bias-like patterns).
    let bias = uniform(&[1, 3, 1, 1], -1.0, 1.0, 23);
    let act = uniform(&[2, 3, 4, 4], -1.0, 1.0, 24);
    check(|t| t[0].add(&t[1])?.mul(&t[0]), &[act, bias]);
}

#[test]
fn max_gradient_goes_to_the_first_maximum() {
    let x = Tensor::from_vec(vec![1.0f32, 3.0, 3.0, 2.0, 5.0, 5.0, 5.0, 0.0], &[2, 4])
        .unwrap()
        .requires_grad_(true);
    x.max(&[1], false)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(
        vals(&x.grad().unwrap()),
        vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    );
    x.zero_grad();
    x.min(&[0], false)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(
        vals(&x.grad().unwrap()),
        vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    );
    x.zero_grad();
    x.max_all().unwrap().backward().unwrap();
    assert_eq!(
        vals(&x.grad().unwrap()),
        vec![0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn prod_gradient_with_zeros() {
    let x = Tensor::from_vec(
        vec![2.0f32, 3.0, 4.0, 2.0, 0.0, 5.0, 0.0, 3.0, 0.0],
        &[3, 3],
    )
    .unwrap()
    .requires_grad_(true);
    x.prod(&[1], false)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(
        vals(&x.grad().unwrap()),
        vec![12.0, 8.0, 6.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0]
    );
    // Gradient check around a single zero (the function is polynomial, FD is exact enough).
    let z = Tensor::from_vec(vec![0.0f32, 1.5, -2.0, 0.7, 1.1, 0.0, 0.0, 0.9], &[2, 4]).unwrap();
    check(|t| t[0].prod(&[1], false), std::slice::from_ref(&z));
    check(|t| t[0].prod(&[], false), &[z]);
}

#[test]
fn norm_gradient_at_zero_is_zero() {
    let x = Tensor::zeros(&[2, 3]).requires_grad_(true);
    x.norm(NormOrd::L2, &[1], false)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(vals(&x.grad().unwrap()), vec![0.0; 6]);
    x.zero_grad();
    x.norm(NormOrd::L1, &[], false).unwrap().backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), vec![0.0; 6]);
}

#[test]
fn sum_to_shape_patterns() {
    let g = uniform(&[2, 3, 4, 5], -1.0, 1.0, 30);
    let gv = vals(&g);
    let shape = [2usize, 3, 4, 5];
    let b = g.sum_to_shape(&[1, 3, 1, 1]).unwrap();
    assert_eq!(b.shape(), &[1, 3, 1, 1]);
    assert_vals(
        "bias",
        &vals(&b),
        &reference(&gv, &shape, &[0, 2, 3], 0.0, |a, b| a + b),
        1e-5,
        1e-5,
    );
    let c = g.sum_to_shape(&[4, 1]).unwrap();
    assert_eq!(c.shape(), &[4, 1]);
    assert_vals(
        "trailing",
        &vals(&c),
        &reference(&gv, &shape, &[0, 1, 3], 0.0, |a, b| a + b),
        1e-5,
        1e-5,
    );
    assert_eq!(vals(&g.sum_to_shape(&shape).unwrap()), gv);
    assert!(g.sum_to_shape(&[3, 5]).is_err());
}

#[test]
fn reduction_errors_name_the_op() {
    let x = Tensor::zeros(&[2, 3]);
    let e = x.sum(&[2], false).unwrap_err().to_string();
    assert!(e.starts_with("sum:") && e.contains("axis 2"), "{e}");
    let e = x.var(&[0, -2], 1, false).unwrap_err().to_string();
    assert!(e.starts_with("var:") && e.contains("repeated"), "{e}");
    let e = Tensor::zeros(&[0, 3])
        .max(&[0], false)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("max:"), "{e}");
    let e = Tensor::from_vec(vec![1i64], &[1])
        .unwrap()
        .sum_all()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("sum:"), "{e}");
    assert!(Tensor::zeros(&[0]).mean_all().is_err());
}
