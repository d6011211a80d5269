//! Elementwise unary ops, scalar arithmetic and broadcasting binary ops: forward values against
//! f64 references, gradient checks (broadcasting, non-contiguous inputs), and PyTorch's
//! conventions at kinks.

mod common;
use common::{assert_close, uniform};
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::{Result, Tensor};

fn check(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    GradCheck::default().run(f, inputs).unwrap();
}

/// Uniform values in [lo, hi) moved at least `margin` away from every point in `kinks` (so that
/// central differences do not straddle a kink).
fn away_from(shape: &[usize], lo: f32, hi: f32, seed: u64, kinks: &[f32], margin: f32) -> Tensor {
    let v: Vec<f32> = uniform(shape, lo, hi, seed)
        .to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(|mut x| {
            for &k in kinks {
                if (x - k).abs() < margin {
                    x = if x >= k { k + margin } else { k - margin };
                }
            }
            x
        })
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

fn grad_of(x: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) -> Vec<f32> {
    let x = x.detach().requires_grad_(true);
    f(&x).unwrap().sum_all().unwrap().backward().unwrap();
    vals(&x.grad().unwrap())
}

/// Forward values of `op` against an f64 reference.
fn forward_matches(
    name: &str,
    x: &Tensor,
    op: impl Fn(&Tensor) -> Result<Tensor>,
    r: impl Fn(f64) -> f64,
    rtol: f64,
) {
    let got = vals(&op(x).unwrap());
    for (g, &xv) in got.iter().zip(&vals(x)) {
        let want = r(xv as f64);
        assert!(
            (*g as f64 - want).abs() <= rtol * want.abs() + 1e-6,
            "{name}({xv}) = {g}, want {want}"
        );
    }
}

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn unary_forward_values() {
    let x = uniform(&[257], -6.0, 6.0, 1);
    let pos = uniform(&[257], 0.05, 8.0, 2);
    forward_matches("exp", &x, |t| t.exp(), f64::exp, 1e-6);
    forward_matches("log", &pos, |t| t.log(), f64::ln, 1e-6);
    forward_matches("log1p", &pos, |t| t.log1p(), f64::ln_1p, 1e-6);
    forward_matches("sqrt", &pos, |t| t.sqrt(), f64::sqrt, 1e-6);
    forward_matches("rsqrt", &pos, |t| t.rsqrt(), |v| 1.0 / v.sqrt(), 1e-6);
    forward_matches("square", &x, |t| t.square(), |v| v * v, 1e-6);
    forward_matches("abs", &x, |t| t.abs(), f64::abs, 0.0);
    forward_matches("sign", &x, |t| t.sign(), f64::signum, 0.0);
    forward_matches("sin", &x, |t| t.sin(), f64::sin, 1e-6);
    forward_matches("cos", &x, |t| t.cos(), f64::cos, 1e-6);
    forward_matches("tanh", &x, |t| t.tanh(), f64::tanh, 1e-6);
    forward_matches("sigmoid", &x, |t| t.sigmoid(), sigmoid64, 1e-6);
    forward_matches("relu", &x, |t| t.relu(), |v| v.max(0.0), 0.0);
    forward_matches("relu6", &x, |t| t.relu6(), |v| v.clamp(0.0, 6.0), 0.0);
    forward_matches(
        "leaky_relu",
        &x,
        |t| t.leaky_relu(0.1),
        |v| if v > 0.0 { v } else { 0.1 * v },
        1e-6,
    );
    forward_matches(
        "elu",
        &x,
        |t| t.elu(0.7),
        |v| if v > 0.0 { v } else { 0.7 * v.exp_m1() },
        1e-6,
    );
    let (a, s) = (1.673_263_242_354_377_3, 1.050_700_987_355_480_5);
    forward_matches(
        "selu",
        &x,
        |t| t.selu(),
        move |v| s * if v > 0.0 { v } else { a * v.exp_m1() },
        1e-6,
    );
    forward_matches(
        "softplus",
        &uniform(&[257], -30.0, 30.0, 3),
        |t| t.softplus(),
        |v| if v > 20.0 { v } else { v.exp().ln_1p() },
        1e-6,
    );
    forward_matches("silu", &x, |t| t.silu(), |v| v * sigmoid64(v), 1e-6);
    forward_matches("swish", &x, |t| t.swish(), |v| v * sigmoid64(v), 1e-6);
    forward_matches(
        "hard_sigmoid",
        &x,
        |t| t.hard_sigmoid(),
        |v| (v + 3.0).clamp(0.0, 6.0) / 6.0,
        1e-6,
    );
    forward_matches(
        "hard_swish",
        &x,
        |t| t.hard_swish(),
        |v| v * (v + 3.0).clamp(0.0, 6.0) / 6.0,
        1e-6,
    );
    forward_matches(
        "gelu_tanh",
        &x,
        |t| t.gelu_tanh(),
        |v| {
            let u = (2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v);
            0.5 * v * (1.0 + u.tanh())
        },
        1e-5,
    );
    forward_matches(
        "clamp",
        &x,
        |t| t.clamp(Some(-1.0), Some(2.0)),
        |v| v.clamp(-1.0, 2.0),
        0.0,
    );
    forward_matches(
        "clamp_min",
        &x,
        |t| t.clamp(Some(0.5), None),
        |v| v.max(0.5),
        0.0,
    );
    forward_matches(
        "clamp_max",
        &x,
        |t| t.clamp(None, Some(0.5)),
        |v| v.min(0.5),
        0.0,
    );
    forward_matches(
        "pow_scalar",
        &pos,
        |t| t.pow_scalar(1.7),
        |v| v.powf(1.7),
        1e-6,
    );
    forward_matches("pow_scalar 2", &x, |t| t.pow_scalar(2.0), |v| v * v, 1e-6);
    forward_matches(
        "pow_scalar -1",
        &pos,
        |t| t.pow_scalar(-1.0),
        |v| 1.0 / v,
        1e-6,
    );
    forward_matches("pow_scalar 0", &x, |t| t.pow_scalar(0.0), |_| 1.0, 0.0);
    for p in [1.0f32, 3.0, 0.5, -0.5, -2.0, 2.5] {
        forward_matches(
            "pow_scalar p",
            &pos,
            |t| t.pow_scalar(p),
            move |v| v.powf(p as f64),
            2e-6,
        );
    }
    forward_matches("reciprocal", &pos, |t| t.reciprocal(), |v| 1.0 / v, 1e-6);
    forward_matches("add_scalar", &x, |t| t.add_scalar(1.5), |v| v + 1.5, 1e-6);
    forward_matches("sub_scalar", &x, |t| t.sub_scalar(1.5), |v| v - 1.5, 1e-6);
    forward_matches("rsub_scalar", &x, |t| t.rsub_scalar(1.5), |v| 1.5 - v, 1e-6);
    forward_matches("mul_scalar", &x, |t| t.mul_scalar(-2.5), |v| v * -2.5, 1e-6);
    forward_matches("div_scalar", &x, |t| t.div_scalar(3.0), |v| v / 3.0, 1e-6);
    forward_matches("neg", &x, |t| t.neg(), |v| -v, 0.0);
}

#[test]
fn gelu_exact_values() {
    // Reference values of x·Φ(x) (Φ from a 50-digit computation).
    let cases = [
        (-3.0f32, -0.004_049_694_4f64),
        (-1.0, -0.158_655_253_931_457),
        (-0.5, -0.154_268_748_165_09),
        (0.0, 0.0),
        (0.5, 0.345_731_251_834_91),
        (1.0, 0.841_344_746_068_543),
        (2.0, 1.954_499_736_103_642),
        (4.0, 3.999_873_310_596_894),
    ];
    let x = Tensor::from_vec(cases.iter().map(|c| c.0).collect(), &[cases.len()]).unwrap();
    let y = vals(&x.gelu().unwrap());
    for (g, (xv, want)) in y.iter().zip(cases) {
        assert!(
            (*g as f64 - want).abs() <= 1e-6 * want.abs() + 1e-7,
            "gelu({xv}) = {g}, want {want}"
        );
    }
}

#[test]
fn unary_gradients_smooth() {
    let x = uniform(&[3, 4, 5], -2.0, 2.0, 4);
    let pos = uniform(&[3, 4, 5], 0.3, 3.0, 5);
    check(|t| t[0].exp(), std::slice::from_ref(&x));
    check(|t| t[0].log(), std::slice::from_ref(&pos));
    check(|t| t[0].log1p(), std::slice::from_ref(&pos));
    check(|t| t[0].sqrt(), std::slice::from_ref(&pos));
    check(|t| t[0].rsqrt(), std::slice::from_ref(&pos));
    check(|t| t[0].square(), std::slice::from_ref(&x));
    check(|t| t[0].sin(), std::slice::from_ref(&x));
    check(|t| t[0].cos(), std::slice::from_ref(&x));
    check(|t| t[0].tanh(), std::slice::from_ref(&x));
    check(|t| t[0].sigmoid(), std::slice::from_ref(&x));
    check(
        |t| t[0].selu(),
        &[away_from(&[3, 4, 5], -2.0, 2.0, 6, &[0.0], 0.05)],
    );
    check(
        |t| t[0].elu(0.7),
        &[away_from(&[3, 4, 5], -2.0, 2.0, 7, &[0.0], 0.05)],
    );
    check(|t| t[0].gelu(), &[uniform(&[3, 4, 5], -4.0, 4.0, 8)]);
    check(|t| t[0].gelu_tanh(), &[uniform(&[3, 4, 5], -4.0, 4.0, 9)]);
    check(|t| t[0].softplus(), &[uniform(&[3, 4, 5], -5.0, 5.0, 10)]);
    check(|t| t[0].silu(), &[uniform(&[3, 4, 5], -5.0, 5.0, 11)]);
    check(|t| t[0].swish(), std::slice::from_ref(&x));
    check(|t| t[0].pow_scalar(1.7), std::slice::from_ref(&pos));
    check(|t| t[0].pow_scalar(2.0), std::slice::from_ref(&x));
    check(|t| t[0].pow_scalar(3.0), std::slice::from_ref(&x));
    check(|t| t[0].pow_scalar(-0.5), std::slice::from_ref(&pos));
    check(|t| t[0].pow_scalar(-2.0), std::slice::from_ref(&pos));
    check(|t| t[0].pow_scalar(0.5), std::slice::from_ref(&pos));
    check(|t| t[0].pow_scalar(-1.0), std::slice::from_ref(&pos));
    check(|t| t[0].pow_scalar(1.0), std::slice::from_ref(&x));
    check(|t| t[0].pow_scalar(0.0), std::slice::from_ref(&x));
    check(|t| t[0].reciprocal(), std::slice::from_ref(&pos));
    check(|t| t[0].add_scalar(2.0), std::slice::from_ref(&x));
    check(|t| t[0].sub_scalar(2.0), std::slice::from_ref(&x));
    check(|t| t[0].rsub_scalar(2.0), std::slice::from_ref(&x));
    check(|t| t[0].mul_scalar(-3.0), std::slice::from_ref(&x));
    check(|t| t[0].div_scalar(4.0), std::slice::from_ref(&x));
    check(|t| t[0].neg(), &[x]);
}

#[test]
fn unary_gradients_piecewise() {
    let s = [4, 6, 5];
    // Activations with kinks, with inputs kept 0.05 away from each kink.
    check(
        |t| t[0].relu(),
        &[away_from(&s, -2.0, 2.0, 12, &[0.0], 0.05)],
    );
    check(
        |t| t[0].abs(),
        &[away_from(&s, -2.0, 2.0, 13, &[0.0], 0.05)],
    );
    check(
        |t| t[0].sign(),
        &[away_from(&s, -2.0, 2.0, 14, &[0.0], 0.05)],
    );
    check(
        |t| t[0].relu6(),
        &[away_from(&s, -2.0, 8.0, 15, &[0.0, 6.0], 0.05)],
    );
    check(
        |t| t[0].leaky_relu(0.2),
        &[away_from(&s, -2.0, 2.0, 16, &[0.0], 0.05)],
    );
    check(
        |t| t[0].hard_sigmoid(),
        &[away_from(&s, -5.0, 5.0, 17, &[-3.0, 3.0], 0.05)],
    );
    check(
        |t| t[0].hard_swish(),
        &[away_from(&s, -5.0, 5.0, 18, &[-3.0, 3.0], 0.05)],
    );
    check(
        |t| t[0].clamp(Some(-0.5), Some(1.0)),
        &[away_from(&s, -2.0, 2.0, 19, &[-0.5, 1.0], 0.05)],
    );
    check(
        |t| t[0].clamp(None, Some(0.3)),
        &[away_from(&s, -2.0, 2.0, 20, &[0.3], 0.05)],
    );
    check(
        |t| t[0].clamp(Some(0.3), None),
        &[away_from(&s, -2.0, 2.0, 21, &[0.3], 0.05)],
    );
}

#[test]
fn unary_gradients_non_contiguous() {
    let x = uniform(&[4, 3, 6], -2.0, 2.0, 22);
    check(
        |t| t[0].permute(&[2, 0, 1])?.gelu(),
        std::slice::from_ref(&x),
    );
    check(
        |t| t[0].transpose(0, 2)?.tanh()?.sigmoid(),
        std::slice::from_ref(&x),
    );
    check(|t| t[0].slice(2, 1, 6, 2)?.silu(), std::slice::from_ref(&x));
    check(
        |t| t[0].slice(0, 0, 4, 3)?.exp()?.log1p(),
        std::slice::from_ref(&x),
    );
    check(
        |t| t[0].permute(&[1, 2, 0])?.relu(),
        &[away_from(&[4, 3, 6], -2.0, 2.0, 23, &[0.0], 0.05)],
    );
    check(
        |t| t[0].t()?.square()?.mul_scalar(0.5),
        &[uniform(&[5, 7], -1.0, 1.0, 24)],
    );
}

#[test]
fn kink_conventions_match_pytorch() {
    let x = Tensor::from_vec(vec![-3.0f32, 0.0, 3.0, 6.0, -1.0, 1.0], &[6]).unwrap();
    assert_eq!(
        grad_of(&x, |t| t.relu()),
        vec![0.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    );
    assert_eq!(
        grad_of(&x, |t| t.abs()),
        vec![-1.0, 0.0, 1.0, 1.0, -1.0, 1.0]
    );
    assert_eq!(grad_of(&x, |t| t.sign()), vec![0.0; 6]);
    assert_eq!(
        grad_of(&x, |t| t.relu6()),
        vec![0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(
        grad_of(&x, |t| t.leaky_relu(0.1)),
        vec![0.1, 0.1, 1.0, 1.0, 0.1, 1.0]
    );
    // Clamp passes the gradient on the closed range [min, max].
    assert_eq!(
        grad_of(&x, |t| t.clamp(Some(-1.0), Some(3.0))),
        vec![0.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    );
    // hardsigmoid: open range (-3, 3); hardswish: x/3 + 1/2 on [-3, 3].
    let hs = grad_of(&x, |t| t.hard_sigmoid());
    assert_close(
        &hs,
        &[0.0, 1.0 / 6.0, 0.0, 0.0, 1.0 / 6.0, 1.0 / 6.0],
        1e-6,
        0.0,
    );
    let hw = grad_of(&x, |t| t.hard_swish());
    assert_close(
        &hw,
        &[-0.5, 0.5, 1.5, 1.0, 1.0 / 6.0, 5.0 / 6.0],
        1e-6,
        1e-7,
    );
    // Forward at the edges.
    assert_eq!(
        vals(&x.hard_swish().unwrap()),
        vec![-0.0, 0.0, 3.0, 6.0, -1.0 / 3.0, 2.0 / 3.0]
    );
    assert_eq!(vals(&x.pow_scalar(0.0).unwrap()), vec![1.0; 6]);
    assert_eq!(grad_of(&x, |t| t.pow_scalar(0.0)), vec![0.0; 6]);
}

#[test]
fn special_values() {
    let x = Tensor::from_vec(
        vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 1e-40],
        &[5],
    )
    .unwrap();
    let r = vals(&x.relu().unwrap());
    assert!(r[0].is_nan());
    assert_eq!(&r[1..], &[f32::INFINITY, 0.0, 0.0, 1e-40]);
    let e = vals(&x.exp().unwrap());
    assert!(e[0].is_nan());
    assert_eq!(&e[1..4], &[f32::INFINITY, 0.0, 1.0]);
    let s = vals(&x.sigmoid().unwrap());
    assert_eq!(&s[1..4], &[1.0, 0.0, 0.5]);
    let t = vals(&x.tanh().unwrap());
    assert_eq!(&t[1..3], &[1.0, -1.0]);
    let c = vals(&x.clamp(Some(0.0), Some(1.0)).unwrap());
    assert!(c[0].is_nan());
    assert_eq!(&c[1..3], &[1.0, 0.0]);
    let l = vals(&x.log().unwrap());
    assert_eq!(l[3], f32::NEG_INFINITY);
    assert!((l[4] as f64 - (1e-40f64).ln()).abs() < 1e-4);
    // Softplus is linear past the threshold and stable far below 0.
    let sp = vals(
        &Tensor::from_vec(vec![25.0f32, -100.0], &[2])
            .unwrap()
            .softplus()
            .unwrap(),
    );
    assert_eq!(sp[0], 25.0);
    assert!(sp[1] > 0.0 && sp[1] < 1e-43);
    assert!(x.clamp(None, None).is_err());
    // clamp with min > max gives max everywhere (PyTorch).
    assert_eq!(
        vals(
            &Tensor::from_vec(vec![-5.0f32, 0.0, 5.0], &[3])
                .unwrap()
                .clamp(Some(2.0), Some(1.0))
                .unwrap()
        ),
        vec![1.0, 1.0, 1.0]
    );
}

#[test]
fn integer_inputs_are_rejected_with_the_op_name() {
    let i = Tensor::from_vec(vec![1i64, 2], &[2]).unwrap();
    let e = i.gelu().unwrap_err().to_string();
    assert!(e.starts_with("gelu:"), "{e}");
    let e = i.add(&Tensor::ones(&[2])).unwrap_err().to_string();
    assert!(e.starts_with("add:"), "{e}");
}

#[test]
fn large_inputs_use_the_parallel_path() {
    // Above the parallel threshold, results equal the element-by-element reference.
    let x = uniform(&[300_001], -10.0, 10.0, 25);
    let y = vals(&x.gelu().unwrap());
    let xv = vals(&x);
    for i in (0..xv.len()).step_by(997) {
        let small = Tensor::from_vec(vec![xv[i]], &[1]).unwrap().gelu().unwrap();
        assert_eq!(y[i], vals(&small)[0]);
    }
    let xr = x.detach().requires_grad_(true);
    xr.tanh().unwrap().sum_all().unwrap().backward().unwrap();
    let g = vals(&xr.grad().unwrap());
    for i in (0..xv.len()).step_by(4999) {
        let t = xv[i].tanh();
        assert!((g[i] - (1.0 - t * t)).abs() < 1e-6);
    }
}

// ----- binary ops -----

/// Naive broadcasting reference through f64.
fn naive_binary(a: &Tensor, b: &Tensor, f: impl Fn(f64, f64) -> f64) -> (Vec<f64>, Vec<usize>) {
    let shape = ferrovision_tensor::shape::broadcast_shapes("t", a.shape(), b.shape()).unwrap();
    let ea = a.expand(&shape).unwrap().to_f64_vec().unwrap();
    let eb = b.expand(&shape).unwrap().to_f64_vec().unwrap();
    (ea.iter().zip(&eb).map(|(&x, &y)| f(x, y)).collect(), shape)
}

/// (op name, result, (reference values, reference shape)).
type BinaryCase = (&'static str, Tensor, (Vec<f64>, Vec<usize>));

#[test]
fn binary_forward_broadcast_patterns() {
    let cases: Vec<(Tensor, Tensor)> = vec![
        (
            uniform(&[2, 3, 4, 5], -2.0, 2.0, 30),
            uniform(&[1, 3, 1, 1], 0.5, 2.0, 31),
        ),
        (uniform(&[6, 7], -2.0, 2.0, 32), uniform(&[7], 0.5, 2.0, 33)),
        (
            uniform(&[6, 1], -2.0, 2.0, 34),
            uniform(&[1, 7], 0.5, 2.0, 35),
        ),
        (uniform(&[5], -2.0, 2.0, 36), uniform(&[], 0.5, 2.0, 37)),
        (uniform(&[], -2.0, 2.0, 38), uniform(&[3, 2], 0.5, 2.0, 39)),
        (
            uniform(&[3, 1, 4], -2.0, 2.0, 40),
            uniform(&[2, 1], 0.5, 2.0, 41),
        ),
        (
            uniform(&[4, 6], -2.0, 2.0, 42).t().unwrap(),
            uniform(&[6, 4], 0.5, 2.0, 43),
        ),
        (
            uniform(&[4, 9], -2.0, 2.0, 44).slice(1, 1, 9, 3).unwrap(),
            uniform(&[4, 1], 0.5, 2.0, 45),
        ),
        (uniform(&[0, 3], -2.0, 2.0, 46), uniform(&[3], 0.5, 2.0, 47)),
        // Big enough for the parallel column split (one long row after merging dims).
        (
            uniform(&[300_001], -2.0, 2.0, 50),
            uniform(&[300_001], 0.5, 2.0, 51),
        ),
        (
            uniform(&[2, 150_000], -2.0, 2.0, 52),
            uniform(&[1], 0.5, 2.0, 53),
        ),
        (
            uniform(&[3, 100_000], -2.0, 2.0, 54)
                .slice(1, 1, 100_000, 2)
                .unwrap(),
            uniform(&[3, 1], 0.5, 2.0, 55),
        ),
        // Big enough for the parallel row split.
        (
            uniform(&[8, 64, 130], -2.0, 2.0, 48),
            uniform(&[64, 1], 0.5, 2.0, 49),
        ),
    ];
    for (a, b) in &cases {
        let ops: Vec<BinaryCase> = vec![
            ("add", a.add(b).unwrap(), naive_binary(a, b, |x, y| x + y)),
            ("sub", a.sub(b).unwrap(), naive_binary(a, b, |x, y| x - y)),
            ("mul", a.mul(b).unwrap(), naive_binary(a, b, |x, y| x * y)),
            ("div", a.div(b).unwrap(), naive_binary(a, b, |x, y| x / y)),
            ("pow", b.pow(a).unwrap(), naive_binary(b, a, f64::powf)),
            (
                "maximum",
                a.maximum(b).unwrap(),
                naive_binary(a, b, f64::max),
            ),
            (
                "minimum",
                a.minimum(b).unwrap(),
                naive_binary(a, b, f64::min),
            ),
        ];
        for (name, got, (want, shape)) in ops {
            assert_eq!(got.shape(), shape.as_slice(), "{name}");
            let g = vals(&got);
            for (x, y) in g.iter().zip(&want) {
                assert!(
                    (*x as f64 - y).abs() <= 1e-5 * y.abs() + 1e-6,
                    "{name} {:?} {:?}: {x} vs {y}",
                    a.shape(),
                    b.shape()
                );
            }
        }
    }
}

#[test]
fn binary_gradients_broadcast() {
    let shapes: Vec<(Vec<usize>, Vec<usize>)> = vec![
        (vec![2, 3, 4, 5], vec![1, 3, 1, 1]),
        (vec![6, 7], vec![7]),
        (vec![6, 1], vec![1, 7]),
        (vec![5], vec![]),
        (vec![], vec![3, 2]),
        (vec![3, 1, 4], vec![2, 1]),
    ];
    for (i, (sa, sb)) in shapes.iter().enumerate() {
        let s = 50 + 10 * i as u64;
        let a = uniform(sa, -1.0, 1.0, s);
        let b = uniform(sb, -1.0, 1.0, s + 1);
        let bpos = uniform(sb, 0.5, 2.0, s + 2);
        let apos = uniform(sa, 0.5, 2.0, s + 3);
        check(|x| x[0].add(&x[1]), &[a.clone(), b.clone()]);
        check(|x| x[0].sub(&x[1]), &[a.clone(), b.clone()]);
        check(|x| x[0].mul(&x[1]), &[a.clone(), b.clone()]);
        check(|x| x[0].div(&x[1]), &[a.clone(), bpos.clone()]);
        check(|x| x[1].div(&x[0]), &[apos.clone(), b.clone()]);
        check(|x| x[0].pow(&x[1]), &[apos.clone(), b.clone()]);
        check(|x| x[1].pow(&x[0]), &[a.clone(), bpos.clone()]);
        // Values on two interleaved grids never come closer than 0.05 (> the FD step).
        let (qa, qb) = (quantized(sa, s + 4, 0.0), quantized(sb, s + 5, 0.05));
        check(|x| x[0].maximum(&x[1]), &[qa.clone(), qb.clone()]);
        check(|x| x[0].minimum(&x[1]), &[qa, qb]);
    }
}

/// Values in [-1, 1] on the grid `k/10 + offset`.
fn quantized(shape: &[usize], seed: u64, offset: f32) -> Tensor {
    let v = uniform(shape, -1.0, 1.0, seed)
        .to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(|x| (x * 10.0).round() / 10.0 + offset)
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

#[test]
fn binary_gradients_non_contiguous() {
    let a = uniform(&[4, 6], -1.0, 1.0, 70);
    let b = uniform(&[6, 4], 0.5, 2.0, 71);
    check(|x| x[0].t()?.mul(&x[1]), &[a.clone(), b.clone()]);
    check(|x| x[0].t()?.div(&x[1]), &[a.clone(), b.clone()]);
    check(|x| x[1].pow(&x[0].t()?), &[a.clone(), b.clone()]);
    check(
        |x| {
            x[0].slice(1, 0, 6, 2)?
                .maximum(&x[1].slice(0, 1, 6, 2)?.t()?)
        },
        &[quantized(&[4, 6], 73, 0.0), quantized(&[6, 4], 74, 0.05)],
    );
    // The same tensor on both sides.
    check(|x| x[0].mul(&x[0]), &[uniform(&[3, 4], -1.0, 1.0, 72)]);
}

#[test]
fn maximum_ties_split_the_gradient() {
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3])
        .unwrap()
        .requires_grad_(true);
    let b = Tensor::from_vec(vec![1.0f32, 5.0, 0.0], &[3])
        .unwrap()
        .requires_grad_(true);
    a.maximum(&b)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(vals(&a.grad().unwrap()), vec![0.5, 0.0, 1.0]);
    assert_eq!(vals(&b.grad().unwrap()), vec![0.5, 1.0, 0.0]);
    // Broadcast tie: a scalar equal to several elements collects their halves.
    let s = Tensor::scalar(2.0).requires_grad_(true);
    let v = Tensor::from_vec(vec![2.0f32, 2.0, 1.0], &[3]).unwrap();
    s.minimum(&v)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(vals(&s.grad().unwrap()), vec![1.0]);
}

#[test]
fn pow_gradient_edge_cases_match_pytorch() {
    // d/da a^0 = 0; d/db 0^b = 0 for b >= 0.
    let a = Tensor::from_vec(vec![0.0f32, 2.0], &[2])
        .unwrap()
        .requires_grad_(true);
    let b = Tensor::from_vec(vec![2.0f32, 0.0], &[2])
        .unwrap()
        .requires_grad_(true);
    a.pow(&b).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(vals(&a.grad().unwrap()), vec![0.0, 0.0]);
    assert_eq!(vals(&b.grad().unwrap())[0], 0.0);
    assert!((vals(&b.grad().unwrap())[1] - 2f32.ln()).abs() < 1e-6);
}

#[test]
fn fused_broadcast_product_gradients_match_unfused() {
    // Large shapes reach every parallel split of the fused Σ g·x kernels.
    let cases: Vec<(Vec<usize>, Vec<usize>)> = vec![
        (vec![2, 70_001], vec![2, 1]),
        (vec![70_001, 3], vec![3]),
        (vec![8, 16, 24, 24], vec![1, 16, 1, 1]),
        (vec![3, 300, 100], vec![3, 1, 100]),
        (vec![2, 40, 1_000], vec![2, 1, 1_000]),
        (vec![64, 50, 20], vec![64, 1, 20]),
        (vec![5, 7], vec![1, 1]),
    ];
    for (i, (sa, sb)) in cases.into_iter().enumerate() {
        let a = uniform(&sa, -1.0, 1.0, 80 + i as u64);
        let b = uniform(&sb, 0.5, 2.0, 90 + i as u64);
        let g = uniform(&sa, -1.0, 1.0, 100 + i as u64);
        let br = b.detach().requires_grad_(true);
        a.mul(&br).unwrap().backward_with(&g).unwrap();
        let want = g.mul(&a).unwrap().sum_to_shape(&sb).unwrap();
        assert_eq!(br.grad().unwrap().shape(), sb.as_slice());
        assert_close(&vals(&br.grad().unwrap()), &vals(&want), 1e-4, 1e-3);
        let br = b.detach().requires_grad_(true);
        a.div(&br).unwrap().backward_with(&g).unwrap();
        let want = g
            .mul(&a)
            .unwrap()
            .div(&b.mul(&b).unwrap())
            .unwrap()
            .neg()
            .unwrap()
            .sum_to_shape(&sb)
            .unwrap();
        assert_close(&vals(&br.grad().unwrap()), &vals(&want), 1e-4, 1e-3);
    }
}
