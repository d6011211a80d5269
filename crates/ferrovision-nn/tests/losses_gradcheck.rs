//! Finite-difference gradient checks (engine `GradCheck`, f32 central differences) of every
//! loss whose backward is composed in this crate: the probability paths (clip + log + sums),
//! KL divergence, the sample/class weighting and `sum_over_batch_size` reduction around the
//! engine's fused kernels, and closure losses. Only `y_pred` is perturbed; targets and weights
//! are constants.

use ferrovision_nn::losses::{
    BinaryCrossentropy, CategoricalCrossentropy, FnLoss, Huber, KLDivergence, MeanAbsoluteError,
    MeanSquaredError, SparseCategoricalCrossentropy,
};
use ferrovision_nn::tensor::gradcheck::GradCheck;
use ferrovision_nn::tensor::rng::Rng;
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::Loss;

fn uniform(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, lo, hi, &mut Rng::new(seed)).unwrap()
}

fn onehot(idx: &[i64], c: usize) -> Tensor {
    Tensor::from_vec(idx.to_vec(), &[idx.len()])
        .unwrap()
        .one_hot(c)
        .unwrap()
        .to_dtype(ferrovision_nn::tensor::DType::F32)
        .unwrap()
}

/// Checks d loss / d y_pred by central differences. The step is 2e-3 rather than the default
/// 1e-2 because `log p` at probabilities near 0.02 curves too much for a wide step.
fn check(loss: &dyn Loss, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) {
    let worst = GradCheck {
        eps: 2e-3,
        ..GradCheck::default()
    }
    .run(
        |xs| {
            loss.call(y_true, &xs[0], sw).map_err(|e| {
                ferrovision_nn::tensor::Error::InvalidArgument {
                    op: "loss",
                    msg: e.to_string(),
                }
            })
        },
        std::slice::from_ref(y_pred),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", loss.name()));
    assert!(worst.is_finite());
}

#[test]
fn probability_cross_entropies() {
    let sw = Tensor::from_vec(vec![0.5f32, 2.0, 1.0, 0.25, 1.5, 1.0], &[6]).unwrap();
    let p = uniform(&[6, 3], 0.1, 0.9, 1);
    let y = uniform(&[6, 3], 0.0, 1.0, 2);
    for ls in [0.0, 0.2] {
        let l = BinaryCrossentropy::new().label_smoothing(ls);
        check(&l, &y, &p, None);
        check(&l, &y, &p, Some(&sw));
    }
    let idx = [0i64, 2, 1, 1, 0, 2];
    let q = onehot(&idx, 3);
    let raw = uniform(&[6, 3], 0.2, 1.0, 3); // not normalised
    for ls in [0.0, 0.1] {
        let l = CategoricalCrossentropy::new().label_smoothing(ls);
        check(&l, &q, &raw, Some(&sw));
    }
    let l = CategoricalCrossentropy::new().class_weights(vec![1.0, 3.0, 0.5]);
    check(&l, &q, &raw, Some(&sw));
    let labels = Tensor::from_vec(idx.to_vec(), &[6]).unwrap();
    let probs = raw.div(&raw.sum(&[1], true).unwrap()).unwrap();
    check(
        &SparseCategoricalCrossentropy::new(),
        &labels,
        &probs,
        Some(&sw),
    );
    let ig = Tensor::from_vec(vec![0i64, -1, 1, 1, -1, 2], &[6]).unwrap();
    let l = SparseCategoricalCrossentropy::new()
        .ignore_class(Some(-1))
        .class_weights(vec![2.0, 1.0, 0.5]);
    check(&l, &ig, &probs, Some(&sw));
}

#[test]
fn spatial_cross_entropies() {
    let (n, c, h, w) = (2, 4, 3, 2);
    let sw = Tensor::from_vec(vec![0.7f32, 1.3], &[2]).unwrap();
    let logits = uniform(&[n, c, h, w], -2.0, 2.0, 4);
    let labels = Tensor::randint(&[n, h, w], 0, c as i64, &mut Rng::new(5)).unwrap();
    let raw_labels = labels.clone();
    let labels = labels
        .masked_fill(&labels.eq_scalar(3.0).unwrap(), 255.0)
        .unwrap();
    assert_eq!(labels.dtype(), ferrovision_nn::tensor::DType::I64);
    let l = SparseCategoricalCrossentropy::new()
        .from_logits(true)
        .ignore_class(Some(255))
        .class_weights(vec![1.0, 2.0, 0.5, 1.0]);
    check(&l, &labels, &logits, Some(&sw));
    let l = SparseCategoricalCrossentropy::new()
        .from_logits(true)
        .label_smoothing(0.1);
    check(&l, &raw_labels, &logits, Some(&sw));
    let probs = logits.softmax(1).unwrap();
    let onehot_t = uniform(&[n, c, h, w], 0.0, 1.0, 6);
    for from_logits in [true, false] {
        let x = if from_logits { &logits } else { &probs };
        let l = CategoricalCrossentropy::new()
            .from_logits(from_logits)
            .label_smoothing(0.1);
        check(&l, &onehot_t, x, Some(&sw));
    }
    let t = uniform(&[n, c, h, w], 0.05, 1.0, 7);
    let t = t.div(&t.sum(&[1], true).unwrap()).unwrap();
    check(&KLDivergence::new(), &t, &probs, Some(&sw));
    check(&KLDivergence::new(), &t, &probs, None);
}

#[test]
fn weighted_fused_losses() {
    let sw = Tensor::from_vec(vec![0.5f32, 2.0, 1.0, 0.25], &[4]).unwrap();
    let y = uniform(&[4, 5], -1.0, 1.0, 8);
    let p = uniform(&[4, 5], -1.0, 1.0, 9);
    check(&MeanSquaredError::new(), &y, &p, Some(&sw));
    check(
        &MeanAbsoluteError::new(),
        &y,
        &p.add_scalar(0.05).unwrap(),
        Some(&sw),
    );
    check(&Huber::new(0.5), &y, &p.mul_scalar(2.0).unwrap(), Some(&sw));
    let b = uniform(&[4, 5], 0.0, 1.0, 10);
    let l = BinaryCrossentropy::new()
        .from_logits(true)
        .label_smoothing(0.1);
    check(&l, &b, &p.mul_scalar(3.0).unwrap(), Some(&sw));
    let q = onehot(&[1, 4, 0, 2], 5);
    let l = CategoricalCrossentropy::new()
        .from_logits(true)
        .class_weights(vec![1.0, 2.0, 3.0, 0.5, 1.0]);
    check(&l, &q, &p, Some(&sw));
}

#[test]
fn closure_loss() {
    let sw = Tensor::from_vec(vec![0.5f32, 2.0, 1.0], &[3]).unwrap();
    let y = uniform(&[3, 4], -1.0, 1.0, 11);
    let p = uniform(&[3, 4], -1.0, 1.0, 12);
    let per_sample = FnLoss::new("cubic", |t: &Tensor, p: &Tensor| {
        Ok(p.sub(t)?.pow_scalar(3.0)?.abs()?.sum(&[1], false)?)
    });
    check(&per_sample, &y, &p, Some(&sw));
    let scalar = FnLoss::new("scalar", |t: &Tensor, p: &Tensor| {
        Ok(p.sub(t)?.square()?.mean_all()?)
    });
    check(&scalar, &y, &p, Some(&sw));
}
