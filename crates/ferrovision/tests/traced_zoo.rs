//! Traced inference over the whole model zoo: `Model::predict` through traced plans (the
//! default) equals eager `predict` on every architecture, with random weights and random
//! batch-norm statistics (so folding is not an identity), and the plans fold and fuse.

use ferrovision::models::{self, ModelOptions};
use ferrovision::nn::NetworkExt;
use ferrovision::prelude::*;
use ferrovision::train::Model;

/// Random per-channel weights (biases, batch-norm scales, offsets and statistics; the kernels
/// keep their random initialisation): moving variances in [0.5, 1.5), the rest their initial
/// value plus N(0, 0.1²).
fn randomise(model: &Model, seed: u64) {
    let mut rng = Rng::new(seed);
    for (name, p) in model.network().named_weights() {
        let v = p.value();
        if v.rank() != 1 {
            continue;
        }
        let noise = Tensor::randn(&[v.numel()], 0.0, 0.1, &mut rng).unwrap();
        let noise = noise.to_vec::<f32>().unwrap();
        let old = v.to_vec::<f32>().unwrap();
        let new: Vec<f32> = if name.ends_with("moving_variance") || name.ends_with("running_var") {
            noise.iter().map(|e| 0.5 + e.abs() * 3.0).collect()
        } else {
            old.iter().zip(&noise).map(|(o, e)| o + e).collect()
        };
        p.assign(&new).unwrap();
    }
}

/// The tests build models and draw dropout masks from the process-wide generator: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn worst_relative(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

/// Zoo model `name` for 10 classes at a small square size (64 px; Inception v3 its minimum,
/// 75), or at its default size when it needs more; with its channels and side.
fn build_small(name: &str) -> (Box<dyn ferrovision::nn::Network>, usize, usize) {
    let [c, h, w] = models::lookup(name).unwrap().default_input;
    let side = if name.starts_with("inception_v3") {
        75
    } else {
        h.min(w).min(64)
    };
    match models::build(name, &ModelOptions::new(&[c, side, side], 10)) {
        Ok(net) => (net, c, side),
        Err(_) => {
            let side = h.min(w);
            let net = models::build(name, &ModelOptions::new(&[c, side, side], 10)).unwrap();
            (net, c, side)
        }
    }
}

#[test]
fn every_zoo_model_predicts_the_same_traced_and_eager() {
    let _serial = serial();
    for name in models::names() {
        let (net, c, side) = build_small(name);
        let mut model = Model::from_boxed(net);
        randomise(&model, 7);
        let x = Tensor::randn(&[3, c, side, side], 0.0, 1.0, &mut Rng::new(1)).unwrap();
        // Batches of 2: a full batch and a last batch of one, two signatures.
        let traced = model.predict(&x, 2).unwrap();
        let stats = model.trace_stats();
        assert!(stats.refused.is_empty(), "{name}: {:?}", stats.refused);
        assert_eq!(stats.traces, 2, "{name}: {stats:?}");
        // Again: both signatures replay.
        let again = model.predict(&x, 2).unwrap();
        assert_eq!(model.trace_stats().replays, 2, "{name}");
        model.set_run_eagerly(true);
        let eager = model.predict(&x, 2).unwrap();
        let err = worst_relative(&traced, &eager);
        assert!(err < 1e-4, "{name}: traced vs eager {err:e}");
        assert!(
            eager.to_vec::<f32>().unwrap().iter().all(|v| v.is_finite()),
            "{name}"
        );
        assert_eq!(
            again.to_vec::<f32>().unwrap(),
            traced.to_vec::<f32>().unwrap(),
            "{name}: replays differ"
        );
        eprintln!(
            "{name}: folded {} batch norms, fused {} ReLUs and {} elementwise ops, error {err:e}",
            stats.folded_batch_norms, stats.fused_relus, stats.fused_elementwise
        );
    }
}

/// Trains two copies of every zoo architecture for two steps, one eagerly and one through a
/// traced training plan (the default), and requires the same losses and the same weights and
/// batch-norm statistics bit for bit after every step. Every architecture gets a plan (dropout
/// and drop-connect included: their masks come from the process-wide generator).
#[test]
fn every_zoo_model_trains_the_same_traced_and_eager() {
    use ferrovision::nn::losses::SparseCategoricalCrossentropy;
    use ferrovision::nn::optim::Sgd;
    use ferrovision::train::{Batch, Compile};
    let _serial = serial();
    for name in models::names() {
        let build = |eager: bool| {
            manual_seed(3);
            let (net, c, side) = build_small(name);
            let mut model = Model::from_boxed(net);
            model.set_run_eagerly(eager);
            model
                .compile(Compile::new(
                    Sgd::new().lr(0.01).momentum(0.9),
                    SparseCategoricalCrossentropy::new().from_logits(true),
                ))
                .unwrap();
            (model, c, side)
        };
        let ((mut eager, c, side), (mut traced, _, _)) = (build(true), build(false));
        let weights = |m: &Model| -> Vec<Vec<u32>> {
            m.network()
                .named_weights()
                .iter()
                .map(|(_, p)| p.to_vec().unwrap().iter().map(|v| v.to_bits()).collect())
                .collect()
        };
        assert_eq!(weights(&eager), weights(&traced), "{name}: copies differ");
        // Class targets shaped like the output without its class axis ([N] or [N, H, W]).
        let mut target_shape = vec![2];
        target_shape.extend(
            eager.network().output_shapes()[0][2..]
                .iter()
                .map(|d| d.unwrap_or(1)),
        );
        for step in 0..2u64 {
            let mut rng = Rng::new(10 + step);
            let batch = Batch {
                inputs: vec![Tensor::randn(&[2, c, side, side], 0.0, 1.0, &mut rng).unwrap()],
                targets: vec![Tensor::randint(&target_shape, 0, 10, &mut rng).unwrap()],
                sample_weight: None,
            };
            // The same dropout masks for both (the global generator).
            manual_seed(100 + step);
            let a = eager.train_on_batch(&batch).unwrap();
            manual_seed(100 + step);
            let b = traced.train_on_batch(&batch).unwrap();
            assert_eq!(a.to_bits(), b.to_bits(), "{name}: loss at step {step}");
            assert!(
                weights(&eager) == weights(&traced),
                "{name}: weights differ after step {step}"
            );
        }
        let stats = traced.trace_stats();
        assert_eq!(stats.training_traces, 1, "{name}: {stats:?}");
        assert!(stats.refused.is_empty(), "{name}: {:?}", stats.refused);
        assert_eq!(stats.training_replays, 1, "{name}: {stats:?}");
    }
}
