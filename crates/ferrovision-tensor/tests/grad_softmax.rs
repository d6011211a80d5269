//! Softmax / log-softmax: values against an f64 reference on every axis (row kernel and tiled
//! kernel, including partial tiles and the parallel paths), stability, and gradient checks
//! (including non-contiguous inputs).
// `&[x.clone()]` reads better than `std::slice::from_ref(&x)` in gradient-check calls.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;
use common::{assert_close, uniform};
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::Tensor;

/// f64 reference softmax (or log-softmax) of a contiguous tensor along `axis`.
fn reference(x: &[f32], shape: &[usize], axis: usize, log: bool) -> Vec<f32> {
    let outer: usize = shape[..axis].iter().product();
    let c = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = vec![0.0f32; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let idx = |k: usize| (o * c + k) * inner + i;
            let m = (0..c)
                .map(|k| x[idx(k)] as f64)
                .fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..c).map(|k| (x[idx(k)] as f64 - m).exp()).sum();
            for k in 0..c {
                let v = x[idx(k)] as f64 - m;
                out[idx(k)] = if log {
                    (v - s.ln()) as f32
                } else {
                    (v.exp() / s) as f32
                };
            }
        }
    }
    out
}

fn check_values(shape: &[usize], seed: u64) {
    let x = uniform(shape, -6.0, 6.0, seed);
    let xv = x.to_vec::<f32>().unwrap();
    for axis in 0..shape.len() {
        for log in [false, true] {
            let y = if log {
                x.log_softmax(axis as isize).unwrap()
            } else {
                x.softmax(axis as isize - shape.len() as isize).unwrap()
            };
            assert_eq!(y.shape(), shape);
            let r = reference(&xv, shape, axis, log);
            assert_close(&y.to_vec::<f32>().unwrap(), &r, 2e-5, 1e-6);
        }
    }
}

#[test]
fn values_on_every_axis() {
    check_values(&[3, 4, 5], 1);
    check_values(&[2, 5, 7, 9], 2);
    // Several tiles per plane, the last one partial (block 192 for C = 40).
    check_values(&[2, 40, 30, 31], 3);
    check_values(&[7], 4);
}

#[test]
fn large_inputs_take_the_parallel_paths() {
    // Rows: 300 × 200; tiles: [4, 21, 64, 64].
    for (shape, axis) in [(vec![300, 200], 1usize), (vec![4, 21, 64, 64], 1)] {
        let x = uniform(&shape, -10.0, 10.0, 9);
        let xv = x.to_vec::<f32>().unwrap();
        for log in [false, true] {
            let y = if log {
                x.log_softmax(axis as isize).unwrap()
            } else {
                x.softmax(axis as isize).unwrap()
            };
            let r = reference(&xv, &shape, axis, log);
            assert_close(&y.to_vec::<f32>().unwrap(), &r, 2e-5, 1e-6);
        }
    }
}

#[test]
fn stable_for_extreme_scores() {
    let x = Tensor::from_vec(vec![1000.0f32, 1000.0, -1000.0, 0.0], &[2, 2]).unwrap();
    assert_eq!(
        x.softmax(-1).unwrap().to_vec::<f32>().unwrap(),
        vec![0.5, 0.5, 0.0, 1.0]
    );
    let l = x.log_softmax(-1).unwrap().to_vec::<f32>().unwrap();
    assert!((l[0] + 2f32.ln()).abs() < 1e-6);
    assert_eq!(l[2], -1000.0);
    assert_eq!(l[3], 0.0);
    // -inf scores get probability 0 (log-probability -inf).
    let x = Tensor::from_vec(vec![0.0f32, f32::NEG_INFINITY], &[1, 2]).unwrap();
    assert_eq!(
        x.softmax(1).unwrap().to_vec::<f32>().unwrap(),
        vec![1.0, 0.0]
    );
    assert_eq!(
        x.log_softmax(1).unwrap().to_vec::<f32>().unwrap(),
        vec![0.0, f32::NEG_INFINITY]
    );
    // Same on the tiled path (axis 1 of [1, 2, 3]).
    let x = Tensor::from_vec(
        vec![0.0f32, 5.0, -1e30, f32::NEG_INFINITY, 5.0, 0.0],
        &[1, 2, 3],
    )
    .unwrap();
    let y = x.softmax(1).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(y, vec![1.0, 0.5, 0.0, 0.0, 0.5, 1.0]);
}

#[test]
fn errors_name_the_op() {
    let x = Tensor::zeros(&[2, 3]);
    let e = x.softmax(2).unwrap_err().to_string();
    assert!(e.contains("softmax") && e.contains("axis 2"), "{e}");
    let e = Tensor::from_vec(vec![1i64, 2], &[2])
        .unwrap()
        .log_softmax(0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("log_softmax"), "{e}");
}

#[test]
fn gradients() {
    let gc = GradCheck::default();
    let x = uniform(&[3, 4, 5], -2.0, 2.0, 11);
    for axis in [0isize, 1, 2, -1] {
        gc.run(|xs| xs[0].softmax(axis), &[x.clone()]).unwrap();
        gc.run(|xs| xs[0].log_softmax(axis), &[x.clone()]).unwrap();
    }
    // NCHW over channels, several tiles.
    let x = uniform(&[2, 20, 5, 41], -2.0, 2.0, 12);
    gc.run(|xs| xs[0].softmax(1), &[x.clone()]).unwrap();
    gc.run(|xs| xs[0].log_softmax(1), &[x]).unwrap();
    // Non-contiguous inputs: a transposed view and a strided slice.
    let x = uniform(&[5, 6], -2.0, 2.0, 13);
    gc.run(|xs| xs[0].t()?.softmax(-1), &[x.clone()]).unwrap();
    gc.run(|xs| xs[0].slice(1, 0, 6, 2)?.log_softmax(0), &[x.clone()])
        .unwrap();
    gc.run(|xs| xs[0].permute(&[1, 0])?.log_softmax(1), &[x])
        .unwrap();
}

#[test]
fn rows_sum_to_one() {
    let x = uniform(&[6, 33], -20.0, 20.0, 14);
    let y = x.softmax(-1).unwrap().sum(&[-1], false).unwrap();
    assert_close(&y.to_vec::<f32>().unwrap(), &[1.0; 6], 1e-6, 1e-6);
}
