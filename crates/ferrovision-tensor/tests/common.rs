//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use ferrovision_tensor::rng::Rng;
use ferrovision_tensor::Tensor;

/// A tensor of uniform values in [lo, hi) from a fixed seed.
pub fn uniform(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| lo + (hi - lo) * rng.next_f32()).collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// Asserts two float slices are close (|a-b| <= atol + rtol*|b|).
pub fn assert_close(a: &[f32], b: &[f32], rtol: f32, atol: f32) {
    assert_eq!(a.len(), b.len(), "length mismatch");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= atol + rtol * y.abs(),
            "element {i}: {x} vs {y}"
        );
    }
}
