//! Weight initializers (Keras `initializers`), drawn from the engine's seeded generator.

use crate::{Error, Result};
use ferrovision_tensor::{rng::Rng, Tensor};

/// How a weight's initial values are drawn. Fans are given by the layer (for a conv kernel
/// `[out, in/groups, k...]`: fan_in = in/groups * prod(k), fan_out = out * prod(k)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Initializer {
    Zeros,
    Ones,
    Constant(f32),
    /// U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)). Keras' default for kernels.
    GlorotUniform,
    /// Truncated N(0, sqrt(2 / (fan_in + fan_out))).
    GlorotNormal,
    /// U(-limit, limit), limit = sqrt(6 / fan_in).
    HeUniform,
    /// Truncated N(0, sqrt(2 / fan_in)).
    HeNormal,
    /// U(-limit, limit), limit = sqrt(3 / fan_in).
    LecunUniform,
    /// Truncated N(0, sqrt(1 / fan_in)).
    LecunNormal,
    RandomUniform {
        min: f32,
        max: f32,
    },
    RandomNormal {
        mean: f32,
        stddev: f32,
    },
    /// N(mean, stddev) truncated to two standard deviations.
    TruncatedNormal {
        mean: f32,
        stddev: f32,
    },
    /// A (semi-)orthogonal matrix over the flattened `[shape[0], rest]` view, times `gain`.
    Orthogonal {
        gain: f32,
    },
}

/// Keras' truncated-normal variance-scaling correction: the std of N(0,1) truncated at ±2.
const TRUNC_STD: f32 = 0.879_625_7;

thread_local! {
    /// Weight values this thread may still create (None: no limit); see [`with_weight_budget`].
    static BUDGET: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` (typically building a network from a stored architecture) allowing at most
/// `max_values` weight values to be created by initializers on this thread, so that a file
/// whose architecture asks for more weights than the file holds (`units: 1e9`, a 100000x100000
/// input before a dense layer) is an error before anything that size is allocated.
///
/// ```
/// use ferrovision_nn::initializers::{with_weight_budget, Initializer};
/// let small = with_weight_budget(10, || Initializer::Zeros.init_global(&[2, 5], 5, 2));
/// assert!(small.is_ok());
/// let big = with_weight_budget(10, || Initializer::Zeros.init_global(&[1_000_000_000, 10], 10, 1));
/// assert!(big.unwrap_err().to_string().contains("more weight values"));
/// ```
pub fn with_weight_budget<T>(max_values: usize, f: impl FnOnce() -> Result<T>) -> Result<T> {
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            BUDGET.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BUDGET.with(|b| b.replace(Some(max_values))));
    f()
}

/// Takes `shape`'s values from the budget of [`with_weight_budget`] (checking that the element
/// count does not overflow in any case).
fn charge(shape: &[usize]) -> Result<()> {
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::config(format!("a weight of shape {shape:?} is too large")))?;
    BUDGET.with(|b| match b.get() {
        Some(left) if n > left => Err(Error::config(format!(
            "the architecture needs more weight values than the file holds (a weight of shape \
             {shape:?}: {n} values, {left} left)"
        ))),
        Some(left) => {
            b.set(Some(left - n));
            Ok(())
        }
        None => Ok(()),
    })
}

impl Initializer {
    /// Draws a tensor of `shape`.
    pub fn init(
        self,
        shape: &[usize],
        fan_in: usize,
        fan_out: usize,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        use Initializer::*;
        charge(shape)?;
        let fi = fan_in.max(1) as f32;
        let fo = fan_out.max(1) as f32;
        let uniform = |limit: f32, rng: &mut Rng| Tensor::rand_uniform(shape, -limit, limit, rng);
        let trunc =
            |std: f32, rng: &mut Rng| Tensor::truncated_normal(shape, 0.0, std / TRUNC_STD, rng);
        Ok(match self {
            Zeros => Tensor::zeros(shape),
            Ones => Tensor::ones(shape),
            Constant(c) => Tensor::full(shape, c),
            GlorotUniform => uniform((6.0 / (fi + fo)).sqrt(), rng)?,
            GlorotNormal => trunc((2.0 / (fi + fo)).sqrt(), rng)?,
            HeUniform => uniform((6.0 / fi).sqrt(), rng)?,
            HeNormal => trunc((2.0 / fi).sqrt(), rng)?,
            LecunUniform => uniform((3.0 / fi).sqrt(), rng)?,
            LecunNormal => trunc((1.0 / fi).sqrt(), rng)?,
            RandomUniform { min, max } => Tensor::rand_uniform(shape, min, max, rng)?,
            RandomNormal { mean, stddev } => Tensor::randn(shape, mean, stddev, rng)?,
            TruncatedNormal { mean, stddev } => Tensor::truncated_normal(shape, mean, stddev, rng)?,
            Orthogonal { gain } => orthogonal(shape, gain, rng)?,
        })
    }

    /// Draws from the process-wide generator (seeded by `manual_seed`).
    pub fn init_global(self, shape: &[usize], fan_in: usize, fan_out: usize) -> Result<Tensor> {
        ferrovision_tensor::rng::with_global(|rng| self.init(shape, fan_in, fan_out, rng))
    }

    /// The Keras name (`"glorot_uniform"`, ...).
    pub fn to_json(self) -> serde_json::Value {
        use serde_json::json;
        use Initializer::*;
        match self {
            Zeros => json!("zeros"),
            Ones => json!("ones"),
            Constant(v) => json!({"name": "constant", "value": v}),
            GlorotUniform => json!("glorot_uniform"),
            GlorotNormal => json!("glorot_normal"),
            HeUniform => json!("he_uniform"),
            HeNormal => json!("he_normal"),
            LecunUniform => json!("lecun_uniform"),
            LecunNormal => json!("lecun_normal"),
            RandomUniform { min, max } => json!({"name": "random_uniform", "min": min, "max": max}),
            RandomNormal { mean, stddev } => {
                json!({"name": "random_normal", "mean": mean, "stddev": stddev})
            }
            TruncatedNormal { mean, stddev } => {
                json!({"name": "truncated_normal", "mean": mean, "stddev": stddev})
            }
            Orthogonal { gain } => json!({"name": "orthogonal", "gain": gain}),
        }
    }

    /// Parses a name or a [`Initializer::to_json`] object.
    pub fn from_json(v: &serde_json::Value) -> Result<Self> {
        use Initializer::*;
        let (name, obj) = match v {
            serde_json::Value::String(s) => (s.as_str(), None),
            serde_json::Value::Object(o) => (
                o.get("name").and_then(|n| n.as_str()).unwrap_or(""),
                Some(o),
            ),
            _ => return Err(Error::config(format!("bad initializer config {v}"))),
        };
        // A missing parameter takes Keras' default; one that is present must be a number.
        let f = |k: &str, d: f32| -> Result<f32> {
            match obj.and_then(|o| o.get(k)) {
                None | Some(serde_json::Value::Null) => Ok(d),
                Some(x) => x
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f as f32)
                    .ok_or_else(|| {
                        Error::config(format!(
                            "bad initializer config {v}: '{k}' must be a finite number"
                        ))
                    }),
            }
        };
        Ok(match name {
            "zeros" => Zeros,
            "ones" => Ones,
            "constant" => Constant(f("value", 0.0)?),
            "glorot_uniform" => GlorotUniform,
            "glorot_normal" => GlorotNormal,
            "he_uniform" => HeUniform,
            "he_normal" => HeNormal,
            "lecun_uniform" => LecunUniform,
            "lecun_normal" => LecunNormal,
            "random_uniform" => RandomUniform {
                min: f("min", -0.05)?,
                max: f("max", 0.05)?,
            },
            "random_normal" => RandomNormal {
                mean: f("mean", 0.0)?,
                stddev: f("stddev", 0.05)?,
            },
            "truncated_normal" => TruncatedNormal {
                mean: f("mean", 0.0)?,
                stddev: f("stddev", 0.05)?,
            },
            "orthogonal" => Orthogonal {
                gain: f("gain", 1.0)?,
            },
            other => {
                return Err(Error::config(format!(
                    "unknown initializer '{other}'; expected one of zeros, ones, constant, glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_uniform, lecun_normal, random_uniform, random_normal, truncated_normal, orthogonal"
                )))
            }
        })
    }
}

/// Orthogonal init (Saxe et al.): Gram-Schmidt on Gaussian vectors, which gives an orthonormal
/// frame uniformly distributed over the orthogonal group.
fn orthogonal(shape: &[usize], gain: f32, rng: &mut Rng) -> Result<Tensor> {
    if shape.len() < 2 {
        return Err(Error::config(format!(
            "orthogonal initializer needs a shape of rank >= 2, got {shape:?}"
        )));
    }
    let rows = shape[0];
    let cols: usize = shape[1..].iter().product();
    // Orthonormalise the vectors of the larger side's transpose when rows > cols.
    let (n, m) = if rows < cols {
        (rows, cols)
    } else {
        (cols, rows)
    };
    // n vectors of length m, orthonormal.
    let mut v: Vec<Vec<f64>> = (0..n)
        .map(|_| (0..m).map(|_| rng.normal()).collect())
        .collect();
    for i in 0..n {
        for j in 0..i {
            let d: f64 = (0..m).map(|k| v[i][k] * v[j][k]).sum();
            let (head, tail) = v.split_at_mut(i);
            for (a, b) in tail[0].iter_mut().zip(&head[j]) {
                *a -= d * b;
            }
        }
        let norm: f64 = v[i].iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        v[i].iter_mut().for_each(|x| *x /= norm);
    }
    let mut out = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let x = if rows < cols { v[r][c] } else { v[c][r] };
            out[r * cols + c] = (x * gain as f64) as f32;
        }
    }
    Ok(Tensor::from_vec(out, shape)?)
}

/// Saved as [`Initializer::to_json`] writes it.
impl serde::Serialize for Initializer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// Read as [`Initializer::from_json`] reads it (ours and Keras' serialized form).
impl<'de> serde::Deserialize<'de> for Initializer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Initializer::from_json(&v).map_err(serde::de::Error::custom)
    }
}
