//! Initializers: statistical checks of every distribution (mean, spread and limits, with
//! tolerances of five standard errors for the sample size), exact constant ones, the Keras fan
//! conventions of the layers, and orthogonality.

use ferrovision_nn::layer::Layer;
use ferrovision_nn::layers::{Conv2D, Conv2DTranspose, Dense, DepthwiseConv2D};
use ferrovision_nn::tensor::rng::Rng;
use ferrovision_nn::Initializer;

/// Keras' truncated-normal correction: the std of N(0, 1) truncated to [-2, 2].
const TRUNC_STD: f64 = 0.879_625_661_034_239_8;

struct Stats {
    n: f64,
    mean: f64,
    var: f64,
    m4: f64,
    max_abs: f64,
    min: f64,
    max: f64,
}

fn stats(v: &[f32]) -> Stats {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let m4 = v.iter().map(|&x| (x as f64 - mean).powi(4)).sum::<f64>() / n;
    Stats {
        n,
        mean,
        var,
        m4,
        max_abs: v.iter().fold(0f64, |m, &x| m.max((x as f64).abs())),
        min: v.iter().fold(f64::MAX, |m, &x| m.min(x as f64)),
        max: v.iter().fold(f64::MIN, |m, &x| m.max(x as f64)),
    }
}

/// Mean `mu` and variance `var_want` within 5 standard errors (the variance's standard error
/// from the sample's fourth central moment).
fn check_moments(what: &str, s: &Stats, mu: f64, var_want: f64) {
    let se_mean = (s.var / s.n).sqrt();
    assert!(
        (s.mean - mu).abs() < 5.0 * se_mean,
        "{what}: mean {} vs {mu} (se {se_mean:.2e})",
        s.mean
    );
    let se_var = ((s.m4 - s.var * s.var) / s.n).sqrt();
    assert!(
        (s.var - var_want).abs() < 5.0 * se_var,
        "{what}: variance {} vs {var_want} (se {se_var:.2e})",
        s.var
    );
}

fn draw(init: Initializer, shape: &[usize], fan_in: usize, fan_out: usize, seed: u64) -> Vec<f32> {
    init.init(shape, fan_in, fan_out, &mut Rng::new(seed))
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn variance_scaling_uniform() {
    let (fi, fo) = (200usize, 300usize);
    for (init, limit) in [
        (Initializer::GlorotUniform, (6.0 / (fi + fo) as f64).sqrt()),
        (Initializer::HeUniform, (6.0 / fi as f64).sqrt()),
        (Initializer::LecunUniform, (3.0 / fi as f64).sqrt()),
    ] {
        let v = draw(init, &[fi, fo], fi, fo, 1);
        let s = stats(&v);
        let what = format!("{init:?}");
        assert!(
            s.max_abs <= limit * (1.0 + 1e-6),
            "{what}: {} > {limit}",
            s.max_abs
        );
        // 60 000 draws: P(all within 0.999 * limit) = 0.999^60000, about e^-60.
        assert!(
            s.max > 0.999 * limit && s.min < -0.999 * limit,
            "{what}: range"
        );
        check_moments(&what, &s, 0.0, limit * limit / 3.0);
    }
}

#[test]
fn variance_scaling_truncated_normal() {
    let (fi, fo) = (200usize, 300usize);
    for (init, std) in [
        (Initializer::GlorotNormal, (2.0 / (fi + fo) as f64).sqrt()),
        (Initializer::HeNormal, (2.0 / fi as f64).sqrt()),
        (Initializer::LecunNormal, (1.0 / fi as f64).sqrt()),
    ] {
        let v = draw(init, &[fi, fo], fi, fo, 2);
        let s = stats(&v);
        let what = format!("{init:?}");
        // Keras draws N(0, std / 0.8796) truncated at two of those deviations, so the sample
        // standard deviation is `std` and nothing lies beyond 2 * std / 0.8796.
        let bound = 2.0 * std / TRUNC_STD;
        assert!(
            s.max_abs <= bound * (1.0 + 1e-6),
            "{what}: {} > {bound}",
            s.max_abs
        );
        assert!(
            s.max_abs > 0.99 * bound,
            "{what}: never reaches the truncation bound"
        );
        check_moments(&what, &s, 0.0, std * std);
    }
}

#[test]
fn plain_distributions_and_constants() {
    let shape = [250, 200];
    let v = draw(
        Initializer::RandomUniform {
            min: -0.2,
            max: 0.6,
        },
        &shape,
        1,
        1,
        3,
    );
    let s = stats(&v);
    assert!(s.min >= -0.2 && s.max < 0.6 && s.min < -0.199 && s.max > 0.599);
    check_moments("RandomUniform", &s, 0.2, 0.8f64.powi(2) / 12.0);
    let v = draw(
        Initializer::RandomNormal {
            mean: 1.0,
            stddev: 0.5,
        },
        &shape,
        1,
        1,
        4,
    );
    let s = stats(&v);
    check_moments("RandomNormal", &s, 1.0, 0.25);
    // Untruncated: P(|z| > 3.5) = 4.7e-4, so about 23 of 50 000 draws lie beyond 3.5 sigma
    // (none at all has probability about e^-23).
    let far = v
        .iter()
        .filter(|&&x| (x as f64 - 1.0).abs() > 3.5 * 0.5)
        .count();
    assert!(
        far > 0,
        "no draw beyond 3.5 sigma: the normal looks truncated"
    );
    let v = draw(
        Initializer::TruncatedNormal {
            mean: 1.0,
            stddev: 0.5,
        },
        &shape,
        1,
        1,
        5,
    );
    let s = stats(&v);
    assert!(s.min >= 0.0 && s.max <= 2.0, "within mean +- 2 stddev");
    check_moments("TruncatedNormal", &s, 1.0, (0.5 * TRUNC_STD).powi(2));
    for (init, want) in [
        (Initializer::Zeros, 0.0f32),
        (Initializer::Ones, 1.0),
        (Initializer::Constant(-0.75), -0.75),
    ] {
        assert!(
            draw(init, &[3, 4, 5], 1, 1, 6).iter().all(|&x| x == want),
            "{init:?}"
        );
    }
    // Seeded: the same generator state gives the same draw.
    assert_eq!(
        draw(Initializer::HeNormal, &[10, 10], 10, 10, 7),
        draw(Initializer::HeNormal, &[10, 10], 10, 10, 7)
    );
    assert_ne!(
        draw(Initializer::HeNormal, &[10, 10], 10, 10, 7),
        draw(Initializer::HeNormal, &[10, 10], 10, 10, 8)
    );
}

fn gram(v: &[f32], rows: usize, cols: usize, by_rows: bool) -> Vec<f64> {
    let k = if by_rows { rows } else { cols };
    let mut g = vec![0f64; k * k];
    for i in 0..k {
        for j in 0..k {
            g[i * k + j] = if by_rows {
                (0..cols)
                    .map(|c| v[i * cols + c] as f64 * v[j * cols + c] as f64)
                    .sum()
            } else {
                (0..rows)
                    .map(|r| v[r * cols + i] as f64 * v[r * cols + j] as f64)
                    .sum()
            };
        }
    }
    g
}

#[test]
fn orthogonal() {
    // Wide (orthonormal rows), tall (orthonormal columns), square, and a conv kernel whose
    // [out, in * kh * kw] view has orthonormal rows; gain scales the frame.
    for (shape, gain) in [
        (vec![30usize, 50usize], 1.0f32),
        (vec![50, 30], 1.0),
        (vec![40, 40], 2.0),
        (vec![8, 4, 3, 3], 1.0),
    ] {
        let rows = shape[0];
        let cols: usize = shape[1..].iter().product();
        let v = draw(Initializer::Orthogonal { gain }, &shape, 1, 1, 9);
        let by_rows = rows <= cols;
        let g = gram(&v, rows, cols, by_rows);
        let k = rows.min(cols);
        for i in 0..k {
            for j in 0..k {
                let want = if i == j { (gain * gain) as f64 } else { 0.0 };
                assert!(
                    (g[i * k + j] - want).abs() < 1e-5 * (gain * gain) as f64,
                    "{shape:?}: gram[{i}][{j}] = {}",
                    g[i * k + j]
                );
            }
        }
    }
    // Random, not a fixed frame: entries average out over many draws.
    let v = draw(Initializer::Orthogonal { gain: 1.0 }, &[100, 100], 1, 1, 10);
    let s = stats(&v);
    check_moments("orthogonal entries", &s, 0.0, 1.0 / 100.0);
    assert!(Initializer::Orthogonal { gain: 1.0 }
        .init(&[5], 1, 1, &mut Rng::new(1))
        .is_err());
}

/// The layers pass Keras' fans: conv fan_in = in/groups * kh * kw, fan_out = filters * kh * kw.
#[test]
fn layer_fans_follow_keras() {
    let limit_of = |l: &dyn Layer| -> f64 {
        let k = l.weights()[0].to_vec().unwrap();
        stats(&k).max_abs
    };
    let mut conv = Conv2D::new(64, 3).kernel_initializer(Initializer::GlorotUniform);
    conv.build(&[vec![None, Some(32), None, None]]).unwrap();
    let want = (6.0f64 / (32.0 * 9.0 + 64.0 * 9.0)).sqrt();
    let got = limit_of(&conv);
    assert!(
        got <= want * (1.0 + 1e-6) && got > 0.99 * want,
        "conv: {got} vs {want}"
    );
    // Grouped: fan_in uses in/groups.
    let mut conv = Conv2D::new(64, 3)
        .groups(4)
        .kernel_initializer(Initializer::HeUniform);
    conv.build(&[vec![None, Some(32), None, None]]).unwrap();
    let want = (6.0f64 / (8.0 * 9.0)).sqrt();
    let got = limit_of(&conv);
    assert!(
        got <= want * (1.0 + 1e-6) && got > 0.99 * want,
        "grouped: {got} vs {want}"
    );
    // Transposed: Keras' kernel is (k, k, filters, in), so fan_in = filters * k * k.
    let mut ct = Conv2DTranspose::new(16, 3).kernel_initializer(Initializer::HeUniform);
    ct.build(&[vec![None, Some(128), None, None]]).unwrap();
    let want = (6.0f64 / (16.0 * 9.0)).sqrt();
    let got = limit_of(&ct);
    assert!(
        got <= want * (1.0 + 1e-6) && got > 0.99 * want,
        "transposed: {got} vs {want}"
    );
    // Depthwise: Keras' kernel is (k, k, C, m): fan_in = C * k * k.
    let mut dw = DepthwiseConv2D::new(3)
        .depth_multiplier(4)
        .depthwise_initializer(Initializer::LecunUniform);
    dw.build(&[vec![None, Some(256), None, None]]).unwrap();
    let want = (3.0f64 / (256.0 * 9.0)).sqrt();
    let got = limit_of(&dw);
    assert!(
        got <= want * (1.0 + 1e-6) && got > 0.99 * want,
        "depthwise: {got} vs {want}"
    );
    // Dense: [in, units].
    let mut d = Dense::new(500).kernel_initializer(Initializer::HeNormal);
    d.build(&[vec![None, Some(400)]]).unwrap();
    let s = stats(&d.weights()[0].to_vec().unwrap());
    check_moments("dense he_normal", &s, 0.0, 2.0 / 400.0);
}

#[test]
fn initializer_configs_round_trip() {
    for init in [
        Initializer::Zeros,
        Initializer::Ones,
        Initializer::Constant(0.25),
        Initializer::GlorotUniform,
        Initializer::GlorotNormal,
        Initializer::HeUniform,
        Initializer::HeNormal,
        Initializer::LecunUniform,
        Initializer::LecunNormal,
        Initializer::RandomUniform {
            min: -1.0,
            max: 2.0,
        },
        Initializer::RandomNormal {
            mean: 0.5,
            stddev: 3.0,
        },
        Initializer::TruncatedNormal {
            mean: -0.5,
            stddev: 0.25,
        },
        Initializer::Orthogonal { gain: 1.5 },
    ] {
        assert_eq!(Initializer::from_json(&init.to_json()).unwrap(), init);
    }
    assert!(Initializer::from_json(&serde_json::json!("bogus")).is_err());
    assert!(Initializer::from_json(&serde_json::json!(3)).is_err());
}
