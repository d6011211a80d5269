//! The model core: Sequential and functional graphs, fit/evaluate/predict, freezing, summary,
//! saving/loading and bit-exact resume, custom models.

mod common;

use common::serial;
use ferrovision_nn::layers::Dense;
use ferrovision_nn::losses::MeanSquaredError;
use ferrovision_nn::network::NetworkExt;
use ferrovision_nn::optim::Sgd;
use ferrovision_nn::tensor::rng::{manual_seed, Rng};
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{
    Activation, CallCtx, Error, Graph, Layer, Network, Result, Sequential, Shape,
};
use ferrovision_train::{Compile, FitOptions, Model};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    common::tmp_dir(name).join(name)
}

/// y = x @ w_true + 0.5 with 3 features.
fn regression(n: usize, seed: u64) -> (Tensor, Tensor) {
    let mut rng = Rng::new(seed);
    let x = Tensor::randn(&[n, 3], 0.0, 1.0, &mut rng).unwrap();
    let w = Tensor::from_vec(vec![1.5f32, -2.0, 0.7], &[3, 1]).unwrap();
    let y = x.matmul(&w).unwrap().add_scalar(0.5).unwrap();
    (x, y)
}

fn mlp() -> Sequential {
    Sequential::new(&[3])
        .add(Dense::new(8).activation(Activation::Tanh))
        .add(Dense::new(1))
        .build()
        .unwrap()
}

/// Keras SGD (`momentum` 0: plain `w -= lr * g`).
fn sgd(lr: f64, momentum: f64) -> Sgd {
    Sgd::new().lr(lr).momentum(momentum)
}

fn quiet(epochs: usize) -> FitOptions {
    FitOptions {
        epochs,
        batch_size: 16,
        verbose: 0,
        ..FitOptions::default()
    }
}

#[test]
fn sequential_names_shapes_and_summary() {
    let _guard = serial();
    manual_seed(1);
    let net = Sequential::new(&[3])
        .add(Dense::new(8))
        .add(Dense::new(4).named("head"))
        .add(Dense::new(1))
        .build()
        .unwrap();
    let names: Vec<&str> = net.layers().iter().map(|l| l.name()).collect();
    assert_eq!(names, ["dense", "head", "dense_1"]);
    let wn: Vec<String> = net.named_weights().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        wn,
        [
            "dense/kernel",
            "dense/bias",
            "head/kernel",
            "head/bias",
            "dense_1/kernel",
            "dense_1/bias"
        ]
    );
    assert_eq!(net.count_params(), 3 * 8 + 8 + 8 * 4 + 4 + 4 + 1);
    assert_eq!(net.output_shapes(), vec![vec![None, Some(1)]]);
    let s = net.summary();
    assert!(s.contains("dense (Dense)"), "{s}");
    assert!(s.contains("(None, 4)"), "{s}");
    assert!(s.contains("Total params: 73 (292.00 B)"), "{s}");
    assert!(s.contains("Non-trainable params: 0"), "{s}");
    // A wrong input shape is a clear error naming the model.
    let err = net.predict_batch(&Tensor::ones(&[2, 5])).unwrap_err();
    assert!(err.to_string().contains("expected (None, 3)"), "{err}");
}

#[test]
fn fit_learns_and_history_evaluate_predict_work() {
    let _guard = serial();
    manual_seed(2);
    let (x, y) = regression(256, 3);
    let mut model = Model::new(mlp());
    model
        .compile(Compile::new(sgd(0.05, 0.9), MeanSquaredError::new()))
        .unwrap();
    let before = model.evaluate(&x, &y, 64).unwrap().get("loss").unwrap();
    let h = model
        .fit(
            &x,
            &y,
            FitOptions {
                validation_split: 0.25,
                ..quiet(30)
            },
            vec![],
        )
        .unwrap();
    assert_eq!(h.epochs, (0..30).collect::<Vec<_>>());
    let loss = h.get("loss");
    let val = h.get("val_loss");
    assert_eq!((loss.len(), val.len()), (30, 30));
    assert!(loss[29] < loss[0] * 0.05, "loss {:?}", loss);
    assert!(val[29] < 0.05, "val_loss {:?}", val);
    let after = model.evaluate(&x, &y, 64).unwrap().get("loss").unwrap();
    assert!(after < before * 0.05, "{before} -> {after}");
    let p = model.predict(&x, 100).unwrap();
    assert_eq!(p.shape(), &[256, 1]);
    assert_eq!(model.epoch(), 30);
}

#[test]
fn fit_errors_are_clear() {
    let (x, y) = regression(10, 1);
    let mut model = Model::new(mlp());
    let err = model.fit(&x, &y, quiet(1), vec![]).unwrap_err();
    assert!(err.to_string().contains("not compiled"), "{err}");
    model
        .compile(Compile::new(sgd(0.01, 0.0), MeanSquaredError::new()))
        .unwrap();
    let err = model
        .fit(&x, &y.narrow(0, 0, 5).unwrap(), quiet(1), vec![])
        .unwrap_err();
    assert!(err.to_string().contains("needs 10 samples"), "{err}");
    let err = model
        .fit(
            &x,
            &y,
            FitOptions {
                batch_size: 0,
                ..quiet(1)
            },
            vec![],
        )
        .unwrap_err();
    assert!(err.to_string().contains("batch_size"), "{err}");
}

#[test]
fn frozen_layers_do_not_change() {
    let _guard = serial();
    manual_seed(3);
    let (x, y) = regression(64, 4);
    let mut model = Model::new(mlp());
    model
        .network_mut()
        .set_layer_trainable("dense", false)
        .unwrap();
    assert!(
        model
            .summary()
            .contains("Non-trainable params: 32 (128.00 B)"),
        "{}",
        model.summary()
    );
    let frozen = model.network().get_layer("dense").unwrap().weights()[0]
        .to_vec()
        .unwrap();
    let head = model.network().get_layer("dense_1").unwrap().weights()[0]
        .to_vec()
        .unwrap();
    model
        .compile(Compile::new(sgd(0.05, 0.0), MeanSquaredError::new()))
        .unwrap();
    model.fit(&x, &y, quiet(2), vec![]).unwrap();
    assert_eq!(
        frozen,
        model.network().get_layer("dense").unwrap().weights()[0]
            .to_vec()
            .unwrap()
    );
    assert_ne!(
        head,
        model.network().get_layer("dense_1").unwrap().weights()[0]
            .to_vec()
            .unwrap()
    );
    assert!(model
        .network_mut()
        .set_layer_trainable("nope", false)
        .is_err());
}

#[test]
fn functional_branches_shared_layers_nested_models_and_two_outputs() {
    let _guard = serial();
    manual_seed(4);
    let mut g = Graph::new();
    let a = g.input("a", &[Some(3)]);
    let b = g.input("b", &[Some(3)]);
    let shared = g.add_layer(Dense::new(8).activation(Activation::Tanh).named("shared"));
    let ha = g.call(shared, &[a]).unwrap();
    let hb = g.call(shared, &[b]).unwrap();
    // A nested Sequential model used as a layer.
    let tower = Sequential::new(&[8])
        .add(Dense::new(4))
        .named("tower")
        .build()
        .unwrap();
    let t = g.apply(tower, &[ha]).unwrap();
    let out1 = g.apply(Dense::new(1).named("sum_head"), &[t]).unwrap();
    let out2 = g.apply(Dense::new(1).named("diff_head"), &[hb]).unwrap();
    assert_eq!(g.shape(out1).unwrap(), &vec![None, Some(1)]);
    let net = g.build("two_heads", &[a, b], &[out1, out2]).unwrap();
    // The shared layer's weights appear once.
    let names: Vec<String> = net.named_weights().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "shared/kernel",
            "shared/bias",
            "tower/dense/kernel",
            "tower/dense/bias",
            "sum_head/kernel",
            "sum_head/bias",
            "diff_head/kernel",
            "diff_head/bias"
        ]
    );
    let s = net.summary();
    assert!(
        s.contains("Connected to")
            && s.contains("shared (Dense)")
            && s.contains("tower (Sequential)"),
        "{s}"
    );

    let mut rng = Rng::new(9);
    let xa = Tensor::randn(&[128, 3], 0.0, 1.0, &mut rng).unwrap();
    let xb = Tensor::randn(&[128, 3], 0.0, 1.0, &mut rng).unwrap();
    let y1 = xa.sum(&[1], true).unwrap();
    let y2 = xb
        .narrow(1, 0, 1)
        .unwrap()
        .sub(&xb.narrow(1, 1, 1).unwrap())
        .unwrap();
    let mut model = Model::new(net);
    model
        .compile(
            Compile::new(sgd(0.05, 0.9), MeanSquaredError::new())
                .loss(MeanSquaredError::new())
                .loss_weights(&[1.0, 0.5]),
        )
        .unwrap();
    let h = model
        .fit_arrays(
            vec![xa.clone(), xb.clone()],
            vec![y1.clone(), y2.clone()],
            quiet(40),
            vec![],
        )
        .unwrap();
    let last = h.last().unwrap();
    let (l, l1, l2) = (
        last.get("loss").unwrap(),
        last.get("sum_head_loss").unwrap(),
        last.get("diff_head_loss").unwrap(),
    );
    assert!(
        (l - (l1 + 0.5 * l2)).abs() < 0.05 * l.max(1e-3),
        "{l} vs {l1} + 0.5 * {l2}"
    );
    assert!(l1 < 0.05 && l2 < 0.05, "{last:?}");
    let outs = model.predict_arrays(vec![xa, xb], 50).unwrap();
    assert_eq!(outs.len(), 2);
    assert_eq!(outs[1].shape(), &[128, 1]);
}

#[test]
fn functional_graph_errors() {
    let mut g = Graph::new();
    let a = g.input("a", &[Some(3)]);
    let b = g.input("b", &[Some(3)]);
    let h = g.apply(Dense::new(2), &[a]).unwrap();
    // Shape mismatch on a layer call is reported when the graph is built.
    let err = g
        .apply(ferrovision_nn::layers::Dense::new(2), &[h, b])
        .unwrap_err();
    assert!(err.to_string().contains("expects 1 input"), "{err}");
    let out = g.apply(Dense::new(1), &[h]).unwrap();
    let err = Graph::new().build("empty", &[], &[]).err().unwrap();
    assert!(
        err.to_string().contains("node") || err.to_string().contains("output"),
        "{err}"
    );
    let err = g.build("m", &[b], &[out]).err().unwrap();
    assert!(err.to_string().contains("depends on input 'a'"), "{err}");
}

#[test]
fn unknown_dimensions_are_allowed() {
    let mut g = Graph::new();
    let x = g.input("seq", &[None, Some(5)]);
    let y = g.apply(Dense::new(2), &[x]).unwrap();
    let net = g.build("any_len", &[x], &[y]).unwrap();
    assert_eq!(net.output_shapes(), vec![vec![None, None, Some(2)]]);
    let mut ctx = CallCtx::new(false);
    for len in [1, 7] {
        let out = net
            .forward(&[Tensor::ones(&[2, len, 5])], &mut ctx)
            .unwrap();
        assert_eq!(out[0].shape(), &[2, len, 2]);
    }
    assert!(net.forward(&[Tensor::ones(&[2, 7, 4])], &mut ctx).is_err());
}

#[test]
fn weights_round_trip_and_mismatches_are_named() {
    let _guard = serial();
    manual_seed(5);
    let a = Model::new(mlp());
    let b = Model::new(mlp());
    let x = Tensor::ones(&[2, 3]);
    assert_ne!(
        a.predict(&x, 2).unwrap().to_vec::<f32>().unwrap(),
        b.predict(&x, 2).unwrap().to_vec::<f32>().unwrap()
    );
    let path = tmp("w.safetensors");
    a.save_weights(&path).unwrap();
    b.load_weights(&path).unwrap();
    assert_eq!(
        a.predict(&x, 2).unwrap().to_vec::<f32>().unwrap(),
        b.predict(&x, 2).unwrap().to_vec::<f32>().unwrap()
    );
    // A model with a different layer size: the error names the tensor and both shapes.
    let other = Model::new(
        Sequential::new(&[3])
            .add(Dense::new(9))
            .add(Dense::new(1))
            .build()
            .unwrap(),
    );
    let err = other.load_weights(&path).unwrap_err().to_string();
    assert!(
        err.contains("dense/kernel") && err.contains("[3, 8]") && err.contains("[3, 9]"),
        "{err}"
    );
    // A model with an extra layer: the missing tensor is named.
    let bigger = Model::new(
        Sequential::new(&[3])
            .add(Dense::new(8))
            .add(Dense::new(1))
            .add(Dense::new(1))
            .build()
            .unwrap(),
    );
    let err = bigger.load_weights(&path).unwrap_err().to_string();
    assert!(err.contains("missing tensor 'dense_2/kernel'"), "{err}");
    // Corrupt and truncated files.
    let bytes = std::fs::read(&path).unwrap();
    let bad = tmp("truncated.safetensors");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let err = b.load_weights(&bad).unwrap_err();
    assert!(
        matches!(err, Error::Format { .. }) && err.to_string().contains("truncated.safetensors"),
        "{err}"
    );
    let err = b.load_weights(tmp("missing.safetensors")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    // No temporary files are left behind by atomic writes.
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn saved_architecture_rebuilds_sequential_and_functional_models() {
    let _guard = serial();
    manual_seed(6);
    let x = Tensor::randn(&[4, 3], 0.0, 1.0, &mut Rng::new(1)).unwrap();
    let seq = Model::new(mlp());
    let p = tmp("seq.fvm");
    seq.save(&p).unwrap();
    let back = Model::load(&p).unwrap();
    assert_eq!(
        seq.predict(&x, 4).unwrap().to_vec::<f32>().unwrap(),
        back.predict(&x, 4).unwrap().to_vec::<f32>().unwrap()
    );
    assert_eq!(seq.summary(), back.summary());

    let mut g = Graph::new();
    let a = g.input("a", &[Some(3)]);
    let h1 = g
        .apply(Dense::new(4).activation(Activation::Relu), &[a])
        .unwrap();
    let inner = Sequential::new(&[4])
        .add(Dense::new(4))
        .named("inner")
        .build()
        .unwrap();
    let h2 = g.apply(inner, &[h1]).unwrap();
    let o = g.apply(Dense::new(2), &[h2]).unwrap();
    let f = Model::new(g.build("func", &[a], &[o]).unwrap());
    let p = tmp("func.fvm");
    f.save(&p).unwrap();
    let back = Model::load(&p).unwrap();
    assert_eq!(
        f.predict(&x, 4).unwrap().to_vec::<f32>().unwrap(),
        back.predict(&x, 4).unwrap().to_vec::<f32>().unwrap()
    );
    assert_eq!(f.summary(), back.summary());
    // A weights-only file is not a model file.
    let w = tmp("only_weights.safetensors");
    f.save_weights(&w).unwrap();
    let err = Model::load(&w).err().unwrap().to_string();
    assert!(err.contains("not a ferrovision model file"), "{err}");
}

/// Training 6 epochs straight equals training 3, saving, restoring into a fresh model and
/// training 3 more: weights, optimizer state, epoch counter and shuffling all resume exactly.
#[test]
fn resume_is_bit_exact() {
    let (x, y) = regression(96, 7);
    let opts = |epochs| FitOptions {
        seed: 11,
        ..quiet(epochs)
    };
    let _guard = serial();
    manual_seed(7);
    let mut straight = Model::new(mlp());
    straight
        .compile(Compile::new(sgd(0.02, 0.9), MeanSquaredError::new()))
        .unwrap();
    straight.fit(&x, &y, opts(6), vec![]).unwrap();

    manual_seed(7);
    let mut first = Model::new(mlp());
    first
        .compile(Compile::new(sgd(0.02, 0.9), MeanSquaredError::new()))
        .unwrap();
    first.fit(&x, &y, opts(3), vec![]).unwrap();
    let ckpt = tmp("resume.fvm");
    first.save(&ckpt).unwrap();
    drop(first);
    manual_seed(999); // a different state, which the checkpoint must overwrite
    let mut resumed = Model::new(mlp());
    resumed
        .compile(Compile::new(sgd(0.02, 0.9), MeanSquaredError::new()))
        .unwrap();
    resumed.load_checkpoint(&ckpt).unwrap();
    assert_eq!(resumed.epoch(), 3);
    assert_eq!(resumed.optimizer().unwrap().iterations(), 3 * 6);
    let h = resumed.fit(&x, &y, opts(6), vec![]).unwrap();
    assert_eq!(h.epochs, vec![3, 4, 5]);
    let a = straight.network().get_weights().unwrap();
    let b = resumed.network().get_weights().unwrap();
    for (wa, wb) in a.iter().zip(&b) {
        assert_eq!(wa.to_vec::<f32>().unwrap(), wb.to_vec::<f32>().unwrap());
    }
}

/// An epoch suspended mid-way (as the CLI does on SIGINT/SIGTERM), saved, loaded into a new
/// model and continued ends exactly where an uninterrupted run does: weights, the suspended
/// epoch's logged means and metrics, and every later epoch.
#[test]
fn an_epoch_suspended_mid_way_continues_bit_exactly_after_save_and_load() {
    use ferrovision_nn::metrics::MeanSquaredError as Mse;
    use ferrovision_train::callbacks::LambdaCallback;
    let (x, y) = regression(96, 7);
    let opts = |epochs| FitOptions {
        seed: 11,
        ..quiet(epochs)
    };
    let compiled = || {
        let mut m = Model::new(mlp());
        m.compile(Compile::new(sgd(0.02, 0.9), MeanSquaredError::new()).metric(Mse::new()))
            .unwrap();
        m
    };
    let _guard = serial();
    manual_seed(7);
    let mut straight = compiled();
    let want = straight.fit(&x, &y, opts(4), vec![]).unwrap();

    manual_seed(7);
    let mut first = compiled();
    // Suspend after the third of six batches of the second epoch.
    let suspend = LambdaCallback::new().on_batch_end(|m, b, _| {
        if m.epoch() == 1 && b == 2 {
            m.suspend_training = true;
        }
        Ok(())
    });
    let h = first.fit(&x, &y, opts(4), vec![Box::new(suspend)]).unwrap();
    assert_eq!(h.epochs, vec![0]);
    let p = first.epoch_progress().cloned().unwrap();
    assert_eq!((p.epoch, p.steps, first.epoch()), (1, 3, 1));
    assert_eq!(p.metrics.len(), 1);
    let ckpt = tmp("suspended.fvm");
    first.save(&ckpt).unwrap();
    drop(first);
    manual_seed(999); // overwritten by the checkpoint's random state
    let mut resumed = Model::load(&ckpt).unwrap();
    assert_eq!(resumed.epoch_progress(), Some(&p));
    // Continuing from another epoch than the suspended one is refused.
    let e = resumed
        .fit(
            &x,
            &y,
            FitOptions {
                initial_epoch: Some(2),
                ..opts(4)
            },
            vec![],
        )
        .unwrap_err();
    assert!(e.to_string().contains("progress of epoch 2"), "{e}");
    let h = resumed.fit(&x, &y, opts(4), vec![]).unwrap();
    assert_eq!(h.epochs, vec![1, 2, 3]);
    assert!(resumed.epoch_progress().is_none());
    for (got, want) in h.logs.iter().zip(&want.logs[1..]) {
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            want.iter().collect::<Vec<_>>()
        );
    }
    let a = straight.network().get_weights().unwrap();
    let b = resumed.network().get_weights().unwrap();
    for (wa, wb) in a.iter().zip(&b) {
        assert_eq!(wa.to_vec::<f32>().unwrap(), wb.to_vec::<f32>().unwrap());
    }
}

/// A metric that cannot save its state makes suspending an error, never a silently reset metric.
#[test]
fn suspending_with_a_stateless_custom_metric_is_an_error() {
    use ferrovision_train::callbacks::LambdaCallback;
    struct Count(f64);
    impl ferrovision_nn::Metric for Count {
        fn name(&self) -> String {
            "count".into()
        }
        fn update(&mut self, t: &Tensor, _p: &Tensor, _w: Option<&Tensor>) -> Result<()> {
            self.0 += t.shape()[0] as f64;
            Ok(())
        }
        fn result(&self) -> f64 {
            self.0
        }
        fn reset(&mut self) {
            self.0 = 0.0;
        }
        fn fresh(&self) -> Box<dyn ferrovision_nn::Metric> {
            Box::new(Count(0.0))
        }
    }
    let (x, y) = regression(32, 3);
    let _guard = serial();
    let mut m = Model::new(mlp());
    m.compile(Compile::new(sgd(0.02, 0.0), MeanSquaredError::new()).metric(Count(0.0)))
        .unwrap();
    let suspend = LambdaCallback::new().on_batch_end(|m, _, _| {
        m.suspend_training = true;
        Ok(())
    });
    let e = m
        .fit(&x, &y, quiet(2), vec![Box::new(suspend)])
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("metric 'count' cannot save its running state"),
        "{e}"
    );
}

/// The same with a fine-tuning setup: a cosine schedule, coupled weight decay, a frozen batch
/// norm and a learning-rate multiplier. The checkpoint is loaded with `Model::load` (as the
/// CLI resumes), so the frozen flags and multipliers must come from the file.
#[test]
fn resume_is_bit_exact_when_fine_tuning() {
    use ferrovision_nn::layers::BatchNormalization;
    use ferrovision_nn::optim::LearningRateSchedule;
    use ferrovision_nn::LayerSelector;
    let (x, y) = regression(96, 8);
    let opts = |epochs| FitOptions {
        seed: 12,
        ..quiet(epochs)
    };
    let setup = || {
        let net = Sequential::new(&[3])
            .add(Dense::new(8).activation(Activation::Tanh).named("body"))
            .add(BatchNormalization::new().named("bn"))
            .add(Dense::new(1).named("head"))
            .build()
            .unwrap();
        let mut m = Model::new(net);
        let opt = Sgd::new()
            .lr(LearningRateSchedule::cosine_decay(0.05, 36.0, 0.0))
            .momentum(0.9)
            .coupled_weight_decay(1e-3);
        m.compile(Compile::new(opt, MeanSquaredError::new()))
            .unwrap();
        m.network_mut()
            .set_trainable_by_class("BatchNormalization", false)
            .unwrap();
        m.network()
            .set_lr_multiplier(&LayerSelector::Name("body".into()), 0.1)
            .unwrap();
        m
    };
    let _guard = serial();
    manual_seed(17);
    let mut straight = setup();
    straight.fit(&x, &y, opts(6), vec![]).unwrap();

    manual_seed(17);
    let mut first = setup();
    first.fit(&x, &y, opts(3), vec![]).unwrap();
    let ckpt = tmp("resume_finetune.fvm");
    first.save(&ckpt).unwrap();
    drop(first);
    manual_seed(999);
    let mut resumed = Model::load(&ckpt).unwrap();
    let named = resumed.network().named_weights();
    for (n, p) in &named {
        assert_eq!(p.trainable(), !n.starts_with("bn/"), "{n}");
        let want = if n.starts_with("body/") { 0.1 } else { 1.0 };
        assert_eq!(p.lr_multiplier(), want, "{n}");
    }
    resumed.fit(&x, &y, opts(6), vec![]).unwrap();
    let a = straight.network().get_weights().unwrap();
    let b = resumed.network().get_weights().unwrap();
    for (wa, wb) in a.iter().zip(&b) {
        assert_eq!(wa.to_vec::<f32>().unwrap(), wb.to_vec::<f32>().unwrap());
    }
    // The frozen batch norm never moved: its statistics are still the initial 0 and 1.
    let stats: Vec<f32> = named
        .iter()
        .filter(|(n, _)| n.starts_with("bn/moving"))
        .flat_map(|(_, p)| p.to_vec().unwrap())
        .collect();
    assert_eq!(stats, [vec![0.0; 8], vec![1.0; 8]].concat());
}

/// A model written as a plain struct implementing `Network`.
struct Residual {
    inner: Dense,
    head: Dense,
}

impl Network for Residual {
    fn class_name(&self) -> &'static str {
        "Residual"
    }
    fn forward(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Vec<Tensor>> {
        let h = self.inner.call(inputs, ctx)?;
        let h = h.add(&inputs[0])?.tanh()?;
        Ok(vec![self.head.call(&[h], ctx)?])
    }
    fn input_shapes(&self) -> Vec<Shape> {
        vec![vec![None, Some(3)]]
    }
    fn output_shapes(&self) -> Vec<Shape> {
        vec![vec![None, Some(1)]]
    }
    fn layers(&self) -> Vec<&dyn Layer> {
        vec![&self.inner, &self.head]
    }
    fn layers_mut(&mut self) -> Vec<&mut dyn Layer> {
        vec![&mut self.inner, &mut self.head]
    }
}

#[test]
fn custom_model_trains_and_checkpoints() {
    let _guard = serial();
    manual_seed(8);
    let build = || -> Residual {
        let mut inner = Dense::new(3).named("inner");
        inner.build(&[vec![None, Some(3)]]).unwrap();
        let mut head = Dense::new(1).named("head");
        head.build(&[vec![None, Some(3)]]).unwrap();
        Residual { inner, head }
    };
    let (x, y) = regression(64, 2);
    let mut model = Model::new(build());
    model
        .compile(Compile::new(sgd(0.05, 0.0), MeanSquaredError::new()))
        .unwrap();
    let h = model.fit(&x, &y, quiet(20), vec![]).unwrap();
    assert!(
        h.get("loss")[19] < h.get("loss")[0] * 0.2,
        "{:?}",
        h.get("loss")
    );
    let p = tmp("custom.fvm");
    model.save(&p).unwrap();
    let err = Model::load(&p).err().unwrap().to_string();
    assert!(err.contains("no architecture"), "{err}");
    let mut again = Model::new(build());
    again
        .compile(Compile::new(sgd(0.05, 0.0), MeanSquaredError::new()))
        .unwrap();
    again.load_checkpoint(&p).unwrap();
    assert_eq!(
        model.predict(&x, 64).unwrap().to_vec::<f32>().unwrap(),
        again.predict(&x, 64).unwrap().to_vec::<f32>().unwrap()
    );
    assert!(model.summary().contains("inner (Dense)"));
}

/// The custom training loop of the docs: gradients from the tape, applied by an optimizer.
#[test]
fn custom_training_loop_with_tape_and_optimizer() {
    use ferrovision_nn::Optimizer;
    let _guard = serial();
    manual_seed(10);
    let (x, y) = regression(128, 5);
    let net = mlp();
    let mut opt = sgd(0.1, 0.0);
    let params = net.trainable_weights();
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..100 {
        let mut ctx = CallCtx::new(true);
        let pred = net
            .forward(std::slice::from_ref(&x), &mut ctx)
            .unwrap()
            .remove(0);
        let loss = pred.sub(&y).unwrap().square().unwrap().mean_all().unwrap();
        let values: Vec<Tensor> = params.iter().map(|(_, p)| p.value()).collect();
        let refs: Vec<&Tensor> = values.iter().collect();
        let grads = ferrovision_nn::tensor::autograd::grad(&loss, &refs).unwrap();
        for ((_, p), g) in params.iter().zip(grads) {
            p.value().set_grad(g).unwrap();
        }
        opt.step(&params).unwrap();
        last = loss.item().unwrap();
        first.get_or_insert(last);
    }
    assert!(last < first.unwrap() * 0.05, "{first:?} -> {last}");
}

/// `fit_source` trains from a `ferrovision-data` pipeline (zip, shuffle, batch, prefetch).
#[test]
fn fit_from_a_data_pipeline() {
    use ferrovision_data::Dataset;
    let _guard = serial();
    manual_seed(12);
    let (x, y) = regression(128, 8);
    let xs = Dataset::<Tensor>::from_tensor_slices(&x).unwrap();
    let ys = Dataset::<Tensor>::from_tensor_slices(&y).unwrap();
    let mut train = xs
        .zip(&ys)
        .shuffle(128, 3, true)
        .batch(16, false)
        .prefetch(2);
    let mut model = Model::new(mlp());
    model
        .compile(Compile::new(sgd(0.05, 0.9), MeanSquaredError::new()))
        .unwrap();
    let h = model
        .fit_source(&mut train, None, &quiet(20), vec![])
        .unwrap();
    let loss = h.get("loss");
    assert_eq!(loss.len(), 20);
    assert!(loss[19] < loss[0] * 0.05, "{loss:?}");
}

/// A failing pipeline stops `fit` with `Error::Data`, whose source is the pipeline's own typed
/// error (naming the failing element).
#[test]
fn a_failing_pipeline_is_a_typed_data_error() {
    use ferrovision_data::Dataset;
    let _guard = serial();
    manual_seed(12);
    let (x, y) = regression(32, 8);
    let xs = Dataset::<Tensor>::from_tensor_slices(&x).unwrap();
    let ys = Dataset::<Tensor>::from_tensor_slices(&y).unwrap();
    let mut train = xs
        .zip(&ys)
        .map(|(x, y): (Tensor, Tensor)| {
            if x.to_vec::<f32>()?[0] > 1.0 {
                return Err(ferrovision_data::Error::User("bad sample".into()));
            }
            Ok((x, y))
        })
        .batch(8, false);
    let mut model = Model::new(mlp());
    model
        .compile(Compile::new(sgd(0.05, 0.9), MeanSquaredError::new()))
        .unwrap();
    let err = model
        .fit_source(&mut train, None, &quiet(1), vec![])
        .err()
        .unwrap();
    match &err {
        Error::Data(source) => {
            let data = source
                .downcast_ref::<ferrovision_data::Error>()
                .expect("the pipeline's error type");
            assert!(matches!(data, ferrovision_data::Error::User(m) if m == "bad sample"));
        }
        other => panic!("expected Error::Data, got {other:?}"),
    }
    assert_eq!(err.to_string(), "bad sample");
}

/// Sample weights and class weights reach the loss: identical inputs with conflicting targets
/// converge to the weighted optimum.
#[test]
fn sample_and_class_weights_steer_the_fit() {
    use ferrovision_nn::losses::SparseCategoricalCrossentropy;
    use ferrovision_nn::optim::Adam;
    let _guard = serial();
    manual_seed(13);
    let x = Tensor::ones(&[64, 3]);
    // Half the samples say +1, half say -1; only the first half has weight.
    let mut yv = vec![1.0f32; 32];
    yv.extend(vec![-1.0f32; 32]);
    let y = Tensor::from_vec(yv, &[64, 1]).unwrap();
    let mut w = vec![1.0f32; 32];
    w.extend(vec![0.0f32; 32]);
    let w = Tensor::from_vec(w, &[64]).unwrap();
    let net = Sequential::new(&[3]).add(Dense::new(1)).build().unwrap();
    let mut model = Model::new(net);
    model
        .compile(Compile::new(Adam::new().lr(0.05), MeanSquaredError::new()))
        .unwrap();
    let opts = FitOptions {
        sample_weight: Some(w),
        ..quiet(60)
    };
    model.fit(&x, &y, opts, vec![]).unwrap();
    let p = model
        .predict(&Tensor::ones(&[1, 3]), 1)
        .unwrap()
        .item()
        .unwrap();
    assert!(
        (p - 1.0).abs() < 0.05,
        "weighted fit predicts {p}, expected 1"
    );

    // Class weights 3:1 on a 50/50 split: the weighted maximum-likelihood answer is p(0) = 0.75.
    let labels: Vec<i64> = (0..64).map(|i| (i % 2) as i64).collect();
    let y = Tensor::from_vec(labels, &[64]).unwrap();
    let net = Sequential::new(&[3]).add(Dense::new(2)).build().unwrap();
    let mut model = Model::new(net);
    model
        .compile(Compile::new(
            Adam::new().lr(0.05),
            SparseCategoricalCrossentropy::new().from_logits(true),
        ))
        .unwrap();
    let opts = FitOptions {
        class_weight: Some(vec![3.0, 1.0]),
        ..quiet(80)
    };
    model.fit(&x, &y, opts, vec![]).unwrap();
    let logits = model.predict(&Tensor::ones(&[1, 3]), 1).unwrap();
    let p0 = logits.softmax(1).unwrap().to_vec::<f32>().unwrap()[0];
    assert!((p0 - 0.75).abs() < 0.02, "p(class 0) = {p0}, expected 0.75");
    // A class index outside class_weight is a clear error.
    let opts = FitOptions {
        class_weight: Some(vec![1.0]),
        ..quiet(1)
    };
    let err = model.fit(&x, &y, opts, vec![]).unwrap_err().to_string();
    assert!(err.contains("class_weight has 1 entries"), "{err}");
}

/// `Model::load` rebuilds architecture and compile state (Adam, sparse CE, accuracy) and, with
/// dropout drawing from the process-wide generator, continues bit-exactly.
#[test]
fn model_load_restores_compile_state_and_dropout_stream() {
    use ferrovision_nn::layers::Dropout;
    use ferrovision_nn::losses::SparseCategoricalCrossentropy;
    use ferrovision_nn::metrics::Accuracy;
    use ferrovision_nn::optim::Adam;
    let _guard = serial();
    let mut rng = Rng::new(21);
    let x = Tensor::randn(&[96, 4], 0.0, 1.0, &mut rng).unwrap();
    let labels: Vec<i64> = x
        .to_vec::<f32>()
        .unwrap()
        .chunks(4)
        .map(|r| (r[0] + r[1] > 0.0) as i64)
        .collect();
    let y = Tensor::from_vec(labels, &[96]).unwrap();
    let build = || {
        let net = Sequential::new(&[4])
            .add(Dense::new(16).activation(Activation::Relu))
            .add(Dropout::new(0.3))
            .add(Dense::new(2))
            .build()
            .unwrap();
        let mut m = Model::new(net);
        m.compile(
            Compile::new(
                Adam::new().lr(0.01),
                SparseCategoricalCrossentropy::new().from_logits(true),
            )
            .metric(Accuracy::sparse()),
        )
        .unwrap();
        m
    };
    let opts = |epochs| FitOptions {
        seed: 5,
        ..quiet(epochs)
    };
    manual_seed(21);
    let mut straight = build();
    let h_straight = straight.fit(&x, &y, opts(6), vec![]).unwrap();

    manual_seed(21);
    let mut first = build();
    first.fit(&x, &y, opts(3), vec![]).unwrap();
    let path = tmp("adam_dropout.fvm");
    first.save(&path).unwrap();
    drop(first);
    manual_seed(12345);
    let mut loaded = Model::load(&path).unwrap();
    assert_eq!(loaded.epoch(), 3);
    assert_eq!(
        loaded.metric_names(),
        vec!["loss", "sparse_categorical_accuracy"]
    );
    let h = loaded.fit(&x, &y, opts(6), vec![]).unwrap();
    assert_eq!(h.get("loss"), h_straight.get("loss")[3..].to_vec());
    for (a, b) in straight
        .network()
        .get_weights()
        .unwrap()
        .iter()
        .zip(loaded.network().get_weights().unwrap())
    {
        assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    }
}

/// Freezing after training started takes effect at the next step, whether through
/// `network_mut` (a layer) or through a `Param` handle alone (one weight), and unfreezing too.
#[test]
fn freezing_between_steps_takes_effect() {
    let _guard = serial();
    manual_seed(14);
    let (x, y) = regression(32, 9);
    let batch = ferrovision_train::Batch {
        inputs: vec![x],
        targets: vec![y],
        sample_weight: None,
    };
    let mut model = Model::new(mlp());
    model
        .compile(Compile::new(sgd(0.05, 0.0), MeanSquaredError::new()))
        .unwrap();
    let values = |m: &Model| -> Vec<Vec<f32>> {
        m.network()
            .named_weights()
            .iter()
            .map(|(_, p)| p.to_vec().unwrap())
            .collect()
    };
    model.train_on_batch(&batch).unwrap();
    // Layer `dense` frozen through the model and the head's kernel through its handle only (no
    // `&mut Model`): neither changes.
    model
        .network_mut()
        .set_layer_trainable("dense", false)
        .unwrap();
    let head_kernel = model.network().named_weights()[2].1.clone();
    head_kernel.set_trainable(false);
    let before = values(&model);
    model.train_on_batch(&batch).unwrap();
    let after = values(&model);
    assert_eq!(before[..3], after[..3]);
    assert_ne!(before[3], after[3]);
    // Both unfrozen the same two ways: both train at the next step.
    head_kernel.set_trainable(true);
    let before = values(&model);
    model.train_on_batch(&batch).unwrap();
    let after = values(&model);
    assert_eq!(before[..2], after[..2]);
    assert_ne!(before[2], after[2]);
    model
        .network_mut()
        .set_layer_trainable("dense", true)
        .unwrap();
    model.train_on_batch(&batch).unwrap();
    assert_ne!(after[0], values(&model)[0]);
}
