//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use ferrovision_tensor::ops::conv::{set_conv_algo, ConvAlgo, ConvOpts};
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

/// Runs `f` with the process-wide convolution algorithm set to `algo` (then back to `Auto`);
/// the setting is global, so the tests of one binary take turns.
pub fn with_algo<R>(algo: ConvAlgo, f: impl FnOnce() -> R) -> R {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    set_conv_algo(algo);
    let r = f();
    set_conv_algo(ConvAlgo::Auto);
    r
}

/// Inference caches filters made from the weights (Winograd transforms, dense matrices); an
/// in-place weight update (an optimizer step) must not be answered from the cache. Three updates
/// of a 3×3 pad-1 layer of `shape` (channels in = out): the default algorithm gives the same
/// bits twice (the second call reads the cache) and agrees with im2col within `tol`.
pub fn check_cached_filters_follow_weight_updates(shape: [usize; 4], seed: u64, tol: f32) {
    let x = uniform(&shape, -1.0, 1.0, seed);
    let w = uniform(&[shape[1], shape[1], 3, 3], -0.1, 0.1, seed + 1);
    let opts = ConvOpts::new().pad(1);
    let infer = |algo| {
        with_algo(algo, || {
            ferrovision_tensor::no_grad(|| x.conv2d(&w, None, &opts))
                .unwrap()
                .to_vec::<f32>()
                .unwrap()
        })
    };
    for step in 0..3 {
        let auto = infer(ConvAlgo::Auto);
        let again = infer(ConvAlgo::Auto);
        let i2c = infer(ConvAlgo::Im2col);
        assert_eq!(auto, again, "step {step}: a cached call gave other bits");
        assert_close(&auto, &i2c, tol, tol);
        let next = uniform(w.shape(), -0.1, 0.1, seed + 10 + step);
        w.assign_from_slice_(&next.to_vec::<f32>().unwrap())
            .unwrap();
    }
}
