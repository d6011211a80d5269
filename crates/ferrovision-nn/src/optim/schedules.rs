//! Learning-rate schedules: the learning rate as a function of the optimizer step.
//!
//! The formulas follow Keras 3 (`keras.optimizers.schedules`); `StepDecay` follows PyTorch's
//! `StepLR` and `LinearBurnIn` darknet's (YOLO) burn-in. Every schedule serialises to Keras'
//! `{"class_name": ..., "config": {...}}` layout, and Keras' own serialised schedules load.
//!
//! Serialisation is serde-derived: the enum derives the adjacently tagged
//! `{"class_name", "config"}` form (`remote = "Self"` turns the derive into inherent functions),
//! and the hand-written `Serialize`/`Deserialize` impls only add the edge: a constant is a bare
//! number, and reading checks the class name, treats `null` keys as absent (their defaults),
//! rewords serde's errors to name the schedule and key, and validates.

use super::config::{flag, typed};
use crate::registry::{culprit_by, to_config};
use crate::{Error, Result};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Map, Value};

/// A learning rate that may change with the optimizer step (0 for the first update).
///
/// Read and write it through serde's traits (`serde_json::from_value`, a derived config
/// field) or [`LearningRateSchedule::from_json`] / [`LearningRateSchedule::to_json`]: the
/// inherent `LearningRateSchedule::serialize` / `deserialize` that `remote = "Self"` generates
/// are the bare tagged form only (no bare-number constant, no validation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", tag = "class_name", content = "config")]
pub enum LearningRateSchedule {
    /// The same value at every step (serialised as a bare number, like Keras).
    #[serde(serialize_with = "constant_out", deserialize_with = "constant_in")]
    Constant(f64),
    /// `initial * gamma ^ floor(step / step_size)` (PyTorch `StepLR`, counted in steps).
    StepDecay {
        #[serde(deserialize_with = "number")]
        initial_learning_rate: f64,
        #[serde(deserialize_with = "uint")]
        step_size: u64,
        #[serde(default = "default::gamma", deserialize_with = "number")]
        gamma: f64,
    },
    /// `initial * decay_rate ^ (step / decay_steps)`, the exponent floored when `staircase`.
    ExponentialDecay {
        #[serde(deserialize_with = "number")]
        initial_learning_rate: f64,
        #[serde(deserialize_with = "number")]
        decay_steps: f64,
        #[serde(deserialize_with = "number")]
        decay_rate: f64,
        #[serde(default, deserialize_with = "flag")]
        staircase: bool,
    },
    /// `values[0]` while `step <= boundaries[0]`, `values[i]` while
    /// `boundaries[i-1] < step <= boundaries[i]`, the last value after the last boundary.
    PiecewiseConstantDecay {
        #[serde(deserialize_with = "numbers")]
        boundaries: Vec<f64>,
        #[serde(deserialize_with = "numbers")]
        values: Vec<f64>,
    },
    /// Keras `CosineDecay`: optional linear warmup from `initial_learning_rate` to
    /// `warmup_target` over `warmup_steps`, then a cosine decay over `decay_steps` down to
    /// `alpha` times the peak (the peak is `warmup_target`, or `initial_learning_rate` without
    /// warmup).
    CosineDecay {
        #[serde(deserialize_with = "number")]
        initial_learning_rate: f64,
        #[serde(deserialize_with = "number")]
        decay_steps: f64,
        #[serde(default, deserialize_with = "number")]
        alpha: f64,
        #[serde(default, deserialize_with = "some_number")]
        warmup_target: Option<f64>,
        #[serde(default, deserialize_with = "number")]
        warmup_steps: f64,
    },
    /// Keras `PolynomialDecay`: `(initial - end) * (1 - step / decay_steps) ^ power + end`.
    PolynomialDecay {
        #[serde(deserialize_with = "number")]
        initial_learning_rate: f64,
        #[serde(deserialize_with = "number")]
        decay_steps: f64,
        #[serde(default = "default::end_learning_rate", deserialize_with = "number")]
        end_learning_rate: f64,
        #[serde(default = "default::polynomial_power", deserialize_with = "number")]
        power: f64,
        #[serde(default, deserialize_with = "flag")]
        cycle: bool,
    },
    /// Keras `InverseTimeDecay`: `initial / (1 + decay_rate * step / decay_steps)`.
    InverseTimeDecay {
        #[serde(deserialize_with = "number")]
        initial_learning_rate: f64,
        #[serde(deserialize_with = "number")]
        decay_steps: f64,
        #[serde(deserialize_with = "number")]
        decay_rate: f64,
        #[serde(default, deserialize_with = "flag")]
        staircase: bool,
    },
    /// Darknet (YOLO) burn-in: `schedule(step) * (step / burn_in) ^ power` for the first
    /// `burn_in` steps, then `schedule(step)`. Starting at 0 keeps early large gradients from
    /// blowing up a freshly initialised detector.
    LinearBurnIn {
        #[serde(deserialize_with = "uint")]
        burn_in: u64,
        #[serde(default = "default::burn_in_power", deserialize_with = "number")]
        power: f64,
        #[serde(deserialize_with = "nested")]
        schedule: Box<LearningRateSchedule>,
    },
}

impl From<f64> for LearningRateSchedule {
    fn from(lr: f64) -> Self {
        LearningRateSchedule::Constant(lr)
    }
}

impl LearningRateSchedule {
    /// `initial * gamma ^ floor(step / step_size)`.
    pub fn step_decay(initial_learning_rate: f64, step_size: u64, gamma: f64) -> Self {
        Self::StepDecay {
            initial_learning_rate,
            step_size,
            gamma,
        }
    }

    /// Keras `ExponentialDecay(initial, decay_steps, decay_rate, staircase)`.
    pub fn exponential_decay(
        initial_learning_rate: f64,
        decay_steps: f64,
        decay_rate: f64,
        staircase: bool,
    ) -> Self {
        Self::ExponentialDecay {
            initial_learning_rate,
            decay_steps,
            decay_rate,
            staircase,
        }
    }

    /// Keras `PiecewiseConstantDecay(boundaries, values)`; `values` has one more entry.
    pub fn piecewise_constant(boundaries: Vec<f64>, values: Vec<f64>) -> Self {
        Self::PiecewiseConstantDecay { boundaries, values }
    }

    /// Keras `CosineDecay(initial, decay_steps, alpha)` without warmup.
    pub fn cosine_decay(initial_learning_rate: f64, decay_steps: f64, alpha: f64) -> Self {
        Self::CosineDecay {
            initial_learning_rate,
            decay_steps,
            alpha,
            warmup_target: None,
            warmup_steps: 0.0,
        }
    }

    /// Keras `CosineDecay(initial, decay_steps, alpha, warmup_target=, warmup_steps=)`.
    pub fn cosine_decay_with_warmup(
        initial_learning_rate: f64,
        decay_steps: f64,
        alpha: f64,
        warmup_target: f64,
        warmup_steps: f64,
    ) -> Self {
        Self::CosineDecay {
            initial_learning_rate,
            decay_steps,
            alpha,
            warmup_target: Some(warmup_target),
            warmup_steps,
        }
    }

    /// Darknet burn-in in front of `schedule` (a number or another schedule); darknet's
    /// default `power` is 4.
    pub fn linear_burn_in(
        burn_in: u64,
        power: f64,
        schedule: impl Into<LearningRateSchedule>,
    ) -> Self {
        Self::LinearBurnIn {
            burn_in,
            power,
            schedule: Box::new(schedule.into()),
        }
    }

    /// The learning rate at optimizer step `step` (0 for the first update).
    pub fn value(&self, step: u64) -> f64 {
        let s = step as f64;
        match self {
            Self::Constant(lr) => *lr,
            Self::StepDecay {
                initial_learning_rate,
                step_size,
                gamma,
            } => {
                let k = step / (*step_size).max(1);
                initial_learning_rate * gamma.powf(k as f64)
            }
            Self::ExponentialDecay {
                initial_learning_rate,
                decay_steps,
                decay_rate,
                staircase,
            } => {
                let mut p = s / decay_steps;
                if *staircase {
                    p = p.floor();
                }
                initial_learning_rate * decay_rate.powf(p)
            }
            Self::PiecewiseConstantDecay { boundaries, values } => {
                let i = boundaries.iter().take_while(|&&b| s > b).count();
                values.get(i).or(values.last()).copied().unwrap_or(0.0)
            }
            Self::CosineDecay {
                initial_learning_rate,
                decay_steps,
                alpha,
                warmup_target,
                warmup_steps,
            } => {
                let decay = |step: f64, from: f64| {
                    let frac = step / decay_steps;
                    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * frac).cos());
                    from * ((1.0 - alpha) * cosine + alpha)
                };
                match warmup_target {
                    None => decay(s.min(*decay_steps), *initial_learning_rate),
                    Some(target) => {
                        let s = s.min(decay_steps + warmup_steps);
                        if s < *warmup_steps {
                            (target - initial_learning_rate) * (s / warmup_steps)
                                + initial_learning_rate
                        } else {
                            decay(s - warmup_steps, *target)
                        }
                    }
                }
            }
            Self::PolynomialDecay {
                initial_learning_rate,
                decay_steps,
                end_learning_rate,
                power,
                cycle,
            } => {
                let (s, ds) = if *cycle {
                    let mult = if s == 0.0 {
                        1.0
                    } else {
                        (s / decay_steps).ceil()
                    };
                    (s, decay_steps * mult)
                } else {
                    (s.min(*decay_steps), *decay_steps)
                };
                let p = s / ds;
                (initial_learning_rate - end_learning_rate) * (1.0 - p).powf(*power)
                    + end_learning_rate
            }
            Self::InverseTimeDecay {
                initial_learning_rate,
                decay_steps,
                decay_rate,
                staircase,
            } => {
                let mut p = s / decay_steps;
                if *staircase {
                    p = p.floor();
                }
                initial_learning_rate / (1.0 + decay_rate * p)
            }
            Self::LinearBurnIn {
                burn_in,
                power,
                schedule,
            } => {
                let lr = schedule.value(step);
                if step < *burn_in {
                    lr * (s / *burn_in as f64).powf(*power)
                } else {
                    lr
                }
            }
        }
    }

    /// Checks the hyper-parameters (positive step counts, matching lengths, finite values).
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::config(format!("learning-rate schedule: {msg}")));
        let finite = |name: &str, v: f64| -> Result<()> {
            if v.is_finite() {
                Ok(())
            } else {
                bad(format!("'{name}' must be a finite number, got {v}"))
            }
        };
        let positive = |name: &str, v: f64| -> Result<()> {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                bad(format!("'{name}' must be > 0, got {v}"))
            }
        };
        match self {
            Self::Constant(lr) => finite("learning_rate", *lr),
            Self::StepDecay {
                initial_learning_rate,
                step_size,
                gamma,
            } => {
                finite("initial_learning_rate", *initial_learning_rate)?;
                finite("gamma", *gamma)?;
                positive("step_size", *step_size as f64)
            }
            Self::ExponentialDecay {
                initial_learning_rate,
                decay_steps,
                decay_rate,
                ..
            }
            | Self::InverseTimeDecay {
                initial_learning_rate,
                decay_steps,
                decay_rate,
                ..
            } => {
                finite("initial_learning_rate", *initial_learning_rate)?;
                finite("decay_rate", *decay_rate)?;
                positive("decay_steps", *decay_steps)
            }
            Self::PiecewiseConstantDecay { boundaries, values } => {
                if values.len() != boundaries.len() + 1 {
                    return bad(format!(
                        "PiecewiseConstantDecay needs one more value than boundaries, got {} boundaries and {} values",
                        boundaries.len(),
                        values.len()
                    ));
                }
                for v in boundaries.iter().chain(values) {
                    finite("boundaries/values", *v)?;
                }
                if boundaries.windows(2).any(|w| w[0] >= w[1]) {
                    return bad(format!(
                        "PiecewiseConstantDecay boundaries must increase, got {boundaries:?}"
                    ));
                }
                Ok(())
            }
            Self::CosineDecay {
                initial_learning_rate,
                decay_steps,
                alpha,
                warmup_target,
                warmup_steps,
            } => {
                finite("initial_learning_rate", *initial_learning_rate)?;
                finite("alpha", *alpha)?;
                positive("decay_steps", *decay_steps)?;
                if let Some(t) = warmup_target {
                    finite("warmup_target", *t)?;
                }
                if !(warmup_steps.is_finite() && *warmup_steps >= 0.0) {
                    return bad(format!("'warmup_steps' must be >= 0, got {warmup_steps}"));
                }
                Ok(())
            }
            Self::PolynomialDecay {
                initial_learning_rate,
                decay_steps,
                end_learning_rate,
                power,
                ..
            } => {
                finite("initial_learning_rate", *initial_learning_rate)?;
                finite("end_learning_rate", *end_learning_rate)?;
                finite("power", *power)?;
                positive("decay_steps", *decay_steps)
            }
            Self::LinearBurnIn {
                burn_in,
                power,
                schedule,
            } => {
                positive("burn_in", *burn_in as f64)?;
                positive("power", *power)?;
                schedule.validate()
            }
        }
    }

    /// Keras' serialised form: a bare number for a constant, else
    /// `{"class_name": ..., "config": {...}}` (the [`Serialize`] impl as a JSON value).
    pub fn to_json(&self) -> Value {
        to_config(self)
    }

    /// Parses [`LearningRateSchedule::to_json`] output or a Keras-serialised schedule
    /// (`module`/`registered_name`/`name` keys are accepted and ignored; a `null` key takes
    /// its default), then validates it. Errors name the schedule class and the key.
    pub fn from_json(v: &Value) -> Result<Self> {
        let s = match v {
            Value::Number(n) => Self::Constant(n.as_f64().unwrap_or(f64::NAN)),
            Value::Object(obj) => Self::from_object(v, obj)?,
            _ => {
                return Err(Error::config(format!(
                    "learning rate must be a number or a schedule object {{\"class_name\", \"config\"}}, got {v}"
                )))
            }
        };
        s.validate()?;
        Ok(s)
    }

    /// The `{"class_name", "config"}` envelope: checks the class, then runs the derived
    /// deserialiser on the config without its `null` keys and rewords its errors.
    fn from_object(v: &Value, obj: &Map<String, Value>) -> Result<Self> {
        let class = obj
            .get("class_name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::config(format!("learning-rate schedule needs a 'class_name': {v}"))
            })?;
        if !CLASSES.contains(&class) {
            return Err(Error::config(format!(
                "unknown learning-rate schedule '{class}' (known: {})",
                CLASSES.join(", ")
            )));
        }
        let cfg: Map<String, Value> = match obj.get("config") {
            Some(Value::Object(m)) => m
                .iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), x.clone()))
                .collect(),
            None | Some(Value::Null) => Map::new(),
            Some(other) => {
                return Err(Error::config(format!(
                    "learning-rate schedule '{class}': 'config' must be an object, got {other}"
                )))
            }
        };
        let cfg = Value::Object(cfg);
        // The derived (inherent, `remote = "Self"`) deserialiser, not the trait's edge.
        let parse = |cfg: &Value| {
            LearningRateSchedule::deserialize(&json!({"class_name": class, "config": cfg}))
        };
        parse(&cfg).map_err(|e| {
            let msg = e.to_string();
            let here = format!("learning-rate schedule '{class}'");
            if let Some(key) = msg
                .strip_prefix("missing field `")
                .and_then(|k| k.strip_suffix('`'))
            {
                return Error::config(format!("{here}: missing '{key}' ({})", wanted(key)));
            }
            match culprit_by(&cfg, |c| parse(c).map(drop)) {
                Some(key) => Error::config(format!("{here}: '{key}' {msg}")),
                None => Error::config(format!("{here}: {msg}")),
            }
        })
    }
}

/// The class names [`LearningRateSchedule::from_json`] accepts (one per variant).
const CLASSES: &[&str] = &[
    "Constant",
    "StepDecay",
    "ExponentialDecay",
    "PiecewiseConstantDecay",
    "CosineDecay",
    "PolynomialDecay",
    "InverseTimeDecay",
    "LinearBurnIn",
];

impl Serialize for LearningRateSchedule {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Constant(lr) => lr.serialize(s),
            // The derived (inherent) serialiser: `{"class_name", "config"}`.
            _ => LearningRateSchedule::serialize(self, s),
        }
    }
}

impl<'de> Deserialize<'de> for LearningRateSchedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Self::from_json(&v).map_err(D::Error::custom)
    }
}

/// Keras' defaults for optional keys (the others default to 0, false or none).
mod default {
    pub fn gamma() -> f64 {
        0.1
    }
    pub fn end_learning_rate() -> f64 {
        0.0001
    }
    pub fn polynomial_power() -> f64 {
        1.0
    }
    /// Darknet's burn-in exponent.
    pub fn burn_in_power() -> f64 {
        4.0
    }
}

// What a key's value must be: the field helpers' type errors and the "missing" errors say it.
const NUMBER: &str = "a number";
const INTEGER: &str = "a non-negative integer";
const NUMBERS: &str = "a list of numbers";
const SCHEDULE: &str = "a number or a schedule";

/// The wanted value of a required key, for "missing 'key' (...)".
fn wanted(key: &str) -> &'static str {
    match key {
        "step_size" | "burn_in" => INTEGER,
        "boundaries" | "values" => NUMBERS,
        "schedule" => SCHEDULE,
        _ => NUMBER,
    }
}

fn number<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    typed(d, NUMBER, Value::as_f64)
}

fn some_number<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    typed(d, "a number or null", |v| v.as_f64().map(Some))
}

fn uint<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    typed(d, INTEGER, |v| {
        // Accept 30.0 (Python floats) but not 30.5.
        v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|x| *x >= 0.0 && x.fract() == 0.0 && *x < 2f64.powi(53))
                .map(|x| x as u64)
        })
    })
}

fn numbers<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<f64>, D::Error> {
    typed(d, NUMBERS, |v| {
        v.as_array()?.iter().map(Value::as_f64).collect()
    })
}

/// A learning rate inside another config (an optimizer's, `LinearBurnIn`'s): a number or a
/// schedule, read and validated by the [`Deserialize`] impl.
pub(crate) fn schedule<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<LearningRateSchedule, D::Error> {
    <LearningRateSchedule as Deserialize>::deserialize(d)
        .map_err(|e| D::Error::custom(format!("must be {SCHEDULE}: {e}")))
}

fn nested<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Box<LearningRateSchedule>, D::Error> {
    schedule(d).map(Box::new)
}

/// `Constant`'s config in the tagged form: `{"learning_rate": x}`.
#[derive(Serialize, Deserialize)]
struct ConstantConfig {
    #[serde(deserialize_with = "number")]
    learning_rate: f64,
}

fn constant_out<S: Serializer>(lr: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    ConstantConfig { learning_rate: *lr }.serialize(s)
}

fn constant_in<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    ConstantConfig::deserialize(d).map(|c| c.learning_rate)
}
