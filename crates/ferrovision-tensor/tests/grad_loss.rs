//! Losses: values against f64 references of PyTorch's formulas for every option combination
//! (class weights, sample weights, ignore_index, label smoothing, reductions, spatial targets),
//! known values, errors, and gradient checks.
// `&[x.clone()]` reads better than `std::slice::from_ref(&x)` in gradient-check calls.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;
use common::{assert_close, uniform};
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::ops::loss::{CrossEntropyOpts, Reduction};
use ferrovision_tensor::rng::Rng;
use ferrovision_tensor::{Result, Tensor};

fn check(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    GradCheck::default().run(f, inputs).unwrap();
}

const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

/// Random class targets of `shape` in `0..c`, with about a fifth set to `ignore` if given.
fn targets(shape: &[usize], c: usize, ignore: Option<i64>, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<i64> = (0..n)
        .map(|_| match ignore {
            Some(ii) if rng.below(5) == 0 => ii,
            _ => rng.below(c as u64) as i64,
        })
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// f64 reference of PyTorch's cross_entropy / nll_loss (with this crate's sample weights and
/// 0 for an all-ignored mean).
#[allow(clippy::too_many_arguments)]
fn ce_reference(
    logits: &Tensor,
    t: &[i64],
    ignore: Option<i64>,
    cw: Option<&[f32]>,
    sw: Option<&[f32]>,
    eps: f64,
    red: Reduction,
    log_probs: bool,
) -> Vec<f64> {
    let sh = logits.shape();
    let x = logits.to_vec::<f32>().unwrap();
    let (n, c) = if sh.len() == 1 {
        (1, sh[0])
    } else {
        (sh[0], sh[1])
    };
    let inner: usize = if sh.len() > 2 {
        sh[2..].iter().product()
    } else {
        1
    };
    let w = |k: usize| cw.map_or(1.0, |w| w[k] as f64);
    let mut per = vec![];
    let mut denom = 0.0;
    for o in 0..n {
        for i in 0..inner {
            let p = o * inner + i;
            let xv: Vec<f64> = (0..c).map(|k| x[(o * c + k) * inner + i] as f64).collect();
            let lse = if log_probs {
                0.0
            } else {
                let m = xv.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                m + xv.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
            };
            let logp: Vec<f64> = xv.iter().map(|v| v - lse).collect();
            if Some(t[p]) == ignore {
                per.push(0.0);
                continue;
            }
            let tc = t[p] as usize;
            let s = sw.map_or(1.0, |s| s[p] as f64);
            let smooth: f64 = (0..c).map(|k| -w(k) * logp[k]).sum();
            let l = (1.0 - eps) * w(tc) * -logp[tc] + eps / c as f64 * smooth;
            per.push(s * l);
            denom += s * w(tc);
        }
    }
    let total: f64 = per.iter().sum();
    match red {
        Reduction::None => per,
        Reduction::Sum => vec![total],
        Reduction::Mean => vec![if denom == 0.0 { 0.0 } else { total / denom }],
    }
}

fn to_f64(t: &Tensor) -> Vec<f64> {
    t.to_f64_vec().unwrap()
}

fn assert_close64(a: &[f64], b: &[f64], rtol: f64, atol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= atol + rtol * y.abs(),
            "element {i}: {x} vs {y}"
        );
    }
}

#[test]
fn cross_entropy_known_values() {
    // Uniform logits → ln C.
    for c in [2usize, 10, 1000] {
        let l = Tensor::zeros(&[3, c])
            .cross_entropy(&targets(&[3], c, None, 1), &CrossEntropyOpts::default())
            .unwrap();
        assert!((l.item().unwrap() - (c as f64).ln()).abs() < 1e-5, "{c}");
        assert!(l.shape().is_empty());
    }
    // log(e + e² + e³) − 3.
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[1, 3]).unwrap();
    let t = Tensor::from_vec(vec![2i64], &[1]).unwrap();
    let l = x.cross_entropy(&t, &CrossEntropyOpts::default()).unwrap();
    assert!((l.item().unwrap() - 0.407_605_964).abs() < 1e-6);
    // Unbatched [C] logits with a 0-d target; I32 targets.
    let t0 = Tensor::from_vec(vec![2i32], &[]).unwrap();
    let l0 = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3])
        .unwrap()
        .cross_entropy(&t0, &CrossEntropyOpts::default())
        .unwrap();
    assert!((l0.item().unwrap() - 0.407_605_964).abs() < 1e-6);
    // Confident prediction: −log p_t = log(1 + e^−20) ≈ 2.06e-9, kept to relative precision.
    let x = Tensor::from_vec(vec![30.0f32, 10.0], &[1, 2]).unwrap();
    let t = Tensor::from_vec(vec![0i64], &[1]).unwrap();
    let l = x.cross_entropy(&t, &CrossEntropyOpts::default()).unwrap();
    assert!(l.item().unwrap() >= 0.0 && l.item().unwrap() < 1e-7);
    // Huge logits stay finite.
    let x = Tensor::from_vec(vec![1000.0f32, -1000.0, 0.0, 1000.0], &[2, 2]).unwrap();
    let t = Tensor::from_vec(vec![1i64, 0], &[2]).unwrap();
    let opts = CrossEntropyOpts {
        reduction: Reduction::None,
        ..Default::default()
    };
    assert_eq!(
        x.cross_entropy(&t, &opts).unwrap().to_vec::<f32>().unwrap(),
        vec![2000.0, 1000.0]
    );
}

#[test]
fn cross_entropy_matches_reference_for_every_option() {
    let c = 5;
    let cw = uniform(&[c], 0.2, 2.0, 3);
    let cwv = cw.to_vec::<f32>().unwrap();
    for shape in [vec![7, c], vec![2, c, 3, 4], vec![3, c, 7]] {
        let mut tshape = vec![shape[0]];
        tshape.extend_from_slice(&shape[2..]);
        let x = uniform(&shape, -3.0, 3.0, 4);
        let sw = uniform(&tshape, 0.0, 2.0, 5);
        let swv = sw.to_vec::<f32>().unwrap();
        for ignore in [None, Some(-100i64), Some(2)] {
            let t = targets(&tshape, c, ignore, 6);
            let tv = t.to_vec::<i64>().unwrap();
            for (use_cw, use_sw) in [(false, false), (true, false), (false, true), (true, true)] {
                for eps in [0.0f32, 0.1, 1.0] {
                    for red in REDUCTIONS {
                        let opts = CrossEntropyOpts {
                            ignore_index: ignore,
                            class_weights: use_cw.then(|| cw.clone()),
                            sample_weights: use_sw.then(|| sw.clone()),
                            label_smoothing: eps,
                            reduction: red,
                        };
                        let r = ce_reference(
                            &x,
                            &tv,
                            ignore,
                            use_cw.then_some(&cwv[..]),
                            use_sw.then_some(&swv[..]),
                            eps as f64,
                            red,
                            false,
                        );
                        let got = x.cross_entropy(&t, &opts).unwrap();
                        if red == Reduction::None {
                            assert_eq!(got.shape(), tshape.as_slice());
                        } else {
                            assert!(got.shape().is_empty());
                        }
                        assert_close64(&to_f64(&got), &r, 1e-5, 1e-6);
                        // NLL of log-softmax is the same loss.
                        let lp = x.log_softmax(1).unwrap();
                        let r2 = ce_reference(
                            &lp,
                            &tv,
                            ignore,
                            use_cw.then_some(&cwv[..]),
                            use_sw.then_some(&swv[..]),
                            eps as f64,
                            red,
                            true,
                        );
                        assert_close64(&to_f64(&lp.nll_loss(&t, &opts).unwrap()), &r2, 1e-5, 1e-6);
                        assert_close64(&r2, &r, 1e-5, 1e-6);
                    }
                }
            }
        }
    }
}

#[test]
fn cross_entropy_gradients() {
    let c = 4;
    let cw = uniform(&[c], 0.2, 2.0, 7);
    for shape in [vec![6, c], vec![2, c, 3, 3], vec![c]] {
        let tshape: Vec<usize> = if shape.len() == 1 {
            vec![]
        } else {
            let mut v = vec![shape[0]];
            v.extend_from_slice(&shape[2..]);
            v
        };
        let x = uniform(&shape, -2.0, 2.0, 8);
        let sw = uniform(&tshape, 0.1, 2.0, 9);
        for ignore in [None, Some(1i64)] {
            let t = targets(&tshape, c, None, 10);
            for (use_cw, eps, red) in [
                (false, 0.0f32, Reduction::Mean),
                (true, 0.0, Reduction::Mean),
                (false, 0.2, Reduction::Sum),
                (true, 0.3, Reduction::None),
                (true, 0.1, Reduction::Mean),
                (false, 0.0, Reduction::None),
            ] {
                let base = CrossEntropyOpts {
                    ignore_index: ignore,
                    class_weights: use_cw.then(|| cw.clone()),
                    sample_weights: None,
                    label_smoothing: eps,
                    reduction: red,
                };
                check(
                    |v| v[0].cross_entropy(&v[1], &base),
                    &[x.clone(), t.clone()],
                );
                check(|v| v[0].nll_loss(&v[1], &base), &[x.clone(), t.clone()]);
                // With sample weights, which get a gradient too.
                check(
                    |v| {
                        let o = CrossEntropyOpts {
                            sample_weights: Some(v[2].clone()),
                            ..base.clone()
                        };
                        v[0].cross_entropy(&v[1], &o)
                    },
                    &[x.clone(), t.clone(), sw.clone()],
                );
            }
        }
    }
    // Non-contiguous logits: NHWC scores permuted to NCHW, big enough for several tiles.
    let x = uniform(&[2, 9, 40, 3], -2.0, 2.0, 11);
    let t = targets(&[2, 40, 9], 3, Some(0), 12);
    let opts = CrossEntropyOpts {
        ignore_index: Some(0),
        label_smoothing: 0.1,
        ..Default::default()
    };
    check(
        |v| {
            v[0].permute(&[0, 3, 1, 2])?
                .reshape(&[2, 3, 9, 40])?
                .cross_entropy(&v[1], &opts)
        },
        &[x.clone(), targets(&[2, 9, 40], 3, Some(0), 13)],
    );
    check(
        |v| v[0].permute(&[0, 3, 2, 1])?.cross_entropy(&v[1], &opts),
        &[x, t],
    );
}

#[test]
fn cross_entropy_large_inputs() {
    // Parallel row and tile paths against the reference.
    let cases = [
        (vec![512, 100], vec![512]),
        (vec![4, 21, 48, 48], vec![4, 48, 48]),
    ];
    for (shape, tshape) in cases {
        let c = shape[1];
        let x = uniform(&shape, -4.0, 4.0, 14);
        let t = targets(&tshape, c, Some(255), 15);
        let tv = t.to_vec::<i64>().unwrap();
        for red in REDUCTIONS {
            let opts = CrossEntropyOpts {
                ignore_index: Some(255),
                label_smoothing: 0.1,
                reduction: red,
                ..Default::default()
            };
            let r = ce_reference(&x, &tv, Some(255), None, None, 0.1, red, false);
            assert_close64(
                &to_f64(&x.cross_entropy(&t, &opts).unwrap()),
                &r,
                1e-5,
                1e-6,
            );
        }
        let opts = CrossEntropyOpts {
            ignore_index: Some(255),
            label_smoothing: 0.1,
            ..Default::default()
        };
        GradCheck {
            max_elements: 16,
            ..GradCheck::default()
        }
        .run(|v| v[0].cross_entropy(&v[1], &opts), &[x, t])
        .unwrap();
    }
}

#[test]
fn all_ignored_mean_is_zero() {
    let x = uniform(&[3, 4], -1.0, 1.0, 16).requires_grad_(true);
    let t = Tensor::from_vec(vec![-100i64; 3], &[3]).unwrap();
    let opts = CrossEntropyOpts {
        ignore_index: Some(-100),
        ..Default::default()
    };
    let l = x.cross_entropy(&t, &opts).unwrap();
    assert_eq!(l.item().unwrap(), 0.0);
    l.backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), vec![0.0; 12]);
    // Empty batch.
    let e = Tensor::zeros(&[0, 4])
        .cross_entropy(&Tensor::from_vec(Vec::<i64>::new(), &[0]).unwrap(), &opts)
        .unwrap();
    assert_eq!(e.item().unwrap(), 0.0);
}

#[test]
fn cross_entropy_errors() {
    let x = Tensor::zeros(&[2, 5]);
    let t = Tensor::from_vec(vec![1i64, 7], &[2]).unwrap();
    let e = x
        .cross_entropy(&t, &CrossEntropyOpts::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cross_entropy") && e.contains("target 7") && e.contains("5 classes"),
        "{e}"
    );
    let t = Tensor::from_vec(vec![-1i64, 0], &[2]).unwrap();
    assert!(x.cross_entropy(&t, &CrossEntropyOpts::default()).is_err());
    // Wrong targets shape / dtype, wrong weight shapes, bad smoothing.
    let t3 = Tensor::from_vec(vec![0i64; 3], &[3]).unwrap();
    let e = x
        .cross_entropy(&t3, &CrossEntropyOpts::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("targets must have shape [2]"), "{e}");
    let tf = Tensor::zeros(&[2]);
    let e = x
        .cross_entropy(&tf, &CrossEntropyOpts::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("I64 or I32"), "{e}");
    let t = Tensor::from_vec(vec![0i64, 1], &[2]).unwrap();
    let bad_cw = CrossEntropyOpts {
        class_weights: Some(Tensor::ones(&[4])),
        ..Default::default()
    };
    assert!(x
        .cross_entropy(&t, &bad_cw)
        .unwrap_err()
        .to_string()
        .contains("class_weights"));
    let bad_sw = CrossEntropyOpts {
        sample_weights: Some(Tensor::ones(&[2, 1])),
        ..Default::default()
    };
    assert!(x
        .cross_entropy(&t, &bad_sw)
        .unwrap_err()
        .to_string()
        .contains("sample_weights"));
    let bad_ls = CrossEntropyOpts {
        label_smoothing: 1.5,
        ..Default::default()
    };
    assert!(x
        .cross_entropy(&t, &bad_ls)
        .unwrap_err()
        .to_string()
        .contains("label_smoothing"));
}

#[test]
fn dense_cross_entropy() {
    let c = 6;
    for shape in [vec![5, c], vec![2, c, 4, 5]] {
        let mut tshape = vec![shape[0]];
        tshape.extend_from_slice(&shape[2..]);
        let x = uniform(&shape, -3.0, 3.0, 20);
        let t = targets(&tshape, c, None, 21);
        // One-hot dense targets give the class-index loss, smoothing included.
        let onehot = {
            let tv = t.to_vec::<i64>().unwrap();
            let inner: usize = shape[2..].iter().product();
            let mut v = vec![0.0f32; x.numel()];
            for o in 0..shape[0] {
                for i in 0..inner {
                    v[(o * c + tv[o * inner + i] as usize) * inner + i] = 1.0;
                }
            }
            Tensor::from_vec(v, &shape).unwrap()
        };
        for eps in [0.0f32, 0.2] {
            for red in REDUCTIONS {
                let a = x.cross_entropy_dense(&onehot, eps, red).unwrap();
                let b = x
                    .cross_entropy(
                        &t,
                        &CrossEntropyOpts {
                            label_smoothing: eps,
                            reduction: red,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                assert_eq!(a.shape(), b.shape());
                assert_close(
                    &a.to_vec::<f32>().unwrap(),
                    &b.to_vec::<f32>().unwrap(),
                    1e-5,
                    1e-6,
                );
            }
        }
        // Soft targets: gradients for logits and targets.
        let q = uniform(&shape, 0.0, 1.0, 22).softmax(1).unwrap();
        for (eps, red) in [
            (0.0f32, Reduction::Mean),
            (0.1, Reduction::None),
            (0.3, Reduction::Sum),
        ] {
            check(
                |v| v[0].cross_entropy_dense(&v[1], eps, red),
                &[x.clone(), q.clone()],
            );
        }
    }
    // Known value: uniform logits, any distribution → ln C.
    let q = Tensor::from_vec(vec![0.2f32, 0.3, 0.5], &[1, 3]).unwrap();
    let l = Tensor::zeros(&[1, 3])
        .cross_entropy_dense(&q, 0.0, Reduction::Mean)
        .unwrap();
    assert!((l.item().unwrap() - 3f64.ln()).abs() < 1e-6);
    let e = Tensor::zeros(&[2, 3])
        .cross_entropy_dense(&Tensor::zeros(&[2, 4]), 0.0, Reduction::Mean)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cross_entropy_dense"), "{e}");
}

/// f64 reference of PyTorch's binary_cross_entropy_with_logits (weights already expanded).
fn bce_logits_ref(x: &[f32], y: &[f32], w: &[f64], pw: &[f64]) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let (x, y) = (x[i] as f64, y[i] as f64);
            let lw = 1.0 + (pw[i] - 1.0) * y;
            w[i] * ((1.0 - y) * x + lw * ((-x.abs()).exp().ln_1p() + (-x).max(0.0)))
        })
        .collect()
}

fn reduce(v: Vec<f64>, red: Reduction) -> Vec<f64> {
    let s: f64 = v.iter().sum();
    match red {
        Reduction::None => v,
        Reduction::Sum => vec![s],
        Reduction::Mean => vec![s / v.len() as f64],
    }
}

#[test]
fn bce_with_logits() {
    let x = uniform(&[4, 3], -4.0, 4.0, 30);
    let y = uniform(&[4, 3], 0.0, 1.0, 31);
    let w = uniform(&[4, 1], 0.5, 2.0, 32);
    let pw = uniform(&[3], 0.5, 3.0, 33);
    let (xv, yv) = (x.to_vec::<f32>().unwrap(), y.to_vec::<f32>().unwrap());
    let wv = w.to_vec::<f32>().unwrap();
    let pwv = pw.to_vec::<f32>().unwrap();
    for (use_w, use_pw) in [(false, false), (true, false), (false, true), (true, true)] {
        let we: Vec<f64> = (0..12)
            .map(|i| if use_w { wv[i / 3] as f64 } else { 1.0 })
            .collect();
        let pe: Vec<f64> = (0..12)
            .map(|i| if use_pw { pwv[i % 3] as f64 } else { 1.0 })
            .collect();
        for red in REDUCTIONS {
            let got = x
                .binary_cross_entropy_with_logits(
                    &y,
                    use_w.then_some(&w),
                    use_pw.then_some(&pw),
                    red,
                )
                .unwrap();
            let r = reduce(bce_logits_ref(&xv, &yv, &we, &pe), red);
            assert_close64(&to_f64(&got), &r, 1e-5, 1e-6);
        }
        // Gradients for input, targets, weight and pos_weight.
        for red in REDUCTIONS {
            match (use_w, use_pw) {
                (true, true) => check(
                    |v| v[0].binary_cross_entropy_with_logits(&v[1], Some(&v[2]), Some(&v[3]), red),
                    &[x.clone(), y.clone(), w.clone(), pw.clone()],
                ),
                (true, false) => check(
                    |v| v[0].binary_cross_entropy_with_logits(&v[1], Some(&v[2]), None, red),
                    &[x.clone(), y.clone(), w.clone()],
                ),
                (false, true) => check(
                    |v| v[0].binary_cross_entropy_with_logits(&v[1], None, Some(&v[2]), red),
                    &[x.clone(), y.clone(), pw.clone()],
                ),
                (false, false) => check(
                    |v| v[0].binary_cross_entropy_with_logits(&v[1], None, None, red),
                    &[x.clone(), y.clone()],
                ),
            }
        }
    }
    // Stable at extreme logits.
    let x = Tensor::from_vec(vec![100.0f32, -100.0, 0.0], &[3]).unwrap();
    let y = Tensor::from_vec(vec![0.0f32, 1.0, 1.0], &[3]).unwrap();
    let l = x
        .binary_cross_entropy_with_logits(&y, None, None, Reduction::None)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_close(&l, &[100.0, 100.0, std::f32::consts::LN_2], 1e-6, 0.0);
    // Non-contiguous input, spatial shape.
    let x4 = uniform(&[2, 3, 4, 2], -3.0, 3.0, 34);
    let y4 = uniform(&[2, 2, 3, 4], 0.0, 1.0, 35);
    check(
        |v| {
            v[0].permute(&[0, 3, 1, 2])?
                .binary_cross_entropy_with_logits(&v[1], None, None, Reduction::Mean)
        },
        &[x4, y4],
    );
    // Weight that does not broadcast to the input.
    let e = Tensor::zeros(&[2, 3])
        .binary_cross_entropy_with_logits(
            &Tensor::zeros(&[2, 3]),
            Some(&Tensor::ones(&[2])),
            None,
            Reduction::Mean,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("binary_cross_entropy_with_logits"), "{e}");
}

#[test]
fn bce_on_probabilities() {
    let p = uniform(&[3, 4], 0.05, 0.95, 40);
    let y = uniform(&[3, 4], 0.0, 1.0, 41);
    let w = uniform(&[4], 0.5, 2.0, 42);
    let (pv, yv, wv) = (
        p.to_vec::<f32>().unwrap(),
        y.to_vec::<f32>().unwrap(),
        w.to_vec::<f32>().unwrap(),
    );
    for red in REDUCTIONS {
        let got = p.binary_cross_entropy(&y, Some(&w), red).unwrap();
        let r: Vec<f64> = (0..12)
            .map(|i| {
                let (p, y) = (pv[i] as f64, yv[i] as f64);
                -(wv[i % 4] as f64) * (y * p.ln() + (1.0 - y) * (1.0 - p).ln())
            })
            .collect();
        assert_close64(&to_f64(&got), &reduce(r, red), 1e-5, 1e-6);
        check(
            |v| v[0].binary_cross_entropy(&v[1], Some(&v[2]), red),
            &[p.clone(), y.clone(), w.clone()],
        );
        check(
            |v| v[0].binary_cross_entropy(&v[1], None, red),
            &[p.clone(), y.clone()],
        );
    }
    // Logs clamped at −100.
    let p = Tensor::from_vec(vec![0.0f32, 1.0, 0.0, 1.0], &[4]).unwrap();
    let y = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 1.0], &[4]).unwrap();
    let l = p.binary_cross_entropy(&y, None, Reduction::None).unwrap();
    assert_eq!(l.to_vec::<f32>().unwrap(), vec![100.0, 100.0, 0.0, 0.0]);
    let e = Tensor::from_vec(vec![1.5f32], &[1])
        .unwrap()
        .binary_cross_entropy(&Tensor::zeros(&[1]), None, Reduction::Mean)
        .unwrap_err()
        .to_string();
    assert!(e.contains("between 0 and 1"), "{e}");
}

#[test]
fn regression_losses() {
    let x = Tensor::from_vec(vec![1.0f32, -2.0, 0.5, 3.0], &[2, 2]).unwrap();
    let y = Tensor::from_vec(vec![0.0f32, 0.0, 1.0, 0.5], &[2, 2]).unwrap();
    // d = [1, -2, -0.5, 2.5]
    let v = |t: Tensor| t.to_vec::<f32>().unwrap();
    assert_eq!(
        v(x.mse_loss(&y, Reduction::None).unwrap()),
        vec![1.0, 4.0, 0.25, 6.25]
    );
    assert_eq!(v(x.mse_loss(&y, Reduction::Sum).unwrap()), vec![11.5]);
    assert_eq!(v(x.mse_loss(&y, Reduction::Mean).unwrap()), vec![2.875]);
    assert_eq!(
        v(x.l1_loss(&y, Reduction::None).unwrap()),
        vec![1.0, 2.0, 0.5, 2.5]
    );
    assert_eq!(v(x.l1_loss(&y, Reduction::Mean).unwrap()), vec![1.5]);
    // delta = 1: 0.5 d² inside, |d| − 0.5 outside (|d| = 1 is outside, like PyTorch).
    assert_eq!(
        v(x.huber_loss(&y, 1.0, Reduction::None).unwrap()),
        vec![0.5, 1.5, 0.125, 2.0]
    );
    assert_eq!(
        v(x.huber_loss(&y, 2.0, Reduction::None).unwrap()),
        vec![0.5, 2.0, 0.125, 3.0]
    );
    assert!(x.huber_loss(&y, 0.0, Reduction::Mean).is_err());
    assert!(x
        .mse_loss(&Tensor::zeros(&[4]), Reduction::Mean)
        .unwrap_err()
        .to_string()
        .contains("mse_loss"));
    // Gradients (away from the kinks), also non-contiguous.
    let a = uniform(&[3, 5], -2.0, 2.0, 50);
    let b = uniform(&[3, 5], -2.0, 2.0, 51);
    for red in REDUCTIONS {
        check(|t| t[0].mse_loss(&t[1], red), &[a.clone(), b.clone()]);
        check(|t| t[0].l1_loss(&t[1], red), &[a.clone(), b.clone()]);
        check(
            |t| t[0].huber_loss(&t[1], 0.7, red),
            &[a.clone(), b.clone()],
        );
        check(
            |t| t[0].t()?.mse_loss(&t[1].t()?, red),
            &[a.clone(), b.clone()],
        );
    }
    // Gradient at d == 0 is 0 for L1; Huber's at |d| == delta is d (PyTorch).
    let p = Tensor::from_vec(vec![1.0f32, 2.0], &[2])
        .unwrap()
        .requires_grad_(true);
    let q = Tensor::from_vec(vec![1.0f32, 1.0], &[2]).unwrap();
    p.l1_loss(&q, Reduction::Sum).unwrap().backward().unwrap();
    assert_eq!(p.grad().unwrap().to_vec::<f32>().unwrap(), vec![0.0, 1.0]);
    p.zero_grad();
    p.huber_loss(&q, 1.0, Reduction::Sum)
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(p.grad().unwrap().to_vec::<f32>().unwrap(), vec![0.0, 1.0]);
}
