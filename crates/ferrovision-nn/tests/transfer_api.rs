//! Transfer-learning building blocks: layer selectors (freezing by name, prefix, class, all),
//! frozen batch norm in inference mode, per-weight learning-rate multipliers and coupled weight
//! decay against hand computations, warm start by layer name, and cutting a functional model
//! at a layer to graft a new head.

use ferrovision_nn::layers::{
    Add, BatchNormalization, Conv2D, Dense, Flatten, GlobalAveragePooling2D,
};
use ferrovision_nn::optim::{Adam, Optimizer, Sgd};
use ferrovision_nn::tensor::rng::{manual_seed, Rng};
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::weights::{load_weights_by_name, save_weights};
use ferrovision_nn::{
    Activation, CallCtx, Functional, Graph, LayerSelector, Network, NetworkExt, Param, Sequential,
};

/// conv -> bn -> global pool -> dense "features" -> dense "logits", as a functional model.
/// Every test holds this for its whole run: the initializers draw from the process-wide
/// generator, so a test building layers while another seeds and builds would change the
/// other's weights.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn small_net(seed: u64, two_outputs: bool) -> Functional {
    manual_seed(seed);
    let mut g = Graph::new();
    let x = g.input("image", &[Some(3), Some(6), Some(6)]);
    let c = g.apply(Conv2D::new(4, 3).named("conv"), &[x]).unwrap();
    let b = g
        .apply(BatchNormalization::new().named("bn"), &[c])
        .unwrap();
    let p = g
        .apply(GlobalAveragePooling2D::new().named("pool"), &[b])
        .unwrap();
    let f = g
        .apply(
            Dense::new(5).activation(Activation::Relu).named("features"),
            &[p],
        )
        .unwrap();
    let y = g.apply(Dense::new(3).named("logits"), &[f]).unwrap();
    let outs = if two_outputs { vec![f, y] } else { vec![y] };
    g.build("small", &[x], &outs).unwrap()
}

fn image(seed: u64) -> Tensor {
    Tensor::randn(&[2, 3, 6, 6], 0.5, 1.5, &mut Rng::new(seed)).unwrap()
}

#[test]
fn selectors_parse_and_print() {
    let _serial = serial();
    let cases = [
        ("all", LayerSelector::All),
        ("name:a/b", LayerSelector::Name("a/b".into())),
        ("prefix:layer1/", LayerSelector::Prefix("layer1".into())),
        ("layer1", LayerSelector::Prefix("layer1".into())),
        (
            "class:BatchNormalization",
            LayerSelector::Class("BatchNormalization".into()),
        ),
    ];
    for (text, want) in cases {
        let got: LayerSelector = text.parse().unwrap();
        assert_eq!(got, want, "{text}");
        assert_eq!(got.to_string().parse::<LayerSelector>().unwrap(), want);
    }
    for bad in ["", "name:", "class: ", "prefix:/"] {
        assert!(bad.parse::<LayerSelector>().is_err(), "{bad:?}");
    }
}

#[test]
fn freeze_by_class_name_and_all() {
    let _serial = serial();
    let mut net = small_net(1, false);
    assert_eq!(
        net.set_trainable_by_class("BatchNormalization", false)
            .unwrap(),
        1
    );
    let frozen: Vec<String> = net
        .named_weights()
        .into_iter()
        .filter(|(_, p)| !p.trainable())
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        frozen,
        [
            "bn/gamma",
            "bn/beta",
            "bn/moving_mean",
            "bn/moving_variance"
        ]
    );
    let err = net.set_trainable_by_class("Conv3D", false).unwrap_err();
    assert!(err.to_string().contains("class:Conv3D"), "{err}");
    // name: is an exact path; a prefix of a name is not a name.
    assert!(net
        .set_trainable_where(&"name:feat".parse().unwrap(), false)
        .is_err());
    net.set_trainable_where(&"name:features".parse().unwrap(), false)
        .unwrap();
    assert_eq!(
        net.trainable_weights()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        ["conv/kernel", "conv/bias", "logits/kernel", "logits/bias"]
    );
    assert_eq!(
        net.set_trainable_where(&LayerSelector::All, false).unwrap(),
        5
    );
    assert!(net.trainable_weights().is_empty());
    // Unfreezing all leaves the batch-norm statistics non-trainable.
    net.set_trainable_where(&LayerSelector::All, true).unwrap();
    assert_eq!(net.trainable_weights().len(), net.named_weights().len() - 2);
}

/// Keras 3: `trainable = False` on BatchNormalization makes it normalise with its moving
/// statistics even when the model is called in training mode, and leaves them unchanged.
#[test]
fn frozen_batch_norm_runs_in_inference_mode() {
    let _serial = serial();
    let mut net = small_net(2, false);
    // Move the statistics away from their initial 0 / 1 first.
    for s in 0..3 {
        net.forward(&[image(10 + s)], &mut CallCtx::new(true))
            .unwrap();
    }
    let x = image(20);
    let infer = net
        .forward(std::slice::from_ref(&x), &mut CallCtx::new(false))
        .unwrap();
    let trained = net
        .forward(std::slice::from_ref(&x), &mut CallCtx::new(true))
        .unwrap();
    assert_ne!(
        infer[0].to_vec::<f32>().unwrap(),
        trained[0].to_vec::<f32>().unwrap(),
        "a trainable batch norm uses batch statistics in training mode"
    );
    net.set_trainable_by_class("BatchNormalization", false)
        .unwrap();
    let stats = net.get_weights().unwrap();
    let frozen = net
        .forward(std::slice::from_ref(&x), &mut CallCtx::new(true))
        .unwrap();
    assert_eq!(
        frozen[0].to_vec::<f32>().unwrap(),
        net.forward(&[x], &mut CallCtx::new(false)).unwrap()[0]
            .to_vec::<f32>()
            .unwrap()
    );
    for (a, b) in stats.iter().zip(net.get_weights().unwrap()) {
        assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    }
}

fn param(name: &str, w: &[f32]) -> (String, Param) {
    let p = Param::new(
        name,
        Tensor::from_vec(w.to_vec(), &[w.len()]).unwrap(),
        true,
    );
    (format!("l/{name}"), p)
}

fn step(opt: &mut dyn Optimizer, ps: &[(String, Param)], grads: &[&[f32]]) {
    for ((_, p), g) in ps.iter().zip(grads) {
        p.value()
            .set_grad(Some(Tensor::from_vec(g.to_vec(), &[g.len()]).unwrap()))
            .unwrap();
    }
    opt.step(ps).unwrap();
    for (_, p) in ps {
        p.zero_grad();
    }
}

fn close(got: &[f32], want: &[f64], tol: f64) {
    for (g, w) in got.iter().zip(want) {
        assert!(
            ((*g as f64) - w).abs() <= tol * w.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
}

#[test]
fn sgd_momentum_honours_lr_multipliers_and_coupled_decay() {
    let _serial = serial();
    let ps = [param("kernel", &[1.0, -2.0]), param("bias", &[0.5, 0.25])];
    ps[0].1.set_lr_multiplier(0.1).unwrap();
    assert!(ps[1].1.set_lr_multiplier(-1.0).is_err());
    assert!(ps[1].1.set_lr_multiplier(f64::NAN).is_err());
    let (lr, mu, wd) = (0.5, 0.9, 0.01);
    let mut opt = Sgd::new().lr(lr).momentum(mu).coupled_weight_decay(wd);
    let grads: [[f32; 2]; 2] = [[0.2, -0.4], [1.0, 0.5]];
    // By hand (Keras SGD with PyTorch's coupled decay: g += wd * w, then
    // m = mu * m - lr_w * g, w += m), in f64.
    let mut w = [[1.0f64, -2.0], [0.5, 0.25]];
    let mut m = [[0.0f64; 2]; 2];
    for _ in 0..3 {
        step(&mut opt, &ps, &[&grads[0], &grads[1]]);
        for (k, mult) in [(0usize, 0.1f64), (1, 1.0)] {
            for i in 0..2 {
                let g = grads[k][i] as f64 + wd * w[k][i];
                m[k][i] = mu * m[k][i] - lr * mult * g;
                w[k][i] += m[k][i];
            }
        }
    }
    close(&ps[0].1.to_vec().unwrap(), &w[0], 1e-6);
    close(&ps[1].1.to_vec().unwrap(), &w[1], 1e-6);
}

#[test]
fn adam_honours_lr_multipliers() {
    let _serial = serial();
    let ps = [param("kernel", &[1.0, -2.0]), param("bias", &[0.5, 0.25])];
    ps[0].1.set_lr_multiplier(0.25).unwrap();
    let lr = 0.01;
    let mut opt = Adam::new().lr(lr);
    let grads: [[f32; 2]; 2] = [[0.2, -0.4], [1.0, 0.5]];
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-7f64);
    let mut w = [[1.0f64, -2.0], [0.5, 0.25]];
    let mut m = [[0.0f64; 2]; 2];
    let mut v = [[0.0f64; 2]; 2];
    for t in 1..=4 {
        step(&mut opt, &ps, &[&grads[0], &grads[1]]);
        for (k, mult) in [(0usize, 0.25f64), (1, 1.0)] {
            let alpha = lr * mult * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
            for i in 0..2 {
                let g = grads[k][i] as f64;
                m[k][i] += (g - m[k][i]) * (1.0 - b1);
                v[k][i] += (g * g - v[k][i]) * (1.0 - b2);
                w[k][i] -= m[k][i] * alpha / (v[k][i].sqrt() + eps);
            }
        }
    }
    close(&ps[0].1.to_vec().unwrap(), &w[0], 1e-6);
    close(&ps[1].1.to_vec().unwrap(), &w[1], 1e-6);
}

#[test]
fn coupled_weight_decay_round_trips_in_the_config() {
    let _serial = serial();
    let opt = Sgd::new().momentum(0.9).coupled_weight_decay(1e-4);
    let cfg = opt.config();
    assert_eq!(cfg["config"]["coupled_weight_decay"], 1e-4);
    let back = ferrovision_nn::optim::optimizer_from_config(&cfg).unwrap();
    assert_eq!(back.config(), cfg);
    // Not written when unset (Keras configs stay Keras').
    assert!(Sgd::new().config()["config"]
        .get("coupled_weight_decay")
        .is_none());
    let bad = serde_json::json!({"class_name": "SGD", "config": {"coupled_weight_decay": -1.0}});
    assert!(ferrovision_nn::optim::optimizer_from_config(&bad).is_err());
}

#[test]
fn lr_multiplier_by_selector() {
    let _serial = serial();
    let net = small_net(3, false);
    let n = net
        .set_lr_multiplier(&"class:Conv2D".parse().unwrap(), 0.1)
        .unwrap();
    assert_eq!(n, 2);
    for (name, p) in net.named_weights() {
        let want = if name.starts_with("conv/") { 0.1 } else { 1.0 };
        assert_eq!(p.lr_multiplier(), want, "{name}");
    }
    assert!(net
        .set_lr_multiplier(&"prefix:nothing".parse().unwrap(), 0.1)
        .is_err());
}

#[test]
fn warm_start_by_layer_name() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("fv-warm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A model with the same backbone and a 7-class head.
    manual_seed(4);
    let src = Sequential::new(&[2, 4])
        .add(Flatten::new().named("flat"))
        .add(Dense::new(6).named("body"))
        .add(Dense::new(7).named("head"))
        .add(Dense::new(2).named("extra"))
        .build()
        .unwrap();
    let file = dir.join("src.safetensors");
    save_weights(&src, &file).unwrap();
    manual_seed(5);
    let dst = Sequential::new(&[2, 4])
        .add(Flatten::new().named("flat"))
        .add(Dense::new(6).named("body"))
        .add(Dense::new(3).named("head"))
        .add(Dense::new(3).named("new"))
        .build()
        .unwrap();
    let head_before = dst.get_weights().unwrap()[2].to_vec::<f32>().unwrap();
    let report = load_weights_by_name(&dst, &file, false).unwrap();
    assert_eq!(report.loaded, ["body/kernel", "body/bias"]);
    assert_eq!(report.missing, ["new/kernel", "new/bias"]);
    assert_eq!(
        report.shape_mismatch,
        vec![
            ("head/kernel".to_string(), vec![6, 7], vec![6, 3]),
            ("head/bias".to_string(), vec![7], vec![3]),
        ]
    );
    assert_eq!(report.unused, ["extra/bias", "extra/kernel"]); // file order
    let s = report.summary();
    assert!(
        s.contains("loaded 2") && s.contains("head/kernel: file [6, 7], model [6, 3]"),
        "{s}"
    );
    let (a, b) = (src.get_weights().unwrap(), dst.get_weights().unwrap());
    assert_eq!(a[0].to_vec::<f32>().unwrap(), b[0].to_vec::<f32>().unwrap());
    assert_eq!(a[1].to_vec::<f32>().unwrap(), b[1].to_vec::<f32>().unwrap());
    assert_eq!(b[2].to_vec::<f32>().unwrap(), head_before);
    // strict is today's all-or-error load.
    assert!(load_weights_by_name(&dst, &file, true).is_err());
    // Nothing in common: an error that says so.
    manual_seed(6);
    let other = Sequential::new(&[3])
        .add(Dense::new(2).named("z"))
        .build()
        .unwrap();
    let err = load_weights_by_name(&other, &file, false).unwrap_err();
    assert!(err.to_string().contains("no tensor matches"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cut_and_graft_share_the_backbone() {
    let _serial = serial();
    let reference = small_net(7, true);
    let net = small_net(7, false);
    for (a, b) in reference
        .get_weights()
        .unwrap()
        .iter()
        .zip(net.get_weights().unwrap())
    {
        assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    }
    let handles: Vec<Param> = net.named_weights().into_iter().map(|(_, p)| p).collect();
    let boxed: Box<dyn Network> = Box::new(net);
    let backbone = boxed
        .into_functional()
        .unwrap()
        .cut_at("features", "backbone")
        .unwrap();
    assert_eq!(backbone.output_shapes(), vec![vec![None, Some(5)]]);
    // Same weights, moved not copied; the head after the cut is gone.
    let kept = backbone.named_weights();
    assert_eq!(kept.len(), handles.len() - 2);
    for ((_, p), h) in kept.iter().zip(&handles) {
        assert!(p.same(h));
    }
    let mut g = Graph::new();
    let x = g.input("image", &[Some(3), Some(6), Some(6)]);
    let f = g.apply(backbone, &[x]).unwrap();
    let y = g.apply(Dense::new(2).named("new_head"), &[f]).unwrap();
    let grafted = g.build("grafted", &[x], &[f, y]).unwrap();
    let names: Vec<String> = grafted
        .named_weights()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names[0], "backbone/conv/kernel");
    assert_eq!(names.last().unwrap(), "new_head/bias");
    assert!(grafted.get_layer("backbone/bn").is_some());
    let x = image(8);
    let want = reference
        .forward(std::slice::from_ref(&x), &mut CallCtx::new(false))
        .unwrap();
    let got = grafted.forward(&[x], &mut CallCtx::new(false)).unwrap();
    assert_eq!(
        got[0].to_vec::<f32>().unwrap(),
        want[0].to_vec::<f32>().unwrap()
    );
    // Errors: unknown layer, a non-functional model.
    let err = small_net(7, false).cut_at("nope", "b").err().unwrap();
    assert!(err.to_string().contains("no layer 'nope'"), "{err}");
    let seq: Box<dyn Network> = Box::new(Sequential::new(&[2]).add(Dense::new(1)).build().unwrap());
    assert!(seq.into_functional().is_none());
}

#[test]
fn split_at_gives_a_backbone_and_a_head_that_compose_back() {
    let _serial = serial();
    let reference = small_net(11, false);
    let x = image(12);
    let want = reference
        .forward(std::slice::from_ref(&x), &mut CallCtx::new(false))
        .unwrap();
    let handles: Vec<(String, Param)> = reference.named_weights();
    let (backbone, head) = small_net(11, false)
        .split_at("pool", "backbone", "head")
        .unwrap();
    assert_eq!(backbone.output_shapes(), vec![vec![None, Some(4)]]);
    assert_eq!(head.output_shapes(), vec![vec![None, Some(3)]]);
    // Every weight lands on exactly one side, under its own name.
    let mut names: Vec<String> = backbone
        .named_weights()
        .into_iter()
        .chain(head.named_weights())
        .map(|(n, _)| n)
        .collect();
    names.sort();
    let mut all: Vec<String> = handles.into_iter().map(|(n, _)| n).collect();
    all.sort();
    assert_eq!(names, all);
    assert!(head.get_layer("features").is_some() && head.get_layer("conv").is_none());
    // Features once, then the head: the whole model's output, bit for bit.
    let features = backbone.forward(&[x], &mut CallCtx::new(false)).unwrap();
    let got = head.forward(&features, &mut CallCtx::new(false)).unwrap();
    assert_eq!(
        got[0].to_vec::<f32>().unwrap(),
        want[0].to_vec::<f32>().unwrap()
    );
}

#[test]
fn split_at_refuses_cuts_that_a_connection_crosses() {
    let _serial = serial();
    // A residual around the cut point: `sum` reads `a`, which is before the cut at `b`.
    let mut g = Graph::new();
    let x = g.input("x", &[Some(4)]);
    let a = g.apply(Dense::new(4).named("a"), &[x]).unwrap();
    let b = g.apply(Dense::new(4).named("b"), &[a]).unwrap();
    let s = g.apply(Add::new().named("sum"), &[a, b]).unwrap();
    let y = g.apply(Dense::new(2).named("y"), &[s]).unwrap();
    let net = g.build("res", &[x], &[y]).unwrap();
    let err = net.split_at("b", "bb", "hh").err().unwrap().to_string();
    assert!(err.contains("'sum'") && err.contains("reads 'a'"), "{err}");
    // Cutting at the output leaves no head; an output before the cut cannot be in the head.
    let err = small_net(1, false)
        .split_at("logits", "b", "h")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no head"), "{err}");
    let err = small_net(1, true)
        .split_at("logits", "b", "h")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("no head") || err.contains("before the cut"),
        "{err}"
    );
    let err = small_net(1, true)
        .split_at("pool", "b", "h")
        .map(|_| ())
        .err();
    assert!(
        err.is_none(),
        "features and logits both follow 'pool': {err:?}"
    );
}
