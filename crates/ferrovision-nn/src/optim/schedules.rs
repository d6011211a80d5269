//! Learning-rate schedules: the learning rate as a function of the optimizer step.
//!
//! The formulas follow Keras 3 (`keras.optimizers.schedules`); `StepDecay` follows PyTorch's
//! `StepLR` and `LinearBurnIn` darknet's (YOLO) burn-in. Every schedule serialises to Keras'
//! `{"class_name": ..., "config": {...}}` layout, and Keras' own serialised schedules load.

use crate::{Error, Result};
use serde_json::{json, Map, Value};

/// A learning rate that may change with the optimizer step (0 for the first update).
#[derive(Clone, Debug, PartialEq)]
pub enum LearningRateSchedule {
    /// The same value at every step (serialised as a bare number, like Keras).
    Constant(f64),
    /// `initial * gamma ^ floor(step / step_size)` (PyTorch `StepLR`, counted in steps).
    StepDecay {
        initial_learning_rate: f64,
        step_size: u64,
        gamma: f64,
    },
    /// `initial * decay_rate ^ (step / decay_steps)`, the exponent floored when `staircase`.
    ExponentialDecay {
        initial_learning_rate: f64,
        decay_steps: f64,
        decay_rate: f64,
        staircase: bool,
    },
    /// `values[0]` while `step <= boundaries[0]`, `values[i]` while
    /// `boundaries[i-1] < step <= boundaries[i]`, the last value after the last boundary.
    PiecewiseConstantDecay {
        boundaries: Vec<f64>,
        values: Vec<f64>,
    },
    /// Keras `CosineDecay`: optional linear warmup from `initial_learning_rate` to
    /// `warmup_target` over `warmup_steps`, then a cosine decay over `decay_steps` down to
    /// `alpha` times the peak (the peak is `warmup_target`, or `initial_learning_rate` without
    /// warmup).
    CosineDecay {
        initial_learning_rate: f64,
        decay_steps: f64,
        alpha: f64,
        warmup_target: Option<f64>,
        warmup_steps: f64,
    },
    /// Keras `PolynomialDecay`: `(initial - end) * (1 - step / decay_steps) ^ power + end`.
    PolynomialDecay {
        initial_learning_rate: f64,
        decay_steps: f64,
        end_learning_rate: f64,
        power: f64,
        cycle: bool,
    },
    /// Keras `InverseTimeDecay`: `initial / (1 + decay_rate * step / decay_steps)`.
    InverseTimeDecay {
        initial_learning_rate: f64,
        decay_steps: f64,
        decay_rate: f64,
        staircase: bool,
    },
    /// Darknet (YOLO) burn-in: `schedule(step) * (step / burn_in) ^ power` for the first
    /// `burn_in` steps, then `schedule(step)`. Starting at 0 keeps early large gradients from
    /// blowing up a freshly initialised detector.
    LinearBurnIn {
        burn_in: u64,
        power: f64,
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
    /// `{"class_name": ..., "config": {...}}`.
    pub fn to_json(&self) -> Value {
        let (class, config) = match self {
            Self::Constant(lr) => return json!(lr),
            Self::StepDecay {
                initial_learning_rate,
                step_size,
                gamma,
            } => (
                "StepDecay",
                json!({"initial_learning_rate": initial_learning_rate, "step_size": step_size, "gamma": gamma}),
            ),
            Self::ExponentialDecay {
                initial_learning_rate,
                decay_steps,
                decay_rate,
                staircase,
            } => (
                "ExponentialDecay",
                json!({"initial_learning_rate": initial_learning_rate, "decay_steps": decay_steps,
                       "decay_rate": decay_rate, "staircase": staircase}),
            ),
            Self::PiecewiseConstantDecay { boundaries, values } => (
                "PiecewiseConstantDecay",
                json!({"boundaries": boundaries, "values": values}),
            ),
            Self::CosineDecay {
                initial_learning_rate,
                decay_steps,
                alpha,
                warmup_target,
                warmup_steps,
            } => (
                "CosineDecay",
                json!({"initial_learning_rate": initial_learning_rate, "decay_steps": decay_steps,
                       "alpha": alpha, "warmup_target": warmup_target, "warmup_steps": warmup_steps}),
            ),
            Self::PolynomialDecay {
                initial_learning_rate,
                decay_steps,
                end_learning_rate,
                power,
                cycle,
            } => (
                "PolynomialDecay",
                json!({"initial_learning_rate": initial_learning_rate, "decay_steps": decay_steps,
                       "end_learning_rate": end_learning_rate, "power": power, "cycle": cycle}),
            ),
            Self::InverseTimeDecay {
                initial_learning_rate,
                decay_steps,
                decay_rate,
                staircase,
            } => (
                "InverseTimeDecay",
                json!({"initial_learning_rate": initial_learning_rate, "decay_steps": decay_steps,
                       "decay_rate": decay_rate, "staircase": staircase}),
            ),
            Self::LinearBurnIn {
                burn_in,
                power,
                schedule,
            } => (
                "LinearBurnIn",
                json!({"burn_in": burn_in, "power": power, "schedule": schedule.to_json()}),
            ),
        };
        json!({"class_name": class, "config": config})
    }

    /// Parses [`LearningRateSchedule::to_json`] output or a Keras-serialised schedule
    /// (`module`/`registered_name`/`name` keys are accepted and ignored).
    pub fn from_json(v: &Value) -> Result<Self> {
        if let Some(lr) = v.as_f64() {
            let s = Self::Constant(lr);
            s.validate()?;
            return Ok(s);
        }
        let Some(obj) = v.as_object() else {
            return Err(Error::config(format!(
                "learning rate must be a number or a schedule object {{\"class_name\", \"config\"}}, got {v}"
            )));
        };
        let class = obj
            .get("class_name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::config(format!("learning-rate schedule needs a 'class_name': {v}"))
            })?;
        let empty = Map::new();
        let cfg = match obj.get("config") {
            Some(Value::Object(m)) => m,
            None | Some(Value::Null) => &empty,
            Some(other) => {
                return Err(Error::config(format!(
                    "learning-rate schedule '{class}': 'config' must be an object, got {other}"
                )))
            }
        };
        let f = Fields { class, cfg };
        let s = match class {
            "Constant" => Self::Constant(f.num("learning_rate", None)?),
            "StepDecay" => Self::StepDecay {
                initial_learning_rate: f.num("initial_learning_rate", None)?,
                step_size: f.uint("step_size", None)?,
                gamma: f.num("gamma", Some(0.1))?,
            },
            "ExponentialDecay" => Self::ExponentialDecay {
                initial_learning_rate: f.num("initial_learning_rate", None)?,
                decay_steps: f.num("decay_steps", None)?,
                decay_rate: f.num("decay_rate", None)?,
                staircase: f.boolean("staircase", false)?,
            },
            "PiecewiseConstantDecay" => Self::PiecewiseConstantDecay {
                boundaries: f.nums("boundaries")?,
                values: f.nums("values")?,
            },
            "CosineDecay" => Self::CosineDecay {
                initial_learning_rate: f.num("initial_learning_rate", None)?,
                decay_steps: f.num("decay_steps", None)?,
                alpha: f.num("alpha", Some(0.0))?,
                warmup_target: f.opt_num("warmup_target")?,
                warmup_steps: f.num("warmup_steps", Some(0.0))?,
            },
            "PolynomialDecay" => Self::PolynomialDecay {
                initial_learning_rate: f.num("initial_learning_rate", None)?,
                decay_steps: f.num("decay_steps", None)?,
                end_learning_rate: f.num("end_learning_rate", Some(0.0001))?,
                power: f.num("power", Some(1.0))?,
                cycle: f.boolean("cycle", false)?,
            },
            "InverseTimeDecay" => Self::InverseTimeDecay {
                initial_learning_rate: f.num("initial_learning_rate", None)?,
                decay_steps: f.num("decay_steps", None)?,
                decay_rate: f.num("decay_rate", None)?,
                staircase: f.boolean("staircase", false)?,
            },
            "LinearBurnIn" => Self::LinearBurnIn {
                burn_in: f.uint("burn_in", None)?,
                power: f.num("power", Some(4.0))?,
                schedule: Box::new(Self::from_json(cfg.get("schedule").ok_or_else(|| {
                    Error::config("learning-rate schedule 'LinearBurnIn': missing 'schedule'")
                })?)?),
            },
            other => {
                return Err(Error::config(format!(
                    "unknown learning-rate schedule '{other}' (known: Constant, StepDecay, ExponentialDecay, \
                     PiecewiseConstantDecay, CosineDecay, PolynomialDecay, InverseTimeDecay, LinearBurnIn)"
                )))
            }
        };
        s.validate()?;
        Ok(s)
    }
}

/// Typed access to a schedule's config fields with messages naming the schedule and field.
struct Fields<'a> {
    class: &'a str,
    cfg: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn err(&self, key: &str, want: &str, got: Option<&Value>) -> Error {
        match got {
            None => Error::config(format!(
                "learning-rate schedule '{}': missing '{key}' ({want})",
                self.class
            )),
            Some(v) => Error::config(format!(
                "learning-rate schedule '{}': '{key}' must be {want}, got {v}",
                self.class
            )),
        }
    }

    fn num(&self, key: &str, default: Option<f64>) -> Result<f64> {
        match (self.cfg.get(key), default) {
            (None | Some(Value::Null), Some(d)) => Ok(d),
            (Some(v), _) if v.is_number() => Ok(v.as_f64().unwrap_or(f64::NAN)),
            (got, _) => Err(self.err(key, "a number", got)),
        }
    }

    fn opt_num(&self, key: &str) -> Result<Option<f64>> {
        match self.cfg.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(key, "a number or null", Some(v))),
        }
    }

    fn uint(&self, key: &str, default: Option<u64>) -> Result<u64> {
        match (self.cfg.get(key), default) {
            (None | Some(Value::Null), Some(d)) => Ok(d),
            (Some(v), _) => match (v.as_u64(), v.as_f64()) {
                (Some(n), _) => Ok(n),
                // Accept 30.0 (Python floats) but not 30.5.
                (None, Some(x)) if x >= 0.0 && x.fract() == 0.0 && x < 2f64.powi(53) => {
                    Ok(x as u64)
                }
                _ => Err(self.err(key, "a non-negative integer", Some(v))),
            },
            (None, None) => Err(self.err(key, "a non-negative integer", None)),
        }
    }

    fn boolean(&self, key: &str, default: bool) -> Result<bool> {
        match self.cfg.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            got => Err(self.err(key, "true or false", got)),
        }
    }

    fn nums(&self, key: &str) -> Result<Vec<f64>> {
        let got = self.cfg.get(key);
        let arr = got
            .and_then(Value::as_array)
            .ok_or_else(|| self.err(key, "a list of numbers", got))?;
        arr.iter()
            .map(|x| {
                x.as_f64()
                    .ok_or_else(|| self.err(key, "a list of numbers", got))
            })
            .collect()
    }
}
