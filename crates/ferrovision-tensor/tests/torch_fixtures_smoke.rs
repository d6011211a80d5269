//! Checks of the PyTorch reference fixtures themselves (`reference/fixtures/*.json`) that need
//! only the core ops: every file parses and is consistent, and the fixture harness reproduces
//! softmax / log-softmax / BCE-with-logits cases when those ops are composed from core
//! elementwise ops and reductions (which validates loader, comparison and gradient plumbing).
//! The per-op comparisons are in `torch_fixtures.rs`.

#[macro_use]
mod torch_fixture_support;

use ferrovision_tensor::Tensor;
use std::collections::HashSet;
use torch_fixture_support::{eng, load, run_fixture, Case, Fixture, Leaves};

/// Every fixture file and the ops its cases may name.
fn all_fixtures() -> Vec<(Fixture, &'static [&'static str])> {
    vec![
        (
            load(fixture_path!("conv.json")),
            &["conv1d", "conv2d", "conv3d"][..],
        ),
        (
            load(fixture_path!("conv_transpose.json")),
            &["conv_transpose1d", "conv_transpose2d"][..],
        ),
        (
            load(fixture_path!("pool.json")),
            &[
                "max_pool1d",
                "max_pool2d",
                "max_pool3d",
                "avg_pool1d",
                "avg_pool2d",
                "avg_pool3d",
                "adaptive_avg_pool2d",
                "adaptive_max_pool2d",
            ][..],
        ),
        (
            load(fixture_path!("unpool.json")),
            &["max_pool2d_with_indices", "max_unpool2d"][..],
        ),
        (
            load(fixture_path!("upsample.json")),
            &["upsample_nearest2d", "upsample_bilinear2d"][..],
        ),
        (
            load(fixture_path!("norm.json")),
            &["batch_norm", "layer_norm", "group_norm", "instance_norm"][..],
        ),
        (
            load(fixture_path!("softmax_ce.json")),
            &[
                "softmax",
                "log_softmax",
                "cross_entropy",
                "binary_cross_entropy_with_logits",
            ][..],
        ),
    ]
}

#[test]
fn fixture_loader_smoke() {
    for (fx, ops) in all_fixtures() {
        let f = &fx.file;
        assert!(
            fx.torch_version.starts_with("2.15.0"),
            "{f}: generated with torch {}",
            fx.torch_version
        );
        assert!(!fx.cases.is_empty(), "{f}: no cases");
        let mut names = HashSet::new();
        for c in &fx.cases {
            let n = &c.name;
            assert!(names.insert(n.clone()), "{f}: duplicate case {n}");
            assert!(
                ops.contains(&c.op.as_str()),
                "{f}: {n}: unexpected op {}",
                c.op
            );
            assert!(c.params.is_object(), "{f}: {n}: params is not an object");
            assert!(!c.inputs.is_empty(), "{f}: {n}: no inputs");
            assert!(!c.grads.is_empty(), "{f}: {n}: no gradients");
            assert!(c.output.is_f32(), "{f}: {n}: output is not f32");
            assert_eq!(
                c.cotangent.shape, c.output.shape,
                "{f}: {n}: cotangent shape differs from the output's"
            );
            assert!(c.cotangent.is_f32(), "{f}: {n}: cotangent is not f32");
            for (g, a) in &c.grads {
                let input = c
                    .inputs
                    .get(g)
                    .unwrap_or_else(|| panic!("{f}: {n}: gradient for unknown input {g}"));
                assert!(input.is_f32() && a.is_f32(), "{f}: {n}: {g} is not f32");
                assert_eq!(a.shape, input.shape, "{f}: {n}: grad {g} shape");
            }
            for k in c.extra.keys() {
                if c.extra[k].get("data").is_some() {
                    c.extra_array(k).unwrap_or_else(|e| panic!("{f}: {n}: {e}"));
                }
            }
            // Every array becomes a tensor of the right size.
            let leaves = c.leaves().unwrap_or_else(|e| panic!("{f}: {n}: {e}"));
            for (k, t) in &leaves.0 {
                assert_eq!(t.shape(), c.inputs[k].shape.as_slice(), "{f}: {n}: {k}");
                assert_eq!(t.requires_grad(), c.grads.contains_key(k), "{f}: {n}: {k}");
            }
            let out = c.output.tensor().unwrap();
            assert_eq!(out.numel(), c.output.len(), "{f}: {n}: output");
        }
    }
}

/// The cases of `fx` whose op is in `ops`.
fn only(fx: &Fixture, ops: &[&str]) -> Fixture {
    let mut sub = fx.clone();
    sub.cases.retain(|c| ops.contains(&c.op.as_str()));
    assert!(!sub.cases.is_empty(), "no {ops:?} cases in {}", fx.file);
    sub
}

/// softmax / log_softmax from exp, sum and broadcasting arithmetic (with the max subtracted for
/// range, as a constant).
fn softmax_by_core_ops(c: &Case, l: &Leaves) -> Result<Tensor, String> {
    let x = l.get("x")?;
    let axis = c.p_isize("axis")?;
    let m = eng(x.detach().sum(&[axis], true))?; // any per-row constant; keeps exp in range
    let n = x.dim(axis).map_err(|e| e.to_string())? as f32;
    let shifted = eng(x.sub(&eng(m.mul_scalar(1.0 / n))?))?;
    let e = eng(shifted.exp())?;
    let s = eng(e.sum(&[axis], true))?;
    match c.op.as_str() {
        "softmax" => eng(e.div(&s)),
        "log_softmax" => eng(shifted.sub(&eng(s.log())?)),
        op => Err(format!("unexpected op {op}")),
    }
}

#[test]
fn core_ops_reproduce_softmax_fixtures() {
    let fx = load(fixture_path!("softmax_ce.json"));
    run_fixture(&only(&fx, &["softmax", "log_softmax"]), softmax_by_core_ops);
}

/// `binary_cross_entropy_with_logits` from elementwise ops:
/// `w * ((1 - y) * x + (1 + (pw - 1) * y) * log(1 + exp(-x)))`, then the reduction.
fn bce_by_core_ops(c: &Case, l: &Leaves) -> Result<Tensor, String> {
    let x = l.get("logits")?;
    let y = l.get("targets")?;
    let softplus_neg = eng(eng(eng(x.neg())?.exp())?.add_scalar(1.0))?;
    let softplus_neg = eng(softplus_neg.log())?;
    let one_minus_y = eng(eng(y.neg())?.add_scalar(1.0))?;
    let lw = match l.opt("pos_weight") {
        Some(pw) => eng(eng(eng(pw.add_scalar(-1.0))?.mul(y))?.add_scalar(1.0))?,
        None => Tensor::ones(&[]),
    };
    let mut loss = eng(eng(one_minus_y.mul(x))?.add(&eng(lw.mul(&softplus_neg))?))?;
    if let Some(w) = l.opt("weight") {
        loss = eng(loss.mul(w))?;
    }
    match c.p_str("reduction")? {
        "none" => Ok(loss),
        "mean" => eng(loss.mean_all()),
        "sum" => eng(loss.sum_all()),
        r => Err(format!("unknown reduction {r}")),
    }
}

#[test]
fn core_ops_reproduce_bce_fixtures() {
    let fx = load(fixture_path!("softmax_ce.json"));
    run_fixture(
        &only(&fx, &["binary_cross_entropy_with_logits"]),
        bce_by_core_ops,
    );
}

/// `cross_entropy` (class weights, ignore_index, label smoothing, spatial targets) from
/// log-softmax by core ops and per-position weight masks built here: with `w_c` the class
/// weights, `A[n,c,s] = w_c·[c = y]` and `B[n,c,s] = w_c` at non-ignored positions (0 elsewhere),
/// `loss = (1 − ε)·(−Σ_c A·logp) + ε/C·(−Σ_c B·logp)`, and `mean` divides the sum by `Σ A`.
fn cross_entropy_by_core_ops(c: &Case, l: &Leaves) -> Result<Tensor, String> {
    let logits = l.get("logits")?;
    let shape = logits.shape().to_vec();
    let (n, classes) = (shape[0], shape[1]);
    let inner: usize = shape[2..].iter().product();
    let targets = c.inputs["targets"]
        .tensor()?
        .to_vec::<i64>()
        .map_err(|e| e.to_string())?;
    let weights = match &c.inputs.get("class_weights") {
        Some(a) => a.f32s()?.to_vec(),
        None => vec![1.0; classes],
    };
    let ignore = c.p_opt_i64("ignore_index")?;
    let eps = c.p_f32("label_smoothing")?;
    let mut a = vec![0.0f32; logits.numel()];
    let mut b = vec![0.0f32; logits.numel()];
    for ni in 0..n {
        for s in 0..inner {
            let y = targets[ni * inner + s];
            if Some(y) == ignore {
                continue;
            }
            for (ci, &w) in weights.iter().enumerate() {
                let i = (ni * classes + ci) * inner + s;
                b[i] = w;
                if y == ci as i64 {
                    a[i] = w;
                }
            }
        }
    }
    let total_weight: f32 = a.iter().sum();
    let a = eng(Tensor::from_vec(a, &shape))?;
    let b = eng(Tensor::from_vec(b, &shape))?;
    let mut sub = c.clone();
    sub.params = serde_json::json!({ "axis": 1 });
    sub.op = "log_softmax".into();
    let mut x_leaves = Leaves(Default::default());
    x_leaves.0.insert("x".into(), logits.clone());
    let logp = softmax_by_core_ops(&sub, &x_leaves)?;
    let nll = eng(eng(a.mul(&logp))?.sum(&[1], false))?;
    let smooth = eng(eng(b.mul(&logp))?.sum(&[1], false))?;
    let loss =
        eng(eng(nll.mul_scalar(eps - 1.0))?.add(&eng(smooth.mul_scalar(-eps / classes as f32))?))?;
    match c.p_str("reduction")? {
        "none" => Ok(loss),
        "mean" => eng(eng(loss.sum_all())?.mul_scalar(1.0 / total_weight)),
        "sum" => eng(loss.sum_all()),
        r => Err(format!("unknown reduction {r}")),
    }
}

#[test]
fn core_ops_reproduce_cross_entropy_fixtures() {
    let fx = load(fixture_path!("softmax_ce.json"));
    run_fixture(&only(&fx, &["cross_entropy"]), cross_entropy_by_core_ops);
}

/// The harness must catch a wrong result (here softmax computed without normalisation).
#[test]
#[should_panic(expected = "disagree with PyTorch")]
fn harness_reports_mismatches() {
    let fx = load(fixture_path!("softmax_ce.json"));
    run_fixture(&only(&fx, &["softmax"]), |_c, l| eng(l.get("x")?.exp()));
}
