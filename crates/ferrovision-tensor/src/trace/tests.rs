use super::*;
use crate::rng::Rng;
use crate::{ConvOpts, PoolOpts};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, &mut Rng::new(seed)).unwrap()
}

fn positive(shape: &[usize], seed: u64) -> Tensor {
    randn(shape, seed).abs().unwrap().add_scalar(0.5).unwrap()
}

/// A small CNN: conv -> batch norm -> ReLU -> 2x2 max pool -> conv + ReLU -> global average
/// -> dense -> softmax, with its weights.
struct Net {
    w1: Tensor,
    b1: Tensor,
    gamma: Tensor,
    beta: Tensor,
    mean: Tensor,
    var: Tensor,
    w2: Tensor,
    wd: Tensor,
    bd: Tensor,
}

impl Net {
    fn new() -> Net {
        Net {
            w1: randn(&[6, 3, 3, 3], 1).mul_scalar(0.3).unwrap(),
            b1: randn(&[6], 2),
            gamma: positive(&[6], 3),
            beta: randn(&[6], 4),
            mean: randn(&[6], 5),
            var: positive(&[6], 6),
            w2: randn(&[8, 6, 3, 3], 7).mul_scalar(0.2).unwrap(),
            wd: randn(&[8, 5], 8),
            bd: randn(&[5], 9),
        }
    }

    fn forward(&self, x: &[Tensor]) -> Result<Vec<Tensor>> {
        let h = x[0].conv2d(&self.w1, Some(&self.b1), &ConvOpts::new().pad(1))?;
        let h = h.batch_norm(
            &self.mean,
            &self.var,
            Some(&self.gamma),
            Some(&self.beta),
            false,
            0.1,
            1e-3,
        )?;
        let h = h.relu()?.max_pool2d(&PoolOpts::new(&[2]))?;
        let h = h.conv2d(&self.w2, None, &ConvOpts::new())?.relu()?;
        let h = h.mean(&[2, 3], false)?;
        let logits = h.linear(&self.wd, Some(&self.bd))?;
        Ok(vec![logits.softmax(-1)?, logits])
    }
}

fn worst_diff(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn a_traced_cnn_folds_fuses_and_matches_eager_on_new_inputs() {
    let net = Net::new();
    let x = randn(&[4, 3, 10, 10], 10);
    let (eager, plan) = trace(std::slice::from_ref(&x), |x| net.forward(x)).unwrap();
    let mut plan = plan.unwrap();
    let s = plan.stats().clone();
    assert_eq!(s.folded_batch_norms, 1, "{s:?}");
    // conv2 + ReLU; conv1's ReLU after the folded batch norm.
    assert_eq!(s.fused_relus, 2, "{s:?}");
    assert!(s.steps < s.captured, "{s:?}");
    assert_eq!(eager.len(), 2);
    for seed in [11, 12] {
        let x2 = randn(&[4, 3, 10, 10], seed);
        let want = net.forward(std::slice::from_ref(&x2)).unwrap();
        let got = plan.run(std::slice::from_ref(&x2)).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.shape(), w.shape());
            assert!(worst_diff(g, w) < 1e-5, "{}", worst_diff(g, w));
        }
    }
}

#[test]
fn without_folds_the_replay_is_bitwise_equal() {
    let w = randn(&[4, 2, 3, 3], 1);
    let wd = randn(&[16, 3], 2);
    let f = |x: &[Tensor]| -> Result<Vec<Tensor>> {
        let h = x[0].conv2d(&w, None, &ConvOpts::new().pad(1))?.relu()?;
        let h = h.avg_pool2d(&PoolOpts::new(&[2]))?.tanh()?;
        let h = h.reshape(&[x[0].shape()[0], 16])?;
        let y = h.linear(&wd, None)?.sigmoid()?;
        Ok(vec![y.add(&x[1])?.relu()?.mul_scalar(2.0)?])
    };
    let inputs = [randn(&[3, 2, 4, 4], 3), randn(&[3, 3], 4)];
    let (_, plan) = trace(&inputs, f).unwrap();
    let mut plan = plan.unwrap();
    // conv + ReLU and add + ReLU.
    assert_eq!(plan.stats().fused_relus, 2);
    let new = [randn(&[3, 2, 4, 4], 5), randn(&[3, 3], 6)];
    let want = f(&new).unwrap();
    let got = plan.run(&new).unwrap();
    assert_eq!(
        got[0].to_vec::<f32>().unwrap(),
        want[0].to_vec::<f32>().unwrap()
    );
}

#[test]
fn folds_follow_in_place_weight_changes() {
    let net = Net::new();
    let x = randn(&[2, 3, 10, 10], 20);
    let (_, plan) = trace(std::slice::from_ref(&x), |x| net.forward(x)).unwrap();
    let mut plan = plan.unwrap();
    // An optimizer-style in-place update of weights the fold read.
    let g: Vec<f32> = net
        .gamma
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v * 2.0)
        .collect();
    net.gamma.assign_from_slice_(&g).unwrap();
    let w: Vec<f32> = net.w1.to_vec::<f32>().unwrap().iter().map(|v| -v).collect();
    net.w1.assign_from_slice_(&w).unwrap();
    let want = net.forward(std::slice::from_ref(&x)).unwrap();
    let got = plan.run(std::slice::from_ref(&x)).unwrap();
    assert!(worst_diff(&got[1], &want[1]) < 1e-5);

    // Fresh folds are kept; stale ones (the weights changed again) are released, and the
    // next run folds the current weights.
    assert_eq!(plan.release_stale_folds(true), 0, "no source is trainable");
    assert!(plan.folds[0].folded.is_some());
    let w: Vec<f32> = w.iter().map(|v| v * 0.5).collect();
    net.w1.assign_from_slice_(&w).unwrap();
    assert_eq!(plan.release_stale_folds(false), 1);
    assert!(plan.folds[0].folded.is_none());
    assert_eq!(plan.release_stale_folds(false), 0);
    let want = net.forward(std::slice::from_ref(&x)).unwrap();
    let got = plan.run(std::slice::from_ref(&x)).unwrap();
    assert!(worst_diff(&got[1], &want[1]) < 1e-5);
    assert!(plan.folds[0].folded.is_some());
}

#[test]
fn folds_of_trainable_weights_are_released_before_training() {
    let mut net = Net::new();
    net.gamma = net.gamma.requires_grad_(true);
    let x = randn(&[2, 3, 10, 10], 21);
    let (_, plan) = no_grad(|| trace(std::slice::from_ref(&x), |x| net.forward(x))).unwrap();
    let mut plan = plan.unwrap();
    assert_eq!(plan.release_stale_folds(false), 0, "fresh");
    assert_eq!(plan.release_stale_folds(true), 1, "gamma is trainable");
    let want = no_grad(|| net.forward(std::slice::from_ref(&x))).unwrap();
    let got = no_grad(|| plan.run(std::slice::from_ref(&x))).unwrap();
    assert!(worst_diff(&got[1], &want[1]) < 1e-5);
}

#[test]
fn values_made_outside_recorded_ops_refuse_the_plan() {
    // A tensor computed on the host from the input: replaying would reuse the traced batch's.
    let f = |x: &[Tensor]| -> Result<Vec<Tensor>> {
        let m = x[0].to_vec::<f32>()?.iter().sum::<f32>();
        let c = Tensor::from_vec(vec![m; x[0].numel()], x[0].shape())?;
        Ok(vec![x[0].add(&c)?])
    };
    let (eager, plan) = trace(&[randn(&[2, 3], 1)], f).unwrap();
    assert_eq!(eager[0].shape(), &[2, 3]);
    let err = plan.unwrap_err().to_string();
    assert!(err.contains("made during the trace"), "{err}");

    // A detached input.
    let g = |x: &[Tensor]| -> Result<Vec<Tensor>> { Ok(vec![x[0].detach().relu()?]) };
    let err = trace(&[randn(&[2, 3], 1)], g).unwrap().1.unwrap_err();
    assert!(err.to_string().contains("traced input"), "{err}");
}

#[test]
fn ops_without_a_replay_refuse_the_plan_and_errors_of_the_function_pass_through() {
    let f = |x: &[Tensor]| -> Result<Vec<Tensor>> {
        let y = crate::custom_op(
            "twice",
            &[&x[0]],
            |xs| xs[0].mul_scalar(2.0),
            |g| Ok(vec![Some(g.mul_scalar(2.0)?)]),
        )?;
        Ok(vec![y])
    };
    // Its forward runs on detached inputs, which a replay cannot follow.
    let err = trace(&[randn(&[3], 1)], f).unwrap().1.unwrap_err();
    assert!(err.to_string().contains("traced input"), "{err}");
    // Training-mode dropout draws new random numbers each call: no replay.
    let d = |x: &[Tensor]| -> Result<Vec<Tensor>> {
        Ok(vec![x[0].dropout(0.5, true, &mut Rng::new(1))?])
    };
    let err = trace(&[randn(&[8], 1)], d).unwrap().1.unwrap_err();
    assert!(
        err.to_string().contains("'dropout' cannot be replayed"),
        "{err}"
    );

    let bad = |x: &[Tensor]| -> Result<Vec<Tensor>> { Ok(vec![x[0].reshape(&[7])?]) };
    assert!(trace(&[randn(&[3], 1)], bad).is_err());
    // The capture ended with the error: ops are no longer traced.
    assert!(!is_tracing());
}

#[test]
fn a_plan_rejects_other_shapes_and_unused_steps_are_removed() {
    let f = |x: &[Tensor]| -> Result<Vec<Tensor>> {
        let _unused = x[0].exp()?;
        Ok(vec![x[0].relu()?])
    };
    let (_, plan) = trace(&[randn(&[2, 3], 1)], f).unwrap();
    let mut plan = plan.unwrap();
    assert_eq!(plan.stats().dead, 1);
    assert_eq!(plan.stats().steps, 1);
    let err = plan.run(&[randn(&[3, 3], 2)]).unwrap_err().to_string();
    assert!(err.contains("traced signature"), "{err}");
}

#[test]
fn values_changed_in_place_during_the_trace_refuse_the_plan() {
    let f = |x: &[Tensor]| -> Result<Vec<Tensor>> {
        let y = x[0].exp()?;
        y.assign_from_slice_(&[1.0, 2.0])?;
        Ok(vec![y.relu()?])
    };
    let err = trace(&[randn(&[2], 1)], f).unwrap().1.unwrap_err();
    assert!(
        err.to_string().contains("changed in place before 'relu'"),
        "{err}"
    );
    let g = |x: &[Tensor]| -> Result<Vec<Tensor>> {
        let y = x[0].exp()?;
        y.assign_from_slice_(&[1.0, 2.0])?;
        Ok(vec![y])
    };
    let err = trace(&[randn(&[2], 1)], g).unwrap().1.unwrap_err();
    assert!(err.to_string().contains("output 0"), "{err}");
}

#[test]
fn plans_of_two_batch_sizes_share_one_folded_copy() {
    let net = Net::new();
    let plan = |n: usize| {
        let x = randn(&[n, 3, 10, 10], 30);
        trace(std::slice::from_ref(&x), |x| net.forward(x))
            .unwrap()
            .1
            .unwrap()
    };
    let (a, b) = (plan(4), plan(2));
    let folded = |p: &Plan| p.folds[0].folded.as_ref().unwrap().weight.clone();
    assert!(folded(&a).same_storage(&folded(&b)));
}

#[test]
fn a_fused_binary_relu_equals_the_two_ops_bit_for_bit() {
    let mut a = randn(&[4, 3, 5], 40).to_vec::<f32>().unwrap();
    a[7] = f32::NAN;
    let a = Tensor::from_vec(a, &[4, 3, 5]).unwrap();
    let b = positive(&[3, 1], 41);
    for op in [
        Op::Add,
        Op::Sub,
        Op::Mul,
        Op::Div,
        Op::Pow,
        Op::Maximum,
        Op::Minimum,
    ] {
        let fused = crate::ops::binary::binary_relu(&op, &a, &b).unwrap();
        let two = exec::run(&op, &[Some(a.clone()), Some(b.clone())], &[], false)
            .unwrap()
            .relu()
            .unwrap();
        assert_eq!(bits(&fused), bits(&two), "{op:?}");
    }
}

#[test]
fn plans_count_the_nominal_flops_of_convolutions_and_products() {
    let net = Net::new();
    let x = randn(&[4, 3, 10, 10], 50);
    let plan = trace(std::slice::from_ref(&x), |x| net.forward(x))
        .unwrap()
        .1
        .unwrap();
    // conv1: 4·6·10·10 outputs × 27 MACs; conv2 (5x5 -> 3x3): 4·8·3·3 × 54; dense: 4·5 × 8.
    let macs = 4 * 6 * 100 * 27 + 4 * 8 * 9 * 54 + 4 * 5 * 8;
    assert_eq!(plan.stats().flops, 2 * macs as u64);
}

/// A residual add (with or without a ReLU) fuses into the convolution that makes one of its
/// operands, on every convolution path (pointwise GEMM, im2col with one and with several images
/// per GEMM, Winograd, depthwise, the dense small-map form in both GEMM orientations), whether
/// the residual is a traced input or computed after the convolution, and the replay equals the
/// eager ops bit for bit.
#[test]
fn a_residual_add_fuses_into_the_convolution_bit_for_bit() {
    // (input shape, weight shape, stride, padding, groups)
    type Case = ([usize; 4], [usize; 4], usize, usize, usize);
    let cases: [Case; 11] = [
        ([1, 16, 90, 90], [16, 16, 3, 3], 1, 1, 1), // Winograd (tiled, bands of one image)
        ([4, 128, 8, 8], [128, 128, 3, 3], 1, 1, 1), // Winograd (whole-batch)
        ([2, 8, 16, 16], [12, 8, 1, 1], 1, 0, 1),   // pointwise, one image per GEMM
        ([2, 3, 33, 33], [8, 3, 3, 3], 2, 1, 1),    // im2col, one image per GEMM
        ([3, 4, 9, 9], [6, 4, 3, 3], 2, 1, 1),      // im2col, images batched: reordering copy
        ([2, 8, 16, 16], [8, 8, 3, 3], 1, 1, 1),    // Winograd (tiled)
        ([2, 6, 10, 10], [6, 1, 3, 3], 1, 1, 6),    // depthwise
        ([2, 4, 12, 12], [8, 2, 3, 3], 1, 1, 2),    // grouped im2col
        ([16, 32, 2, 2], [32, 32, 3, 3], 1, 1, 1),  // dense, Yᵀ = Dᵀ·Xᵀ
        ([32, 8, 2, 2], [8, 8, 3, 3], 1, 1, 1),     // dense, Y = X·D
        ([2, 16, 1, 1], [8, 16, 3, 3], 1, 1, 1),    // dense, a 1×1 map
    ];
    for (i, (xs, ws, stride, pad, groups)) in cases.into_iter().enumerate() {
        let seed = 10 * i as u64;
        let w = randn(&ws, seed + 1).mul_scalar(0.3).unwrap();
        let b = randn(&[ws[0]], seed + 2);
        let opts = ConvOpts::new().pad(pad).stride(&[stride]).groups(groups);
        let wr = randn(&[ws[0], xs[1], 1, 1], seed + 3);
        let ropts = ConvOpts::new().stride(&[stride]);
        for (relu, residual_later) in [(true, false), (false, false), (true, true)] {
            let f = |x: &[Tensor]| -> Result<Vec<Tensor>> {
                let y = x[0].conv2d(&w, Some(&b), &opts)?;
                let r = if residual_later {
                    // A projection shortcut traced after the main convolution.
                    x[0].conv2d(&wr, None, &ropts)?
                } else {
                    x[1].clone()
                };
                let s = r.add(&y)?;
                Ok(vec![if relu { s.relu()? } else { s }])
            };
            let out_shape = {
                let y = randn(&xs, 0).conv2d(&w, None, &opts).unwrap();
                y.shape().to_vec()
            };
            let inputs = [randn(&xs, seed + 4), randn(&out_shape, seed + 5)];
            let (_, plan) = trace(&inputs, f).unwrap();
            let mut plan = plan.unwrap();
            let what = format!("case {i} relu={relu} later={residual_later}");
            assert_eq!(plan.stats().fused_residuals, 1, "{what}");
            let new = [randn(&xs, seed + 6), randn(&out_shape, seed + 7)];
            // Gradients off, as in the replay: the algorithm choice depends on it.
            let want = crate::no_grad(|| f(&new)).unwrap()[0]
                .to_vec::<f32>()
                .unwrap();
            let got = plan.run(&new).unwrap()[0].to_vec::<f32>().unwrap();
            assert_eq!(got, want, "{what}");
        }
    }
}

/// Not fused: a broadcast residual, and a convolution output read elsewhere too.
#[test]
fn residuals_that_cannot_fuse_are_left_alone() {
    let w = randn(&[4, 3, 3, 3], 1);
    let f = |x: &[Tensor]| -> Result<Vec<Tensor>> {
        let y = x[0].conv2d(&w, None, &ConvOpts::new().pad(1))?;
        let broadcast = y.add(&x[1])?;
        let z = x[0].conv2d(&w, None, &ConvOpts::new().pad(1))?;
        let twice = z.add(&x[2])?.add(&z)?;
        Ok(vec![broadcast, twice])
    };
    let inputs = [
        randn(&[2, 3, 5, 5], 2),
        randn(&[1, 4, 1, 1], 3),
        randn(&[2, 4, 5, 5], 4),
    ];
    let (_, plan) = trace(&inputs, f).unwrap();
    let mut plan = plan.unwrap();
    assert_eq!(plan.stats().fused_residuals, 0);
    let got = plan.run(&inputs).unwrap();
    let want = f(&inputs).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.to_vec::<f32>().unwrap(), w.to_vec::<f32>().unwrap());
    }
}

/// The fused op is for inference: operands that need a gradient are refused.
#[test]
fn the_fused_convolution_refuses_operands_that_need_a_gradient() {
    let x = randn(&[1, 2, 4, 4], 1);
    let w = randn(&[3, 2, 1, 1], 2).requires_grad_(true);
    let r = randn(&[1, 3, 4, 4], 3);
    let e = crate::ops::conv::conv_nd_residual(&x, &w, None, &r, &ConvOpts::new(), false);
    assert!(e.is_err());
    let bad = randn(&[1, 3, 4, 5], 4);
    let w = w.detach();
    let e = crate::ops::conv::conv_nd_residual(&x, &w, None, &bad, &ConvOpts::new(), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("conv_residual"), "{e}");
}

/// Every elementwise unary op a chain may hold, with attributes that exercise them.
fn unary_ops() -> Vec<Op> {
    vec![
        Op::Neg,
        Op::AddScalar { c: 0.75 },
        Op::SubScalar { c: -1.5 },
        Op::RsubScalar { c: 2.0 },
        Op::MulScalar { c: 1.25 },
        Op::DivScalar { c: 3.0 },
        Op::PowScalar { p: 2.0 },
        Op::PowScalar { p: 1.7 },
        Op::Reciprocal,
        Op::Square,
        Op::Sqrt,
        Op::Rsqrt,
        Op::Abs,
        Op::Sign,
        Op::Exp,
        Op::Log,
        Op::Log1p,
        Op::Sin,
        Op::Cos,
        Op::Tanh,
        Op::Sigmoid,
        Op::Relu,
        Op::Relu6,
        Op::LeakyRelu { slope: 0.1 },
        Op::Elu { alpha: 0.9 },
        Op::Selu,
        Op::Gelu,
        Op::GeluTanh,
        Op::Softplus,
        Op::Silu,
        Op::HardSigmoid,
        Op::HardSwish,
        Op::Clamp {
            min: Some(-0.5),
            max: None,
        },
        Op::Clamp {
            min: Some(-1.0),
            max: Some(2.5),
        },
    ]
}

/// The bit patterns of an f32 tensor's values (bitwise comparisons, NaN payloads included).
pub(super) fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// Values over several chain blocks and thread chunks (not a whole number of either), with
/// NaN, infinities and signed zeros among them.
fn chain_input() -> Tensor {
    let mut v = randn(&[3, 7, 41, 43], 60)
        .mul_scalar(3.0)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    for (i, special) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0]
        .into_iter()
        .enumerate()
    {
        v[i * 7919] = special;
    }
    Tensor::from_vec(v, &[3, 7, 41, 43]).unwrap()
}

#[test]
fn unary_chains_equal_the_ops_one_after_the_other_bit_for_bit() {
    let x = chain_input();
    let ops = unary_ops();
    let one_by_one = |chain: &[Op]| {
        chain.iter().fold(x.clone(), |t, op| {
            exec::run(op, &[Some(t)], &[], false).unwrap()
        })
    };
    // Each op alone, then chains of 2, 3 and 5 consecutive ops (odd and even lengths end in
    // either block of the ping-pong), both in a buffer the chain owns (in place) and in one
    // another handle still reads (a new buffer; the shared one must not change).
    let mut chains: Vec<Vec<Op>> = ops.iter().map(|op| vec![op.clone()]).collect();
    for len in [2, 3, 5] {
        for start in (0..ops.len()).step_by(len) {
            chains.push(ops.iter().cycle().skip(start).take(len).cloned().collect());
        }
    }
    let before = bits(&x);
    for chain in &chains {
        let want = bits(&one_by_one(chain));
        let owned = x.mul_scalar(1.0).unwrap();
        assert!(owned.is_sole_owner());
        assert_eq!(bits(&owned.unary_chain(chain).unwrap()), want, "{chain:?}");
        let shared = x.clone();
        assert_eq!(bits(&shared.unary_chain(chain).unwrap()), want, "{chain:?}");
        assert_eq!(bits(&x), before, "{chain:?} wrote into a shared buffer");
    }
}

#[test]
fn elementwise_chains_fuse_into_the_step_before_them_bit_for_bit() {
    let (a, b) = (chain_input(), positive(&[7, 1, 43], 61));
    let f = |x: &[Tensor]| -> Result<Vec<Tensor>> {
        let h = x[0].mul(&x[1])?.sigmoid()?.mul_scalar(2.0)?.relu6()?;
        // A chain whose head is a view of a traced input: run into a new buffer.
        let v = x[0].reshape(&[21, 41, 43])?.tanh()?.add_scalar(1.0)?;
        Ok(vec![h, v])
    };
    let eager = f(&[a.clone(), b.clone()]).unwrap();
    let (first, plan) = trace(&[a.clone(), b.clone()], f).unwrap();
    let mut plan = plan.unwrap();
    assert_eq!(plan.stats().fused_elementwise, 5, "{:?}", plan.stats());
    assert_eq!(plan.stats().steps, 2, "{:?}", plan.stats());
    for (got, want) in first.iter().zip(&eager) {
        assert_eq!(bits(got), bits(want));
    }
    let before = bits(&a);
    let again = plan.run(&[a.clone(), b.clone()]).unwrap();
    for (got, want) in again.iter().zip(&eager) {
        assert_eq!(bits(got), bits(want));
    }
    assert_eq!(bits(&a), before, "the chain wrote into the traced input");
}

#[test]
fn values_read_twice_end_a_chain() {
    let x = chain_input();
    let f = |x: &[Tensor]| -> Result<Vec<Tensor>> {
        let s = x[0].sigmoid()?;
        Ok(vec![s.exp()?.add(&s.tanh()?)?])
    };
    let (out, plan) = trace(std::slice::from_ref(&x), f).unwrap();
    let plan = plan.unwrap();
    assert_eq!(plan.stats().fused_elementwise, 0, "{:?}", plan.stats());
    assert_eq!(bits(&out[0]), bits(&f(&[x]).unwrap()[0]));
}
