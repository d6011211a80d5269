//! Dropout layers: identity in inference, the right drop rate and scaling in training, whole
//! channels for spatial dropout, reproducible masks under `manual_seed`.
//!
//! One test function only: the masks come from the process-wide generator, which other tests
//! running in parallel in the same binary would otherwise advance.

use ferrovision_nn::layer::{CallCtx, Layer};
use ferrovision_nn::layers::{Dropout, SpatialDropout2D};
use ferrovision_nn::tensor::rng::manual_seed;
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::Sequential;

fn run(l: &dyn Layer, x: &Tensor, training: bool) -> Vec<f32> {
    l.call(std::slice::from_ref(x), &mut CallCtx::new(training))
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn dropout_behaviour() {
    let rate = 0.3f32;
    let mut d = Dropout::new(rate);
    d.build(&[vec![None, Some(100)]]).unwrap();
    let n = 20_000;
    let x = Tensor::ones(&[200, 100]);
    // Inference: the identity.
    assert!(run(&d, &x, false).iter().all(|&v| v == 1.0));
    // Training: zeros with probability `rate`, survivors scaled by 1 / (1 - rate).
    manual_seed(5);
    let y = run(&d, &x, true);
    let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
    let sigma = (rate as f64 * (1.0 - rate as f64) / n as f64).sqrt();
    assert!(
        (zeros - rate as f64).abs() < 5.0 * sigma,
        "drop fraction {zeros}"
    );
    let scale = 1.0 / (1.0 - rate);
    assert!(y.iter().all(|&v| v == 0.0 || (v - scale).abs() < 1e-6));
    // Same seed, same mask; another seed, another mask.
    manual_seed(5);
    assert_eq!(run(&d, &x, true), y);
    manual_seed(6);
    assert_ne!(run(&d, &x, true), y);
    // The gradient is the mask times the scale.
    manual_seed(7);
    let leaf = Tensor::ones(&[20, 10]).requires_grad_(true);
    let out = d
        .call(std::slice::from_ref(&leaf), &mut CallCtx::new(true))
        .unwrap();
    out.sum_all().unwrap().backward().unwrap();
    assert_eq!(
        leaf.grad().unwrap().to_vec::<f32>().unwrap(),
        out.to_vec::<f32>().unwrap()
    );

    // Spatial dropout zeroes whole (sample, channel) planes.
    let mut sd = SpatialDropout2D::new(0.5);
    sd.build(&[vec![None, Some(32), None, None]]).unwrap();
    let img = Tensor::ones(&[16, 32, 3, 3]);
    assert!(run(&sd, &img, false).iter().all(|&v| v == 1.0));
    manual_seed(9);
    let y = run(&sd, &img, true);
    let planes: Vec<&[f32]> = y.chunks(9).collect();
    assert!(planes
        .iter()
        .all(|p| p.iter().all(|&v| v == 0.0) || p.iter().all(|&v| v == 2.0)));
    let dropped = planes.iter().filter(|p| p[0] == 0.0).count() as f64 / planes.len() as f64;
    let sigma = (0.25 / planes.len() as f64).sqrt();
    assert!(
        (dropped - 0.5).abs() < 5.0 * sigma,
        "dropped planes {dropped}"
    );
    manual_seed(9);
    assert_eq!(run(&sd, &img, true), y);

    // A model's predict runs in inference mode: dropout is off.
    let model = Sequential::new(&[4])
        .add(Dropout::new(0.9))
        .build()
        .unwrap();
    let x = Tensor::ones(&[3, 4]);
    assert!(model
        .predict_batch(&x)
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .all(|&v| v == 1.0));
}
