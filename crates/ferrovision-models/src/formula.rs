//! Deterministic "formula" weights and inputs: tensors both ferrovision and a reference
//! framework can compute from a weight's name, so output-equality fixtures need no committed
//! weights (VGG-19 alone is 548 MB). The definition, shared with
//! `reference/zoo/formula_weights.py` (which fills torchvision/Keras models the same way), is
//! over ferrovision weight names and the stored layout: for a tensor `name` of `n` elements,
//! `u_i = (splitmix64(fnv1a32(name) + i) >> 11) / 2^53`, `s_i = sin(2 pi u_i)` (f64, then
//! f32), then by the name's last segment `gamma` 1 + 0.2 s, `beta`/`bias`/`moving_mean`
//! 0.1 s, `moving_variance` 1 + 0.25 s, other weights s sqrt(4 / fan_in), and the input
//! batch (`name = "input"`) s itself. Successive values are independent (a plain sinusoid of
//! `i` would make every weight matrix rank 2).
//!
//! ```
//! use ferrovision_models::{build, formula, ModelOptions};
//! let net = build("resnet20", &ModelOptions::new(&[3, 32, 32], 10))?;
//! formula::formula_fill(net.as_ref())?;
//! let x = formula::formula_input(&[1, 3, 32, 32])?;
//! assert_eq!(x.shape(), &[1, 3, 32, 32]);
//! # Ok::<(), ferrovision_nn::Error>(())
//! ```

use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{Network, NetworkExt, Result};

/// FNV-1a, 32 bits, of `s`'s UTF-8 bytes.
pub fn fnv1a32(s: &str) -> u32 {
    let mut h: u32 = 0x811C_9DC5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// SplitMix64's output function (wrapping arithmetic).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The formula tensor called `name` (our name) of `shape` (our layout), as float32 values.
pub fn formula(name: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let seed = fnv1a32(name) as u64;
    let last = name.rsplit('/').next().unwrap_or(name);
    let fan_in = match shape.len() {
        2 => shape[0],
        r if r > 2 => n / shape[0],
        _ => n,
    } as f64;
    (0..n)
        .map(|i| {
            let u = (splitmix64(seed.wrapping_add(i as u64)) >> 11) as f64 * (0.5f64).powi(53);
            let s = (2.0 * std::f64::consts::PI * u).sin();
            let v = if name == "input" {
                s
            } else {
                match last {
                    "gamma" => 1.0 + 0.2 * s,
                    "beta" | "bias" | "moving_mean" => 0.1 * s,
                    "moving_variance" => 1.0 + 0.25 * s,
                    _ => s * (4.0 / fan_in).sqrt(),
                }
            };
            v as f32
        })
        .collect()
}

/// Fills every weight of `net` (trainable or not) with the formula of its name.
pub fn formula_fill(net: &dyn Network) -> Result<()> {
    for (name, p) in net.named_weights() {
        p.assign(&formula(&name, &p.shape()))?;
    }
    Ok(())
}

/// The formula input batch `[batch, c, h, w]`.
pub fn formula_input(shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::from_vec(formula("input", shape), shape)?)
}
