//! Batch / layer / group / instance norm: values against f64 references, running-statistics
//! updates computed by hand, errors, and gradient checks (training and inference, with and
//! without affine parameters, ranks 2 to 4, non-contiguous inputs, parallel sizes).
// `&[x.clone()]` reads better than `std::slice::from_ref(&x)` in gradient-check calls.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;
use common::{assert_close, uniform};
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::{Result, Tensor};

fn check(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    GradCheck::default().run(f, inputs).unwrap();
}

/// f64 reference: normalises `[n, c, s]` data with per-(sample, group) or per-channel
/// statistics given by `key(n, ch) -> stats slot`, then applies per-channel affine.
#[allow(clippy::too_many_arguments)]
fn reference_norm(
    x: &[f32],
    n: usize,
    c: usize,
    s: usize,
    slots: usize,
    key: impl Fn(usize, usize) -> usize,
    w: Option<&[f32]>,
    b: Option<&[f32]>,
    eps: f64,
) -> (Vec<f32>, Vec<f64>, Vec<f64>) {
    let mut sum = vec![0.0f64; slots];
    let mut cnt = vec![0.0f64; slots];
    for i in 0..n {
        for ch in 0..c {
            for j in 0..s {
                sum[key(i, ch)] += x[(i * c + ch) * s + j] as f64;
                cnt[key(i, ch)] += 1.0;
            }
        }
    }
    let mean: Vec<f64> = sum.iter().zip(&cnt).map(|(a, b)| a / b).collect();
    let mut var = vec![0.0f64; slots];
    for i in 0..n {
        for ch in 0..c {
            for j in 0..s {
                let d = x[(i * c + ch) * s + j] as f64 - mean[key(i, ch)];
                var[key(i, ch)] += d * d;
            }
        }
    }
    for (v, k) in var.iter_mut().zip(&cnt) {
        *v /= k;
    }
    let mut out = vec![0.0f32; x.len()];
    for i in 0..n {
        for ch in 0..c {
            let k = key(i, ch);
            let g = w.map_or(1.0, |w| w[ch] as f64);
            let bb = b.map_or(0.0, |b| b[ch] as f64);
            for j in 0..s {
                let idx = (i * c + ch) * s + j;
                out[idx] = ((x[idx] as f64 - mean[k]) / (var[k] + eps).sqrt() * g + bb) as f32;
            }
        }
    }
    (out, mean, var)
}

fn ncs(shape: &[usize]) -> (usize, usize, usize) {
    (shape[0], shape[1], shape[2..].iter().product())
}

#[test]
fn batch_norm_training_values_and_running_stats() {
    for shape in [
        vec![6, 3],
        vec![4, 3, 5],
        vec![3, 4, 5, 6],
        vec![2, 3, 2, 2, 2],
    ] {
        let x = uniform(&shape, -2.0, 3.0, 1);
        let (n, c, s) = ncs(&shape);
        let w = uniform(&[c], 0.5, 1.5, 2);
        let b = uniform(&[c], -0.5, 0.5, 3);
        let rm0: Vec<f32> = (0..c).map(|i| 0.1 * i as f32).collect();
        let rv0: Vec<f32> = (0..c).map(|i| 1.0 + i as f32).collect();
        let rm = Tensor::from_vec(rm0.clone(), &[c]).unwrap();
        let rv = Tensor::from_vec(rv0.clone(), &[c]).unwrap();
        let y = x
            .batch_norm(&rm, &rv, Some(&w), Some(&b), true, 0.1, 1e-5)
            .unwrap();
        let wv = w.to_vec::<f32>().unwrap();
        let bv = b.to_vec::<f32>().unwrap();
        let (r, mean, var) = reference_norm(
            &x.to_vec::<f32>().unwrap(),
            n,
            c,
            s,
            c,
            |_, ch| ch,
            Some(&wv),
            Some(&bv),
            1e-5,
        );
        assert_close(&y.to_vec::<f32>().unwrap(), &r, 1e-5, 1e-5);
        let m = (n * s) as f64;
        let exp_rm: Vec<f32> = (0..c)
            .map(|i| (0.9 * rm0[i] as f64 + 0.1 * mean[i]) as f32)
            .collect();
        let exp_rv: Vec<f32> = (0..c)
            .map(|i| (0.9 * rv0[i] as f64 + 0.1 * var[i] * m / (m - 1.0)) as f32)
            .collect();
        assert_close(&rm.to_vec::<f32>().unwrap(), &exp_rm, 1e-6, 1e-7);
        assert_close(&rv.to_vec::<f32>().unwrap(), &exp_rv, 1e-6, 1e-7);
    }
}

#[test]
fn batch_norm_running_stats_by_hand() {
    // Channel 0: {1, 3} → mean 2, biased var 1, unbiased 2. Channel 1: {0, 0} → mean 0, var 0.
    let x = Tensor::from_vec(vec![1.0f32, 0.0, 3.0, 0.0], &[2, 2]).unwrap();
    let rm = Tensor::from_vec(vec![0.0f32, 1.0], &[2]).unwrap();
    let rv = Tensor::from_vec(vec![1.0f32, 1.0], &[2]).unwrap();
    let y = x.batch_norm(&rm, &rv, None, None, true, 0.1, 0.0).unwrap();
    assert_eq!(rm.to_vec::<f32>().unwrap(), vec![0.2, 0.9]);
    assert_close(&rv.to_vec::<f32>().unwrap(), &[1.1, 0.9], 1e-7, 0.0);
    let yv = y.to_vec::<f32>().unwrap();
    assert_close(&yv[..1], &[-1.0], 1e-6, 0.0);
    assert_close(&yv[2..3], &[1.0], 1e-6, 0.0);
    // A second step keeps averaging.
    x.batch_norm(&rm, &rv, None, None, true, 0.5, 1e-5).unwrap();
    assert_close(&rm.to_vec::<f32>().unwrap(), &[1.1, 0.45], 1e-6, 0.0);
    assert_close(&rv.to_vec::<f32>().unwrap(), &[1.55, 0.45], 1e-6, 0.0);
}

#[test]
fn batch_norm_inference_uses_running_stats() {
    let x = uniform(&[2, 3, 4, 4], -1.0, 1.0, 4);
    let rm = Tensor::from_vec(vec![0.5f32, -0.5, 0.0], &[3]).unwrap();
    let rv = Tensor::from_vec(vec![4.0f32, 0.25, 1.0], &[3]).unwrap();
    let w = Tensor::from_vec(vec![2.0f32, 1.0, -1.0], &[3]).unwrap();
    let b = Tensor::from_vec(vec![0.0f32, 1.0, 0.5], &[3]).unwrap();
    let y = x
        .batch_norm(&rm, &rv, Some(&w), Some(&b), false, 0.1, 0.0)
        .unwrap();
    let xv = x.to_vec::<f32>().unwrap();
    let (mv, vv, wv, bv) = (
        [0.5, -0.5, 0.0],
        [4.0, 0.25, 1.0],
        [2.0, 1.0, -1.0],
        [0.0, 1.0, 0.5],
    );
    let r: Vec<f32> = xv
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / 16) % 3;
            (v - mv[ch]) / f32::sqrt(vv[ch]) * wv[ch] + bv[ch]
        })
        .collect();
    assert_close(&y.to_vec::<f32>().unwrap(), &r, 1e-6, 1e-6);
    assert_eq!(rm.to_vec::<f32>().unwrap(), vec![0.5, -0.5, 0.0]);
    assert_eq!(rv.to_vec::<f32>().unwrap(), vec![4.0, 0.25, 1.0]);
    // One value per channel is fine in inference.
    Tensor::ones(&[1, 3])
        .batch_norm(&rm, &rv, None, None, false, 0.1, 1e-5)
        .unwrap();
}

#[test]
fn batch_norm_errors() {
    let rm = Tensor::zeros(&[3]);
    let rv = Tensor::ones(&[3]);
    let e = Tensor::ones(&[1, 3])
        .batch_norm(&rm, &rv, None, None, true, 0.1, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("batch_norm") && e.contains("more than 1 value per channel"),
        "{e}"
    );
    let e = Tensor::ones(&[1, 3, 1, 1])
        .batch_norm(&rm, &rv, None, None, true, 0.1, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than 1 value"), "{e}");
    let e = Tensor::ones(&[2, 4])
        .batch_norm(&rm, &rv, None, None, true, 0.1, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("running_mean") && e.contains("[3]"), "{e}");
    let e = Tensor::ones(&[3])
        .batch_norm(&rm, &rv, None, None, true, 0.1, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("rank >= 2"), "{e}");
    let w = Tensor::ones(&[2]);
    let e = Tensor::ones(&[2, 3])
        .batch_norm(&rm, &rv, Some(&w), None, true, 0.1, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("weight"), "{e}");
}

#[test]
fn batch_norm_gradients() {
    // Short segments (S < 32, row kernels) and long ones (S >= 32, segment kernels).
    for shape in [
        vec![5, 3],
        vec![4, 3, 5],
        vec![2, 3, 4, 5],
        vec![3, 2, 20],
        vec![2, 3, 6, 6],
    ] {
        let c = shape[1];
        let x = uniform(&shape, -2.0, 2.0, 5);
        let w = uniform(&[c], 0.5, 1.5, 6);
        let b = uniform(&[c], -0.5, 0.5, 7);
        for training in [true, false] {
            let rm = uniform(&[c], -0.2, 0.2, 8);
            let rv = uniform(&[c], 0.5, 1.5, 9);
            check(
                |t| t[0].batch_norm(&rm, &rv, Some(&t[1]), Some(&t[2]), training, 0.1, 1e-5),
                &[x.clone(), w.clone(), b.clone()],
            );
            check(
                |t| t[0].batch_norm(&rm, &rv, None, None, training, 0.1, 1e-5),
                &[x.clone()],
            );
            check(
                |t| t[0].batch_norm(&rm, &rv, Some(&t[1]), None, training, 0.1, 1e-5),
                &[x.clone(), w.clone()],
            );
        }
    }
    // Non-contiguous input: NHWC data permuted to NCHW.
    let x = uniform(&[2, 3, 4, 3], -2.0, 2.0, 10);
    let w = uniform(&[3], 0.5, 1.5, 11);
    let rm = Tensor::zeros(&[3]);
    let rv = Tensor::ones(&[3]);
    check(
        |t| {
            t[0].permute(&[0, 3, 1, 2])?
                .batch_norm(&rm, &rv, Some(&t[1]), None, true, 0.1, 1e-5)
        },
        &[x, w],
    );
    // Only the affine parameters require grad (x constant): no dx needed.
    let x = uniform(&[4, 3, 2], -1.0, 1.0, 12);
    let w = Tensor::ones(&[3]).requires_grad_(true);
    let y = x
        .batch_norm(&rm, &rv, Some(&w), None, true, 0.1, 1e-5)
        .unwrap();
    y.sum_all().unwrap().backward().unwrap();
    // Σ x̂ over a channel is 0.
    assert_close(
        &w.grad().unwrap().to_vec::<f32>().unwrap(),
        &[0.0; 3],
        0.0,
        1e-5,
    );
}

#[test]
fn large_inputs_take_the_parallel_paths() {
    // 4·8·33·32 = 33 792 elements, above the parallel threshold.
    let shape = [4, 8, 33, 32];
    let x = uniform(&shape, -1.0, 3.0, 13);
    let w = uniform(&[8], 0.5, 1.5, 14);
    let b = uniform(&[8], -0.5, 0.5, 15);
    let rm = Tensor::zeros(&[8]);
    let rv = Tensor::ones(&[8]);
    let y = x
        .batch_norm(&rm, &rv, Some(&w), Some(&b), true, 0.1, 1e-5)
        .unwrap();
    let (wv, bv) = (w.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    let xv = x.to_vec::<f32>().unwrap();
    let (r, _, _) = reference_norm(&xv, 4, 8, 1056, 8, |_, c| c, Some(&wv), Some(&bv), 1e-5);
    assert_close(&y.to_vec::<f32>().unwrap(), &r, 1e-5, 1e-5);
    let gc = GradCheck {
        atol: 5e-3,
        max_elements: 24,
        ..GradCheck::default()
    };
    gc.run(
        |t| t[0].batch_norm(&rm, &rv, Some(&t[1]), Some(&t[2]), true, 0.1, 1e-5),
        &[x.clone(), w.clone(), b.clone()],
    )
    .unwrap();
    let y = x.group_norm(4, Some(&w), Some(&b), 1e-5).unwrap();
    let (r, _, _) = reference_norm(
        &xv,
        4,
        8,
        1056,
        16,
        |n, c| n * 4 + c / 2,
        Some(&wv),
        Some(&bv),
        1e-5,
    );
    assert_close(&y.to_vec::<f32>().unwrap(), &r, 1e-5, 1e-5);
    gc.run(
        |t| t[0].group_norm(4, Some(&t[1]), Some(&t[2]), 1e-5),
        &[x.clone(), w.clone(), b.clone()],
    )
    .unwrap();
    // Layer norm over [33, 32] rows, and over a short last dim (many rows).
    let lw = uniform(&[33, 32], 0.5, 1.5, 16);
    let lb = uniform(&[33, 32], -0.5, 0.5, 17);
    gc.run(
        |t| t[0].layer_norm(&[33, 32], Some(&t[1]), Some(&t[2]), 1e-5),
        &[x.clone(), lw, lb],
    )
    .unwrap();
    let lw = uniform(&[32], 0.5, 1.5, 18);
    gc.run(
        |t| t[0].layer_norm(&[32], Some(&t[1]), None, 1e-5),
        &[x, lw],
    )
    .unwrap();
}

#[test]
fn layer_norm_values_and_gradients() {
    let x = uniform(&[3, 4, 5], -2.0, 2.0, 20);
    let xv = x.to_vec::<f32>().unwrap();
    // Over the last dim: like a norm with one "channel" per row.
    let w = uniform(&[5], 0.5, 1.5, 21);
    let b = uniform(&[5], -0.5, 0.5, 22);
    let y = x.layer_norm(&[5], Some(&w), Some(&b), 1e-5).unwrap();
    let (wv, bv) = (w.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    let mut r = vec![0.0f32; 60];
    for row in 0..12 {
        let v = &xv[row * 5..row * 5 + 5];
        let m: f64 = v.iter().map(|&a| a as f64).sum::<f64>() / 5.0;
        let var: f64 = v.iter().map(|&a| (a as f64 - m).powi(2)).sum::<f64>() / 5.0;
        for j in 0..5 {
            r[row * 5 + j] =
                ((v[j] as f64 - m) / (var + 1e-5).sqrt() * wv[j] as f64 + bv[j] as f64) as f32;
        }
    }
    assert_close(&y.to_vec::<f32>().unwrap(), &r, 1e-5, 1e-5);
    // Over the last two dims without affine: the same as one row of 20.
    let y2 = x.layer_norm(&[4, 5], None, None, 1e-5).unwrap();
    let y3 = x
        .reshape(&[3, 20])
        .unwrap()
        .layer_norm(&[20], None, None, 1e-5)
        .unwrap();
    assert_eq!(y2.to_vec::<f32>().unwrap(), y3.to_vec::<f32>().unwrap());

    check(
        |t| t[0].layer_norm(&[5], Some(&t[1]), Some(&t[2]), 1e-5),
        &[x.clone(), w.clone(), b.clone()],
    );
    check(
        |t| t[0].layer_norm(&[5], None, Some(&t[1]), 1e-5),
        &[x.clone(), b.clone()],
    );
    check(|t| t[0].layer_norm(&[4, 5], None, None, 1e-5), &[x.clone()]);
    let w2 = uniform(&[4, 5], 0.5, 1.5, 23);
    check(
        |t| t[0].layer_norm(&[4, 5], Some(&t[1]), None, 1e-5),
        &[x.clone(), w2],
    );
    // All dims, and a non-contiguous input.
    check(
        |t| t[0].layer_norm(&[3, 4, 5], None, None, 1e-5),
        &[x.clone()],
    );
    check(
        |t| {
            t[0].permute(&[2, 0, 1])?
                .layer_norm(&[4], Some(&t[1]), None, 1e-5)
        },
        &[x.clone(), uniform(&[4], 0.5, 1.5, 24)],
    );
    // Errors: wrong trailing shape, wrong weight shape.
    let e = x
        .layer_norm(&[4], None, None, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer_norm") && e.contains("[4]"), "{e}");
    let e = x
        .layer_norm(&[5], Some(&Tensor::ones(&[4])), None, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("weight"), "{e}");
}

#[test]
fn group_norm_values_and_gradients() {
    let x = uniform(&[2, 6, 3, 3], -2.0, 2.0, 30);
    let xv = x.to_vec::<f32>().unwrap();
    let w = uniform(&[6], 0.5, 1.5, 31);
    let b = uniform(&[6], -0.5, 0.5, 32);
    let (wv, bv) = (w.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    for groups in [1usize, 2, 3, 6] {
        let y = x.group_norm(groups, Some(&w), Some(&b), 1e-5).unwrap();
        let cg = 6 / groups;
        let (r, _, _) = reference_norm(
            &xv,
            2,
            6,
            9,
            2 * groups,
            |n, c| n * groups + c / cg,
            Some(&wv),
            Some(&bv),
            1e-5,
        );
        assert_close(&y.to_vec::<f32>().unwrap(), &r, 1e-5, 1e-5);
        check(
            |t| t[0].group_norm(groups, Some(&t[1]), Some(&t[2]), 1e-5),
            &[x.clone(), w.clone(), b.clone()],
        );
    }
    check(|t| t[0].group_norm(3, None, None, 1e-5), &[x.clone()]);
    // 3-d and 2-d inputs, and a non-contiguous one.
    let x3 = uniform(&[3, 4, 7], -2.0, 2.0, 33);
    check(
        |t| t[0].group_norm(2, Some(&t[1]), None, 1e-5),
        &[x3.clone(), uniform(&[4], 0.5, 1.5, 34)],
    );
    check(
        |t| t[0].group_norm(2, None, None, 1e-5),
        &[uniform(&[5, 4], -1.0, 1.0, 35)],
    );
    check(
        |t| t[0].transpose(1, 2)?.group_norm(7, None, Some(&t[1]), 1e-5),
        &[x3, uniform(&[7], -0.5, 0.5, 36)],
    );
    let e = x.group_norm(4, None, None, 1e-5).unwrap_err().to_string();
    assert!(
        e.contains("group_norm") && e.contains("4 groups") && e.contains("6 channels"),
        "{e}"
    );
    assert!(x.group_norm(0, None, None, 1e-5).is_err());
}

#[test]
fn instance_norm_values_and_gradients() {
    let x = uniform(&[2, 3, 4, 5], -2.0, 2.0, 40);
    let w = uniform(&[3], 0.5, 1.5, 41);
    let b = uniform(&[3], -0.5, 0.5, 42);
    let y = x.instance_norm(Some(&w), Some(&b), 1e-5).unwrap();
    let g = x.group_norm(3, Some(&w), Some(&b), 1e-5).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), g.to_vec::<f32>().unwrap());
    // Each (sample, channel) has mean b and (biased) std ≈ w.
    let yv = y.to_vec::<f32>().unwrap();
    let (wv, bv) = (w.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    for seg in 0..6 {
        let v = &yv[seg * 20..seg * 20 + 20];
        let m: f32 = v.iter().sum::<f32>() / 20.0;
        let sd = (v.iter().map(|a| (a - m).powi(2)).sum::<f32>() / 20.0).sqrt();
        assert!((m - bv[seg % 3]).abs() < 1e-5, "{m}");
        assert!((sd - wv[seg % 3]).abs() < 1e-4, "{sd}");
    }
    check(
        |t| t[0].instance_norm(Some(&t[1]), Some(&t[2]), 1e-5),
        &[x.clone(), w.clone(), b.clone()],
    );
    check(
        |t| t[0].instance_norm(None, None, 1e-5),
        &[uniform(&[2, 3, 6], -1.0, 1.0, 43)],
    );
    let e = Tensor::ones(&[2, 3, 1, 1])
        .instance_norm(None, None, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("instance_norm") && e.contains("spatial"), "{e}");
}
