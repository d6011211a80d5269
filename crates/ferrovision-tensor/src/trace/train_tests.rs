use super::*;
use crate::rng::Rng;
use crate::trace::tests::bits;
use crate::{ConvOpts, PoolOpts};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, &mut Rng::new(seed)).unwrap()
}

/// A residual CNN trained in training mode: conv -> batch norm -> ReLU (read twice: the
/// residual) -> conv -> batch norm -> + -> ReLU -> 2x2 max pool -> global mean -> dense, and an
/// auxiliary output (the pooled features' mean).
struct Net {
    weights: Vec<Tensor>,
    /// Running statistics (mean, var) of the two batch norms.
    stats: Vec<Tensor>,
}

impl Net {
    fn new() -> Net {
        let w = |shape: &[usize], seed: u64, scale: f32| {
            randn(shape, seed)
                .mul_scalar(scale)
                .unwrap()
                .requires_grad_(true)
        };
        Net {
            weights: vec![
                w(&[6, 3, 3, 3], 1, 0.3),
                w(&[6], 2, 1.0),
                w(&[6], 3, 0.2)
                    .add_scalar(1.0)
                    .unwrap()
                    .detach()
                    .requires_grad_(true),
                w(&[6], 4, 1.0),
                w(&[6, 6, 3, 3], 5, 0.2),
                w(&[6], 6, 0.2)
                    .add_scalar(1.0)
                    .unwrap()
                    .detach()
                    .requires_grad_(true),
                w(&[6], 7, 1.0),
                w(&[6, 5], 8, 0.5),
                w(&[5], 9, 1.0),
            ],
            stats: vec![
                Tensor::zeros(&[6]),
                Tensor::ones(&[6]),
                Tensor::zeros(&[6]),
                Tensor::ones(&[6]),
            ],
        }
    }

    /// A copy with the same values (its own leaves and statistics).
    fn copy(&self) -> Net {
        let dup = |t: &Tensor| {
            Tensor::from_vec(t.to_vec::<f32>().unwrap(), t.shape())
                .unwrap()
                .requires_grad_(t.requires_grad())
        };
        Net {
            weights: self.weights.iter().map(dup).collect(),
            stats: self.stats.iter().map(dup).collect(),
        }
    }

    fn forward(&self, x: &[Tensor]) -> Result<Vec<Tensor>> {
        let w = &self.weights;
        let s = &self.stats;
        let h = x[0].conv2d(&w[0], Some(&w[1]), &ConvOpts::new().pad(1))?;
        let h = h
            .batch_norm(&s[0], &s[1], Some(&w[2]), Some(&w[3]), true, 0.1, 1e-5)?
            .relu()?;
        let r = h.conv2d(&w[4], None, &ConvOpts::new().pad(1))?;
        let r = r.batch_norm(&s[2], &s[3], Some(&w[5]), Some(&w[6]), true, 0.1, 1e-5)?;
        let h = r.add(&h)?.relu()?.max_pool2d(&PoolOpts::new(&[2]))?;
        let feats = h.mean(&[2, 3], false)?;
        let logits = feats.linear(&w[7], Some(&w[8]))?;
        Ok(vec![logits, feats.mean(&[1], false)?])
    }
}

/// The loss a step builds eagerly on the outputs: softmax cross-entropy of the logits plus a
/// penalty on the auxiliary output.
fn loss(outs: &[Tensor], targets: &Tensor) -> Tensor {
    let ce = outs[0]
        .cross_entropy(targets, &crate::CrossEntropyOpts::default())
        .unwrap();
    ce.add(&outs[1].square().unwrap().mean_all().unwrap())
        .unwrap()
}

/// Plain SGD on the leaves that have gradients, then clears them.
fn sgd(net: &Net) {
    for w in &net.weights {
        if let Some(g) = w.grad() {
            let new = crate::no_grad(|| w.sub(&g.mul_scalar(0.05).unwrap())).unwrap();
            w.assign_from_slice_(&new.to_vec::<f32>().unwrap()).unwrap();
        }
        w.zero_grad();
    }
}

fn batch(seed: u64) -> (Tensor, Tensor) {
    let x = randn(&[4, 3, 8, 8], 100 + seed);
    let y = Tensor::randint(&[4], 0, 5, &mut Rng::new(200 + seed)).unwrap();
    (x, y)
}

/// Trains `eager` eagerly and `traced` (a copy) through a training plan for `steps` batches,
/// requiring the same loss, gradients and running statistics bitwise at every step.
fn train_both(eager: &Net, traced: &Net, steps: u64) {
    let mut plan: Option<Plan> = None;
    for step in 0..steps {
        let (x, y) = batch(step);
        let e_outs = eager.forward(std::slice::from_ref(&x)).unwrap();
        let e_loss = loss(&e_outs, &y);
        e_loss.backward().unwrap();

        let t_outs = match plan.as_mut() {
            Some(p) => p.run(std::slice::from_ref(&x)).unwrap(),
            None => {
                let (outs, p) =
                    trace_training(std::slice::from_ref(&x), |x| traced.forward(x)).unwrap();
                let p = p.unwrap();
                assert!(p.is_training());
                // Nothing folded or fused away: training reads every intermediate.
                assert_eq!(p.stats().folded_batch_norms + p.stats().fused_relus, 0);
                plan = Some(p);
                outs
            }
        };
        let t_loss = loss(&t_outs, &y);
        t_loss.backward().unwrap();

        assert_eq!(bits(&e_loss), bits(&t_loss), "loss, step {step}");
        for (i, (a, b)) in eager.weights.iter().zip(&traced.weights).enumerate() {
            match (a.grad(), b.grad()) {
                (Some(a), Some(b)) => {
                    assert_eq!(bits(&a), bits(&b), "gradient of weight {i}, step {step}")
                }
                (None, None) => {}
                _ => panic!("weight {i} has a gradient in one mode only, step {step}"),
            }
        }
        for (i, (a, b)) in eager.stats.iter().zip(&traced.stats).enumerate() {
            assert_eq!(bits(a), bits(b), "running statistic {i}, step {step}");
        }
        sgd(eager);
        sgd(traced);
    }
}

#[test]
fn a_traced_training_step_matches_eager_mode_bitwise_over_several_updates() {
    let eager = Net::new();
    let traced = eager.copy();
    train_both(&eager, &traced, 4);
}

#[test]
fn frozen_weights_get_no_gradient_and_the_rest_still_match() {
    let mut eager = Net::new();
    let mut traced = eager.copy();
    // Freeze the first convolution (what `trainable = false` does to its weight).
    eager.weights[0] = eager.weights[0].detach();
    traced.weights[0] = traced.weights[0].detach();
    train_both(&eager, &traced, 3);
    assert!(traced.weights[0].grad().is_none());
}

#[test]
fn replays_hang_the_outputs_from_one_node_and_other_signatures_are_rejected() {
    let net = Net::new();
    let (x, y) = batch(0);
    let (_, plan) = trace_training(std::slice::from_ref(&x), |x| net.forward(x)).unwrap();
    let mut plan = plan.unwrap();
    let outs = plan.run(std::slice::from_ref(&x)).unwrap();
    // Two outputs carry gradients: views of one joined buffer.
    assert_eq!(outs[0].grad_fn_name(), Some("reshape"));
    let l = loss(&outs, &y);
    let walked = crate::autograd::graph::walk(&[&l]);
    assert!(walked
        .iter()
        .any(|n| n.op().name() == "traced_training_step"));
    let err = plan
        .run(&[randn(&[2, 3, 8, 8], 1)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("do not match the traced signature"), "{err}");
}

#[test]
fn dropout_and_inputs_that_need_gradients_refuse_a_training_plan() {
    let w = randn(&[3, 4], 1).requires_grad_(true);
    let x = randn(&[2, 3], 2);
    let (outs, plan) = trace_training(std::slice::from_ref(&x), |x| {
        Ok::<_, Error>(vec![x[0].linear(&w, None)?.dropout(
            0.5,
            true,
            &mut Rng::new(3),
        )?])
    })
    .unwrap();
    let err = plan.unwrap_err().to_string();
    assert!(
        err.contains("'dropout' cannot be replayed in a traced training plan"),
        "{err}"
    );
    // The eager outputs still train.
    outs[0].sum_all().unwrap().backward().unwrap();
    assert!(w.grad().is_some());

    let xg = x.requires_grad_(true);
    let (_, plan) = trace_training(std::slice::from_ref(&xg), |x| {
        Ok::<_, Error>(vec![x[0].linear(&w, None)?])
    })
    .unwrap();
    let err = plan.unwrap_err().to_string();
    assert!(err.contains("input 0 requires a gradient"), "{err}");
}

#[test]
fn under_no_grad_a_training_plan_replays_without_a_graph() {
    let net = Net::new();
    let (x, _) = batch(2);
    let (_, plan) = trace_training(std::slice::from_ref(&x), |x| net.forward(x)).unwrap();
    let mut plan = plan.unwrap();
    let outs = crate::no_grad(|| plan.run(std::slice::from_ref(&x))).unwrap();
    assert!(outs.iter().all(|o| !o.requires_grad()));
}

/// Tests that draw from the process-wide generator run one at a time.
static GLOBAL_GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn dropout_from_the_global_generator_replays_the_eager_masks() {
    let _serial = GLOBAL_GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let w = randn(&[3, 64], 1).requires_grad_(true);
    let f = |x: &[Tensor]| -> Result<Vec<Tensor>> {
        Ok(vec![x[0].linear(&w, None)?.dropout_global(0.5, true)?])
    };
    let x = randn(&[4, 3], 2);
    crate::rng::manual_seed(5);
    let (traced, plan) = trace_training(std::slice::from_ref(&x), f).unwrap();
    let mut plan = plan.unwrap();
    // The trace's own check replayed the same masks and left the generator after one draw.
    crate::rng::manual_seed(5);
    let eager = f(std::slice::from_ref(&x)).unwrap();
    assert_eq!(bits(&traced[0]), bits(&eager[0]));
    let next_eager = f(std::slice::from_ref(&x)).unwrap();
    crate::rng::manual_seed(5);
    let _ = f(std::slice::from_ref(&x)).unwrap();
    let replayed = plan.run(std::slice::from_ref(&x)).unwrap();
    assert_eq!(bits(&replayed[0]), bits(&next_eager[0]));
    assert_ne!(bits(&replayed[0]), bits(&eager[0]), "a new mask each step");
    replayed[0].sum_all().unwrap().backward().unwrap();
    let g = w.grad().unwrap();
    w.zero_grad();
    next_eager[0].sum_all().unwrap().backward().unwrap();
    assert_eq!(bits(&g), bits(&w.grad().unwrap()));
}

#[test]
fn the_trace_check_is_not_disturbed_by_other_threads_drawing_from_the_global_generator() {
    let _serial = GLOBAL_GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let w = randn(&[3, 64], 1).requires_grad_(true);
    let f = |x: &[Tensor]| -> Result<Vec<Tensor>> {
        Ok(vec![x[0].linear(&w, None)?.dropout_global(0.5, true)?])
    };
    let x = randn(&[4, 3], 2);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let noise = randn(&[256], 3);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                noise.dropout_global(0.5, true).unwrap();
                std::thread::yield_now();
            }
        });
        for _ in 0..20 {
            let (_, plan) = trace_training(std::slice::from_ref(&x), f).unwrap();
            assert!(plan.is_ok(), "{:?}", plan.err());
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}
