//! The training-recipe options of `train` (what a Keras/torchvision user tunes beyond the
//! optimizer and learning rate): weight decay, momentum, a learning-rate schedule, frozen layers,
//! a warm start from a file by layer name and a smaller learning rate for the warm-started
//! (pretrained) backbone. [`Recipe`] is stored in `run.json`; [`build_optimizer`] and
//! [`prepare_model`] apply it to a new run (a resumed run takes all of it from its checkpoint:
//! the optimizer with its schedule and decay, the frozen weights and the multipliers).
//!
//! Weight decay follows PyTorch's `weight_decay`: coupled L2 (`g += wd * w`, which momentum
//! then carries) for every optimizer but `adamw`, whose decay is decoupled (`w -= lr * wd * w`).
//! Schedules count optimizer steps: `cosine` decays over all steps of the run (after an
//! optional linear warmup from 0), `step:E1,E2` multiplies the rate by 0.1 from epoch E1 on
//! and again from E2 on (1-based epoch numbers as printed: `step:100,150` trains epochs
//! 1-100 at lr, 101-150 at lr/10, then lr/100).

use crate::error::{CliError, Result};
use clap::Args;
use ferrovision_nn::optim::{optimizer_by_name, optimizer_from_config, LearningRateSchedule};
use ferrovision_nn::weights::load_weights_by_name;
use ferrovision_nn::{LayerSelector, NetworkExt, Optimizer};
use ferrovision_train::Model;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// `train`'s recipe options.
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[serde(default)]
pub struct Recipe {
    /// Weight decay: coupled L2 as PyTorch's `weight_decay` (sgd, momentum, nesterov, adam,
    /// ...), decoupled for adamw (e.g. 1e-4 for ResNets on CIFAR-10)
    #[arg(long, value_name = "F")]
    pub weight_decay: Option<f64>,
    /// Momentum of sgd/momentum/nesterov (and rmsprop) [default: 0.9 for momentum and
    /// nesterov, 0 for sgd]
    #[arg(long, value_name = "F")]
    pub momentum: Option<f64>,
    /// Learning-rate schedule: constant, cosine (decays to 0 over all steps of the --epochs
    /// given when the run starts) or step:E1,E2,... (x0.1 after each of those epochs)
    /// [default: constant]
    #[arg(long, value_name = "SCHEDULE")]
    pub schedule: Option<Schedule>,
    /// Linear warmup from 0 over the first N epochs (with --schedule cosine)
    #[arg(long, value_name = "N")]
    pub warmup_epochs: Option<usize>,
    /// Freeze layers (repeatable): name:PATH (one layer), prefix:PATH or just PATH (a layer and
    /// everything under it), class:TYPE (e.g. class:BatchNormalization), all; layer paths are
    /// the weight names without the weight (see `summary`). A frozen BatchNormalization uses its
    /// moving statistics, as in Keras
    #[arg(long, value_name = "SELECTOR")]
    pub freeze: Vec<String>,
    /// Warm start: copy every weight of this model or weights file whose layer name and shape
    /// match (the rest keeps its fresh initialisation); prints what was loaded and skipped
    #[arg(long, value_name = "FILE")]
    pub init_from: Option<PathBuf>,
    /// Pretrained backbone: load every weight of the --model's headless network from these
    /// weights (a cache name such as efficientnet_lite0, or a file: PyTorch .pth, Keras .h5, TF.js manifest .json, ONNX, safetensors);
    /// the classifier stays freshly initialised for the data's classes. The images must be
    /// prepared as the weights expect (normalize in --augment)
    #[arg(long, value_name = "NAME|FILE", conflicts_with = "init_from")]
    pub pretrained: Option<String>,
    /// Learning-rate multiplier for the weights --init-from or --pretrained loaded (the
    /// pretrained backbone), e.g. 0.1 to fine-tune it more gently than the new head
    #[arg(long, value_name = "F")]
    pub backbone_lr_multiplier: Option<f64>,
}

impl Recipe {
    /// True when no option is set.
    pub fn is_empty(&self) -> bool {
        *self == Recipe::default()
    }

    /// Checks values that need no model (selectors parse, numbers in range).
    pub fn validate(&self) -> Result<()> {
        for s in &self.freeze {
            s.parse::<LayerSelector>()
                .map_err(|e| CliError::new(format!("--freeze {s}: {e}")))?;
        }
        let check = |flag: &str, v: Option<f64>, ok: fn(f64) -> bool, want: &str| match v {
            Some(x) if !ok(x) => Err(CliError::new(format!("{flag} must be {want}, got {x}"))),
            _ => Ok(()),
        };
        check(
            "--weight-decay",
            self.weight_decay,
            |x| x.is_finite() && x >= 0.0,
            "a number >= 0",
        )?;
        check(
            "--momentum",
            self.momentum,
            |x| (0.0..=1.0).contains(&x),
            "in [0, 1]",
        )?;
        check(
            "--backbone-lr-multiplier",
            self.backbone_lr_multiplier,
            |x| x.is_finite() && x >= 0.0,
            "a number >= 0",
        )?;
        if self.backbone_lr_multiplier.is_some()
            && self.init_from.is_none()
            && self.pretrained.is_none()
        {
            return Err(CliError::new(
                "--backbone-lr-multiplier needs --init-from or --pretrained",
            ));
        }
        if self.warmup_epochs.is_some() && self.schedule != Some(Schedule::Cosine) {
            return Err(CliError::new("--warmup-epochs needs --schedule cosine"));
        }
        Ok(())
    }

    /// One line for the start of a run (empty without options).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.schedule {
            parts.push(format!("schedule {s}"));
        }
        if let Some(w) = self.warmup_epochs {
            parts.push(format!("warmup {w} epoch(s)"));
        }
        if let Some(m) = self.momentum {
            parts.push(format!("momentum {m}"));
        }
        if let Some(w) = self.weight_decay {
            parts.push(format!("weight decay {w}"));
        }
        for f in &self.freeze {
            parts.push(format!("freeze {f}"));
        }
        if let Some(p) = &self.init_from {
            parts.push(format!("init from {}", p.display()));
        }
        if let Some(p) = &self.pretrained {
            parts.push(format!("pretrained {p}"));
        }
        if let Some(m) = self.backbone_lr_multiplier {
            parts.push(format!("backbone lr x{m}"));
        }
        parts.join(", ")
    }
}

/// A learning-rate schedule of `--schedule`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Schedule {
    /// The learning rate throughout.
    Constant,
    /// Cosine decay to 0 over all steps.
    Cosine,
    /// x0.1 after each of these (1-based, increasing) epochs.
    Step(Vec<usize>),
}

impl FromStr for Schedule {
    type Err = CliError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "constant" => Ok(Schedule::Constant),
            "cosine" => Ok(Schedule::Cosine),
            other => {
                let bad = || {
                    CliError::new(format!(
                        "schedule '{s}': expected constant, cosine or step:E1,E2,... (increasing \
                         epoch numbers >= 1)"
                    ))
                };
                let list = other.strip_prefix("step:").ok_or_else(bad)?;
                let epochs: Vec<usize> = list
                    .split(',')
                    .map(|e| e.trim().parse::<usize>().map_err(|_| bad()))
                    .collect::<Result<_>>()?;
                if epochs.is_empty() || epochs[0] == 0 || epochs.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(bad());
                }
                Ok(Schedule::Step(epochs))
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Constant => f.write_str("constant"),
            Schedule::Cosine => f.write_str("cosine"),
            Schedule::Step(e) => {
                let list: Vec<String> = e.iter().map(|x| x.to_string()).collect();
                write!(f, "step:{}", list.join(","))
            }
        }
    }
}

impl From<Schedule> for String {
    fn from(s: Schedule) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for Schedule {
    type Error = CliError;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl Schedule {
    /// The schedule for a run of `epochs` epochs of `steps_per_epoch` optimizer steps each.
    pub fn build(
        &self,
        lr: f64,
        steps_per_epoch: usize,
        epochs: usize,
        warmup_epochs: usize,
    ) -> Result<LearningRateSchedule> {
        let spe = steps_per_epoch.max(1) as f64;
        Ok(match self {
            Schedule::Constant => LearningRateSchedule::Constant(lr),
            Schedule::Cosine => {
                let total = spe * epochs as f64;
                let warm = spe * warmup_epochs as f64;
                if warm >= total {
                    return Err(CliError::new(format!(
                        "--warmup-epochs {warmup_epochs} leaves no epoch of the {epochs} to decay over"
                    )));
                }
                if warmup_epochs == 0 {
                    LearningRateSchedule::cosine_decay(lr, total, 0.0)
                } else {
                    LearningRateSchedule::cosine_decay_with_warmup(0.0, total - warm, 0.0, lr, warm)
                }
            }
            Schedule::Step(epochs) => {
                // Keras' piecewise constant takes value i + 1 once step > boundary i: the first
                // step of epoch E + 1 (1-based) is step E * spe.
                let boundaries = epochs.iter().map(|&e| e as f64 * spe - 1.0).collect();
                let values = (0..=epochs.len())
                    .map(|i| lr * 0.1f64.powi(i as i32))
                    .collect();
                LearningRateSchedule::piecewise_constant(boundaries, values)
            }
        })
    }
}

/// The optimizer `name` with the recipe's momentum, weight decay and schedule.
pub fn build_optimizer(
    name: &str,
    lr: Option<f64>,
    recipe: &Recipe,
    steps_per_epoch: usize,
    epochs: usize,
) -> Result<Box<dyn Optimizer>> {
    let err = |e: ferrovision_nn::Error| CliError::new(e.to_string());
    let mut opt = optimizer_by_name(name, lr).map_err(err)?;
    if recipe.momentum.is_some() || recipe.weight_decay.is_some() {
        // The hyper-parameters through the optimizer's own config, so every optimizer's keys
        // and checks apply.
        let mut cfg = opt.config();
        let c = cfg["config"]
            .as_object_mut()
            .ok_or_else(|| CliError::new("optimizer config without 'config'"))?;
        if let Some(m) = recipe.momentum {
            if !c.contains_key("momentum") {
                return Err(CliError::new(format!(
                    "--momentum: the {name} optimizer has no momentum (use sgd, momentum, \
                     nesterov or rmsprop)"
                )));
            }
            c.insert("momentum".into(), m.into());
        }
        if let Some(wd) = recipe.weight_decay {
            let key = if name == "adamw" {
                "weight_decay"
            } else {
                "coupled_weight_decay"
            };
            c.insert(key.into(), wd.into());
        }
        opt = optimizer_from_config(&cfg).map_err(err)?;
    }
    if let Some(s) = &recipe.schedule {
        let lr = opt.learning_rate();
        let sched = s.build(
            lr,
            steps_per_epoch,
            epochs,
            recipe.warmup_epochs.unwrap_or(0),
        )?;
        opt.set_schedule(sched).map_err(err)?;
    }
    Ok(opt)
}

/// Applies the recipe's warm start or pretrained backbone, frozen layers and backbone
/// multiplier to a new model of the zoo architecture `arch` built for `input_shape` and
/// `classes` (before it is compiled); returns the lines to print.
pub fn prepare_model(
    model: &mut Model,
    recipe: &Recipe,
    arch: &str,
    input_shape: &[usize],
    classes: usize,
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let mut loaded: Vec<String> = Vec::new();
    if let Some(path) = &recipe.init_from {
        let report = load_weights_by_name(model.network(), path, false)
            .map_err(|e| CliError::new(format!("--init-from: {e}")))?;
        notes.push(format!(
            "init from {}: {}",
            path.display(),
            report.summary()
        ));
        loaded = report.loaded;
    }
    if let Some(weights) = &recipe.pretrained {
        let opts = ferrovision_models::ModelOptions::new(input_shape, classes);
        loaded =
            ferrovision_import::pretrained::load_backbone(model.network(), arch, &opts, weights)
                .map_err(|e| CliError::new(format!("--pretrained: {e}")))?;
        notes.push(format!(
            "pretrained {weights}: loaded the {} weight(s) of the {arch} backbone; the head is new",
            loaded.len()
        ));
    }
    if let Some(m) = recipe.backbone_lr_multiplier {
        let weights = model.network().named_weights();
        for name in &loaded {
            if let Some((_, p)) = weights.iter().find(|(n, _)| n == name) {
                p.set_lr_multiplier(m)
                    .map_err(|e| CliError::new(e.to_string()))?;
            }
        }
        notes.push(format!(
            "learning rate x{m} for the {} loaded weight(s)",
            loaded.len()
        ));
    }
    for s in &recipe.freeze {
        let sel: LayerSelector = s
            .parse()
            .map_err(|e| CliError::new(format!("--freeze {s}: {e}")))?;
        let n = model
            .network_mut()
            .set_trainable_where(&sel, false)
            .map_err(|e| CliError::new(format!("--freeze {s}: {e}")))?;
        notes.push(format!("froze {n} layer(s) matching {sel}"));
    }
    if !recipe.freeze.is_empty() {
        let net = model.network();
        let trainable: usize = net.trainable_weights().iter().map(|(_, p)| p.numel()).sum();
        notes.push(format!(
            "trainable parameters: {trainable} of {}",
            net.count_params()
        ));
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_follow_epochs() {
        assert_eq!("cosine".parse::<Schedule>().unwrap(), Schedule::Cosine);
        let s: Schedule = "step:2,3".parse().unwrap();
        assert_eq!(s, Schedule::Step(vec![2, 3]));
        assert_eq!(s.to_string(), "step:2,3");
        for bad in ["step:", "step:0", "step:3,2", "linear", "step:a"] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
        // 4 steps per epoch: epochs 1-2 at lr, epoch 3 at lr/10, then lr/100.
        let lr = s.build(0.5, 4, 5, 0).unwrap();
        let per_step: Vec<f64> = (0..16).map(|i| lr.value(i)).collect();
        for (i, v) in per_step.iter().enumerate() {
            let want = match i / 4 {
                0 | 1 => 0.5,
                2 => 0.05,
                _ => 0.005,
            };
            assert!((v - want).abs() < 1e-12, "step {i}: {v} vs {want}");
        }
        // Cosine over all 20 steps: full rate at step 0, half way at step 10, 0 at the end.
        let c = Schedule::Cosine.build(0.5, 4, 5, 0).unwrap();
        assert!((c.value(0) - 0.5).abs() < 1e-12);
        assert!((c.value(10) - 0.25).abs() < 1e-12);
        assert!(c.value(20).abs() < 1e-12);
        // With one warmup epoch: 0 -> 0.5 over 4 steps, then cosine over 16.
        let w = Schedule::Cosine.build(0.5, 4, 5, 1).unwrap();
        assert!((w.value(2) - 0.25).abs() < 1e-12);
        assert!((w.value(4) - 0.5).abs() < 1e-12);
        assert!((w.value(12) - 0.25).abs() < 1e-12);
        assert!(Schedule::Cosine.build(0.5, 4, 2, 2).is_err());
    }

    #[test]
    fn optimizer_gets_momentum_decay_and_schedule() {
        let r = Recipe {
            weight_decay: Some(1e-4),
            momentum: Some(0.8),
            schedule: Some(Schedule::Cosine),
            ..Recipe::default()
        };
        let opt = build_optimizer("momentum", Some(0.1), &r, 10, 3).unwrap();
        let c = opt.config();
        assert_eq!(c["config"]["momentum"], 0.8);
        assert_eq!(c["config"]["coupled_weight_decay"], 1e-4);
        assert!((opt.learning_rate() - 0.1).abs() < 1e-12);
        assert!(c["config"]["learning_rate"].is_object(), "{c}");
        let adamw = build_optimizer("adamw", None, &r.clone().without_momentum(), 10, 3).unwrap();
        assert_eq!(adamw.config()["config"]["weight_decay"], 1e-4);
        let err = build_optimizer("adam", None, &r, 10, 3).err().unwrap();
        assert!(err.to_string().contains("no momentum"), "{err}");
        let bad = Recipe {
            freeze: vec!["class:".into()],
            ..Recipe::default()
        };
        assert!(bad.validate().is_err());
    }

    impl Recipe {
        fn without_momentum(mut self) -> Self {
            self.momentum = None;
            self
        }
    }
}
