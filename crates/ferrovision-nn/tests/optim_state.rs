//! Optimizer state save/restore (bit-exact resume), skipping weights without gradients, and
//! the errors of bad state, configs and names.

use ferrovision_nn::optim::{
    optimizer_by_name, optimizer_from_config, Adam, LearningRateSchedule, Optimizer, Sgd,
    OPTIMIZER_NAMES,
};
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::Param;
use serde_json::json;

/// Deterministic pseudo-random values in [-1, 1) (splitmix64).
fn values(seed: u64, n: usize) -> Vec<f32> {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    // Start from a mixed seed so different seeds give unrelated streams.
    let mut s = mix(seed.wrapping_add(0x9E37_79B9_7F4A_7C15));
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            ((mix(s) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

const SHAPES: [(&str, &[usize]); 3] = [("l/kernel", &[4, 3]), ("l/bias", &[3]), ("m/gamma", &[7])];

fn make_params(data: &[Vec<f32>]) -> Vec<(String, Param)> {
    SHAPES
        .iter()
        .zip(data)
        .map(|((n, s), d)| {
            let t = Tensor::from_vec(d.clone(), s).unwrap();
            (
                n.to_string(),
                Param::new(n.rsplit('/').next().unwrap(), t, true),
            )
        })
        .collect()
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

/// Step `opt` with gradients seeded by `step` (the gamma gets none on odd steps).
fn step(opt: &mut dyn Optimizer, ps: &[(String, Param)], step: u64) {
    for (i, ((_, s), (_, p))) in SHAPES.iter().zip(ps).enumerate() {
        let g = (i != 2 || step.is_multiple_of(2))
            .then(|| Tensor::from_vec(values(100 * step + i as u64, numel(s)), s).unwrap());
        p.value().set_grad(g).unwrap();
    }
    opt.step(ps).unwrap();
    for (_, p) in ps {
        p.zero_grad();
    }
}

fn snapshot(ps: &[(String, Param)]) -> Vec<Vec<f32>> {
    ps.iter().map(|(_, p)| p.to_vec().unwrap()).collect()
}

fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
    v.iter()
        .map(|w| w.iter().map(|x| x.to_bits()).collect())
        .collect()
}

/// Step, save, load into a fresh optimizer (rebuilt from the config), continue: the weights and
/// the state are bit-identical to an uninterrupted run.
#[test]
fn save_restore_resumes_bit_exactly() {
    let mut opts: Vec<Box<dyn Optimizer>> = OPTIMIZER_NAMES
        .iter()
        .map(|n| optimizer_by_name(n, Some(0.05)).unwrap())
        .collect();
    opts.push(Box::new(
        Sgd::new()
            .lr(LearningRateSchedule::linear_burn_in(
                3,
                2.0,
                LearningRateSchedule::cosine_decay(0.1, 10.0, 0.0),
            ))
            .momentum(0.9)
            .clipnorm(0.5)
            .weight_decay(0.01),
    ));
    opts.push(Box::new(Adam::new().amsgrad(true).global_clipnorm(1.0)));
    let init: Vec<Vec<f32>> = SHAPES
        .iter()
        .enumerate()
        .map(|(i, (_, s))| values(7 + i as u64, numel(s)))
        .collect();
    for mut a in opts {
        let name = a.config()["class_name"].to_string();
        let pa = make_params(&init);
        for t in 0..4 {
            step(a.as_mut(), &pa, t);
        }
        let (saved_it, saved_state, saved_w) = (a.iterations(), a.state(), snapshot(&pa));
        assert_eq!(saved_it, 4);
        assert!(
            !saved_state.is_empty() || name == "\"SGD\"",
            "{name}: no state"
        );
        for t in 4..9 {
            step(a.as_mut(), &pa, t);
        }
        let mut b = optimizer_from_config(&a.config()).unwrap();
        b.load_state(saved_it, &saved_state).unwrap();
        assert_eq!(b.iterations(), 4);
        assert_eq!(b.learning_rate(), {
            let fresh = optimizer_from_config(&a.config()).unwrap();
            let mut f = fresh;
            f.load_state(4, &[]).unwrap();
            f.learning_rate()
        });
        let pb = make_params(&saved_w);
        for t in 4..9 {
            step(b.as_mut(), &pb, t);
        }
        assert_eq!(
            bits(&snapshot(&pa)),
            bits(&snapshot(&pb)),
            "{name}: weights"
        );
        let (sa, sb) = (a.state(), b.state());
        assert_eq!(sa.len(), sb.len(), "{name}");
        for ((na, ta), (nb, tb)) in sa.iter().zip(&sb) {
            assert_eq!(na, nb);
            assert_eq!(ta.shape(), tb.shape());
            let (va, vb) = (ta.to_vec::<f32>().unwrap(), tb.to_vec::<f32>().unwrap());
            assert!(
                va.iter().zip(&vb).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{name}: slot {na}"
            );
        }
        assert_eq!(a.iterations(), b.iterations());
    }
}

#[test]
fn state_names_and_slots() {
    let init: Vec<Vec<f32>> = SHAPES.iter().map(|(_, s)| vec![0.5; numel(s)]).collect();
    let ps = make_params(&init);
    let mut adam = Adam::new();
    step(&mut adam, &ps, 1); // odd step: gamma has no gradient
    let names: Vec<String> = adam.state().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "l/kernel/momentum",
            "l/kernel/velocity",
            "l/bias/momentum",
            "l/bias/velocity"
        ]
    );
    // The weight without a gradient was not touched.
    assert_eq!(ps[2].1.to_vec().unwrap(), vec![0.5; 7]);
    let ks = adam.state();
    assert_eq!(ks[0].1.shape(), &[4, 3]);
    // Adagrad's accumulator starts at 0.1: after one step it is 0.1 + g^2.
    let mut ada = optimizer_by_name("adagrad", None).unwrap();
    step(ada.as_mut(), &ps, 0);
    let g = values(0, 12);
    let acc = ada.state()[0].1.to_vec::<f32>().unwrap();
    for (a, g) in acc.iter().zip(&g) {
        assert!((a - (0.1 + g * g)).abs() < 1e-7);
    }
}

#[test]
fn weight_decay_skips_excluded_and_gradient_less_weights() {
    let init: Vec<Vec<f32>> = SHAPES.iter().map(|(_, s)| vec![2.0; numel(s)]).collect();
    let ps = make_params(&init);
    // Zero gradients on kernel and bias, none on gamma: only decay moves the kernel.
    for (i, ((_, s), (_, p))) in SHAPES.iter().zip(&ps).enumerate() {
        let g = (i < 2).then(|| Tensor::zeros(s));
        p.value().set_grad(g).unwrap();
    }
    let mut opt = Sgd::new()
        .lr(0.1)
        .weight_decay(0.5)
        .exclude_from_weight_decay(&["bias"]);
    opt.step(&ps).unwrap();
    assert!(ps[0]
        .1
        .to_vec()
        .unwrap()
        .iter()
        .all(|&w| (w - 1.9).abs() < 1e-6));
    assert_eq!(ps[1].1.to_vec().unwrap(), vec![2.0; 3]);
    assert_eq!(ps[2].1.to_vec().unwrap(), vec![2.0; 7]);
    assert_eq!(
        opt.config()["config"]["exclude_from_weight_decay"],
        json!(["bias"])
    );
    let again = optimizer_from_config(&opt.config()).unwrap();
    assert_eq!(again.config(), opt.config());
}

#[test]
fn no_gradients_is_an_error_and_no_weights_a_no_op() {
    let init: Vec<Vec<f32>> = SHAPES.iter().map(|(_, s)| vec![1.0; numel(s)]).collect();
    let ps = make_params(&init);
    let mut opt = Adam::new();
    let err = opt.step(&ps).unwrap_err().to_string();
    assert!(
        err.contains("no gradients") && err.contains("l/kernel"),
        "{err}"
    );
    assert_eq!(opt.iterations(), 0);
    opt.step(&[]).unwrap();
    assert_eq!(opt.iterations(), 0);
}

#[test]
fn nan_gradients_stay_visible_with_clipvalue() {
    let p = Param::new(
        "w",
        Tensor::from_vec(vec![1.0f32, 1.0], &[2]).unwrap(),
        true,
    );
    let ps = vec![("w".to_string(), p.clone())];
    p.value()
        .set_grad(Some(Tensor::from_vec(vec![f32::NAN, 5.0], &[2]).unwrap()))
        .unwrap();
    let mut opt = Sgd::new().lr(0.1).clipvalue(1.0);
    opt.step(&ps).unwrap();
    let w = p.to_vec().unwrap();
    assert!(w[0].is_nan());
    assert!((w[1] - 0.9).abs() < 1e-6);
}

fn adam_state_for(shape: &[usize]) -> Vec<(String, Tensor)> {
    vec![
        ("l/kernel/momentum".into(), Tensor::zeros(shape)),
        ("l/kernel/velocity".into(), Tensor::zeros(shape)),
    ]
}

#[test]
fn load_state_rejects_bad_state_clearly() {
    let cases: Vec<(Vec<(String, Tensor)>, &str)> = vec![
        (
            vec![("l/kernel/m".into(), Tensor::zeros(&[4, 3]))],
            "unknown slot 'm' (this optimizer's slots: momentum, velocity)",
        ),
        (
            vec![("kernel".into(), Tensor::zeros(&[4, 3]))],
            "expected a name '<weight name>/<slot>'",
        ),
        (
            vec![("l/kernel/momentum".into(), Tensor::zeros(&[4, 3]))],
            "weight 'l/kernel' lacks slot 'velocity'",
        ),
        (
            vec![
                ("l/kernel/momentum".into(), Tensor::zeros(&[4, 3])),
                ("l/kernel/velocity".into(), Tensor::zeros(&[3, 4])),
            ],
            "shape [3, 4] differs from the other slots of 'l/kernel' ([4, 3])",
        ),
        (
            vec![
                ("l/kernel/momentum".into(), Tensor::zeros(&[4, 3])),
                ("l/kernel/momentum".into(), Tensor::zeros(&[4, 3])),
            ],
            "given twice",
        ),
        (
            vec![(
                "l/kernel/momentum".into(),
                Tensor::from_vec(vec![0i64; 12], &[4, 3]).unwrap(),
            )],
            "expected f32 values",
        ),
    ];
    for (state, needle) in cases {
        let mut opt = Adam::new();
        let err = opt.load_state(3, &state).unwrap_err().to_string();
        assert!(err.contains(needle), "error '{err}' lacks '{needle}'");
        assert_eq!(opt.iterations(), 0, "a failed load changes nothing");
    }
    // Plain SGD has no slots at all.
    let err = Sgd::new()
        .load_state(1, &adam_state_for(&[4, 3]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown slot 'momentum'") && err.contains("none"),
        "{err}"
    );
}

#[test]
fn restored_state_is_checked_against_the_weights() {
    let init: Vec<Vec<f32>> = SHAPES.iter().map(|(_, s)| vec![1.0; numel(s)]).collect();
    let ps = make_params(&init);

    // Wrong shape for an existing weight: caught by the next step, which changes nothing.
    let mut opt = Adam::new();
    opt.load_state(2, &adam_state_for(&[3, 4])).unwrap();
    for ((_, s), (_, p)) in SHAPES.iter().zip(&ps) {
        p.value().set_grad(Some(Tensor::ones(s))).unwrap();
    }
    let err = opt.step(&ps).unwrap_err().to_string();
    assert!(
        err.contains("'l/kernel' has shape [3, 4], but the weight has shape [4, 3]"),
        "{err}"
    );
    assert_eq!(ps[0].1.to_vec().unwrap(), vec![1.0; 12]);
    assert_eq!(opt.iterations(), 2);

    // State for a weight the model does not have.
    let mut opt = Adam::new();
    let state = vec![
        ("other/kernel/momentum".into(), Tensor::zeros(&[2])),
        ("other/kernel/velocity".into(), Tensor::zeros(&[2])),
    ];
    opt.load_state(2, &state).unwrap();
    let err = opt.step(&ps).unwrap_err().to_string();
    assert!(
        err.contains("slots for weight 'other/kernel', which is not among the 3 weights"),
        "{err}"
    );

    // An optimizer that already knows the weights rejects a mismatching restore at once.
    let mut opt = Adam::new();
    opt.step(&ps).unwrap();
    let before = opt.state();
    let err = opt
        .load_state(5, &adam_state_for(&[12]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("have shape [12], but the weight has shape [4, 3]"),
        "{err}"
    );
    assert_eq!(opt.iterations(), 1);
    assert_eq!(opt.state().len(), before.len());
}

#[test]
fn by_name_and_config_errors_are_clear() {
    for n in OPTIMIZER_NAMES {
        let o = optimizer_by_name(n, Some(0.123)).unwrap();
        assert_eq!(o.learning_rate(), 0.123, "{n}");
        // Round trip through the name in a config too.
        let again = optimizer_from_config(&o.config()).unwrap();
        assert_eq!(again.config(), o.config());
    }
    let cls = |n: &str| optimizer_by_name(n, None).unwrap().config();
    assert_eq!(cls("momentum")["config"]["momentum"], json!(0.9));
    assert_eq!(cls("nesterov")["config"]["nesterov"], json!(true));
    assert_eq!(cls("amsgrad")["config"]["amsgrad"], json!(true));
    assert_eq!(cls("adamw")["config"]["weight_decay"], json!(0.004));
    assert_eq!(cls("adadelta")["config"]["learning_rate"], json!(0.001));
    assert_eq!(cls("ADAM")["class_name"], json!("Adam"));
    assert_eq!(
        optimizer_from_config(&json!("rmsprop")).unwrap().config()["class_name"],
        json!("RMSprop")
    );

    let err = optimizer_by_name("adamax", None).err().unwrap().to_string();
    assert!(
        err.contains("unknown optimizer 'adamax'")
            && err.contains(
                "sgd, momentum, nesterov, adagrad, adadelta, rmsprop, adam, amsgrad, nadam, adamw"
            ),
        "{err}"
    );
    let err = optimizer_by_name("sgd", Some(-1.0))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("learning rate must be a finite number > 0"),
        "{err}"
    );

    for (cfg, needle) in [
        (
            json!({"class_name": "Adamax", "config": {}}),
            "unknown optimizer class 'Adamax'",
        ),
        (json!({"config": {}}), "needs a string 'class_name'"),
        (
            json!({"class_name": "Adam", "config": {"beta1": 0.9}}),
            "unknown config key 'beta1'",
        ),
        (
            json!({"class_name": "Adam", "config": {"use_ema": true}}),
            "'use_ema' = true is not supported",
        ),
        (
            json!({"class_name": "SGD", "config": {"gradient_accumulation_steps": 4}}),
            "'gradient_accumulation_steps' = 4 is not supported",
        ),
        (
            json!({"class_name": "AdamW", "config": {"weight_decay": null}}),
            "AdamW: 'weight_decay' must be a number",
        ),
        (
            json!({"class_name": "SGD", "config": {"momentum": 1.5}}),
            "'momentum' must be in [0, 1]",
        ),
        (
            json!({"class_name": "Adam", "config": {"beta_1": 1.0}}),
            "'beta_1' and 'beta_2' must be in [0, 1)",
        ),
        (
            json!({"class_name": "SGD", "config": {"nesterov": "yes"}}),
            "'nesterov' must be true or false",
        ),
        (
            json!({"class_name": "SGD", "config": {"clipnorm": 1.0, "clipvalue": 0.5}}),
            "only one of clipnorm, clipvalue and global_clipnorm",
        ),
        (
            json!({"class_name": "SGD", "config": {"clipnorm": -1.0}}),
            "'clipnorm' must be a finite number > 0",
        ),
        (
            json!({"class_name": "Adam", "config": {"learning_rate": {"class_name": "Nope"}}}),
            "unknown learning-rate schedule 'Nope'",
        ),
        (json!(3), "optimizer config must be an object"),
        (
            json!({"class_name": "Adam", "config": {"beta_1": "x"}}),
            "optimizer 'Adam': 'beta_1' must be a number or null, got \"x\"",
        ),
        (
            json!({"class_name": "RMSprop", "config": {"centered": 1}}),
            "optimizer 'RMSprop': 'centered' must be true or false, got 1",
        ),
        (
            json!({"class_name": "SGD", "config": {"name": 3}}),
            "optimizer 'SGD': 'name' must be a string, got 3",
        ),
        (
            json!({"class_name": "SGD", "config": {"exclude_from_weight_decay": [1]}}),
            "'exclude_from_weight_decay' must be a list of strings, got [1]",
        ),
        (
            json!({"class_name": "SGD", "config": {"clipvalue": "big"}}),
            "optimizer 'SGD': 'clipvalue' must be a number or null, got \"big\"",
        ),
    ] {
        let err = optimizer_from_config(&cfg).err().unwrap().to_string();
        assert!(
            err.contains(needle),
            "{cfg}: error '{err}' lacks '{needle}'"
        );
    }

    // `null` keeps the default of keys that cannot be off; Keras options at "off" are accepted.
    let o = optimizer_from_config(&json!({"class_name": "Adam", "config": {
        "epsilon": null, "clipnorm": null, "use_ema": false, "ema_momentum": 0.99}}))
    .unwrap();
    assert_eq!(o.config(), Adam::new().config());

    // Conflicting clip options set through the builder fail at the first step.
    let p = Param::new("w", Tensor::ones(&[2]), true);
    p.value().set_grad(Some(Tensor::ones(&[2]))).unwrap();
    let err = Sgd::new()
        .clipnorm(1.0)
        .global_clipnorm(1.0)
        .step(&[("w".into(), p.clone())])
        .unwrap_err()
        .to_string();
    assert!(err.contains("only one of clipnorm"), "{err}");
    assert_eq!(p.to_vec().unwrap(), vec![1.0, 1.0]);
}
