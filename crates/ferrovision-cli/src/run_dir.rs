//! The run directory a training run writes (`--out`): its paths, its settings (`run.json`, so
//! `--resume` continues with the same ones) and its history (`history.json`).

use crate::data::DataSpec;
use crate::error::{io_err, CliError, Result};
use crate::nnglue;
use crate::recipe::Recipe;
use crate::tasks::TaskKind;
use ferrovision_data::Augment;
use ferrovision_io::write_atomic;
use ferrovision_train::callbacks::Logs;
use ferrovision_train::History;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Everything that defines a training run; stored as `run.json` in the run directory so that
/// `--resume` continues with the same settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// `"train"` or `"demo"`.
    pub command: String,
    /// What the model learns.
    pub task: TaskKind,
    /// The zoo model's name (`ferrovision_models::REGISTRY`).
    pub model: String,
    pub data: DataSpec,
    pub optimizer: String,
    pub lr: Option<f64>,
    pub batch_size: usize,
    pub seed: u64,
    pub limit: Option<usize>,
    /// Test on only the first `n` test images.
    pub test_limit: Option<usize>,
    /// The augmentation of the training images, if any (stored as its JSON config).
    pub augment: Option<Augment>,
    /// Weight decay, momentum, schedule, frozen layers, warm start (absent in older runs).
    pub recipe: Recipe,
    /// The run's id, stamped into its checkpoints so that resuming refuses a foreign one
    /// (absent in runs written before ids existed; set when the run starts).
    pub run_id: Option<String>,
}

impl RunConfig {
    /// The JSON of `run.json`; `classes` (the data's class names) is stored for `predict`.
    pub fn to_json(&self, classes: &[String]) -> Value {
        json!({
            "command": self.command,
            "task": self.task.name(),
            "model": self.model,
            "data": self.data.to_string(),
            "optimizer": self.optimizer,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "limit": self.limit,
            "test_limit": self.test_limit,
            "augment": self.augment,
            "recipe": self.recipe,
            "run_id": self.run_id,
            "classes": classes,
        })
    }

    /// The run id of a new run: the first 16 hex digits of the SHA-256 of its settings (as
    /// `run.json` stores them, without classes or id). Runs with the same settings compute the
    /// same checkpoints, so they may share an id (and their model files stay byte-identical);
    /// any other run's checkpoint carries another id and resuming refuses it. Kept in `run.json`
    /// and never recomputed, so a resume that changes e.g. the batch size keeps the run's id.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut v = self.to_json(&[]);
        v["run_id"] = Value::Null;
        let digest = Sha256::digest(v.to_string().as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// This configuration with its [`fingerprint`](Self::fingerprint) as run id.
    pub fn with_fingerprint(mut self) -> Self {
        self.run_id = Some(self.fingerprint());
        self
    }

    /// Reads `run.json` (runs written before tasks existed are `classify` runs).
    pub fn from_json(v: &Value, path: &Path) -> Result<Self> {
        let bad = |field: &str| {
            CliError::new(format!(
                "{}: field '{field}' is missing or invalid",
                path.display()
            ))
        };
        let s = |field: &str| v[field].as_str().ok_or_else(|| bad(field));
        let model = s("model")?.to_ascii_lowercase();
        ferrovision_models::lookup(&model).map_err(|_| bad("model"))?;
        Ok(RunConfig {
            command: s("command")?.to_string(),
            task: match &v["task"] {
                Value::Null => TaskKind::Classify,
                t => t
                    .as_str()
                    .ok_or_else(|| bad("task"))?
                    .parse()
                    .map_err(|_| bad("task"))?,
            },
            model,
            data: s("data")?.parse().map_err(|_| bad("data"))?,
            optimizer: s("optimizer")?.to_string(),
            lr: v["lr"].as_f64(),
            batch_size: v["batch_size"].as_u64().ok_or_else(|| bad("batch_size"))? as usize,
            seed: v["seed"].as_u64().ok_or_else(|| bad("seed"))?,
            limit: v["limit"].as_u64().map(|n| n as usize),
            test_limit: v["test_limit"].as_u64().map(|n| n as usize),
            augment: match &v["augment"] {
                Value::Null => None,
                a => Some(Augment::from_json(
                    &a.to_string(),
                    &format!("{} (augment)", path.display()),
                )?),
            },
            recipe: match &v["recipe"] {
                Value::Null => Recipe::default(),
                r => serde_json::from_value(r.clone()).map_err(|_| bad("recipe"))?,
            },
            run_id: match &v["run_id"] {
                Value::Null => None,
                id => Some(id.as_str().ok_or_else(|| bad("run_id"))?.to_string()),
            },
        })
    }
}

/// Paths inside a run directory.
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    /// The run directory `root`.
    pub fn new(root: &Path) -> Self {
        RunDir {
            root: root.to_path_buf(),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("run.json")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    pub fn model(&self) -> PathBuf {
        self.root.join(format!("model.{}", nnglue::MODEL_EXT))
    }
    pub fn history(&self) -> PathBuf {
        self.root.join("history.json")
    }
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.json")
    }
    pub fn plot(&self) -> PathBuf {
        self.root.join("history.png")
    }

    pub fn log(&self) -> PathBuf {
        self.root.join("log.csv")
    }
    pub fn pipeline_stats(&self) -> PathBuf {
        self.root.join("pipeline_stats.csv")
    }
    pub fn manifest(&self) -> PathBuf {
        self.root.join(crate::run_journal::MANIFEST)
    }
    /// The checkpoint after `epoch` epochs: `checkpoints/epoch-NNN.safetensors`.
    pub fn checkpoint(&self, epoch: usize) -> PathBuf {
        self.checkpoints()
            .join(format!("epoch-{epoch:03}.{}", nnglue::MODEL_EXT))
    }

    /// The checkpoint of an epoch suspended mid-way by SIGINT/SIGTERM.
    pub fn partial_checkpoint(&self) -> PathBuf {
        self.checkpoints()
            .join(format!("partial.{}", nnglue::MODEL_EXT))
    }

    /// The newest checkpoint (highest epoch number in its name) and that number, if any.
    pub fn last_checkpoint(&self) -> Result<Option<(usize, PathBuf)>> {
        let dir = self.checkpoints();
        if !dir.is_dir() {
            return Ok(None);
        }
        let mut best: Option<(usize, PathBuf)> = None;
        for entry in std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let path = entry.map_err(|e| io_err(&dir, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let ext = format!(".{}", nnglue::MODEL_EXT);
            let Some(num) = name
                .strip_prefix("epoch-")
                .and_then(|r| r.strip_suffix(ext.as_str()))
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            if best.as_ref().is_none_or(|(b, _)| num > *b) {
                best = Some((num, path));
            }
        }
        Ok(best)
    }

    /// True when the directory holds nothing but a lock file and temporary files (what a run
    /// that crashed before writing `run.json` leaves).
    pub fn is_empty_or_lock_only(&self) -> Result<bool> {
        for entry in std::fs::read_dir(&self.root).map_err(|e| io_err(&self.root, e))? {
            let name = entry.map_err(|e| io_err(&self.root, e))?.file_name();
            let name = name.to_string_lossy();
            if name != crate::run_lock::LOCK_FILE && !ferrovision_io::fsutil::is_temp_name(&name) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Removes the files a training run writes here, and nothing else (a user's own files in
    /// the directory stay); folders left empty are removed.
    pub fn remove_outputs(&self) -> Result<()> {
        let remove = remove_if_present;
        for p in [
            self.config(),
            self.manifest(),
            self.model(),
            self.history(),
            self.plot(),
            self.log(),
            self.metrics(),
            self.pipeline_stats(),
        ] {
            remove(&p)?;
        }
        ferrovision_io::fsutil::remove_stale_temps(&self.root)?;
        let ckpt = self.checkpoints();
        if ckpt.is_dir() {
            ferrovision_io::fsutil::remove_stale_temps(&ckpt)?;
            while let Some((_, p)) = self.last_checkpoint()? {
                remove(&p)?;
            }
            remove(&self.partial_checkpoint())?;
            let _ = std::fs::remove_dir(&ckpt);
        }
        let tb = self.root.join("tensorboard");
        for sub in ["train", "validation", "pipeline"] {
            let d = tb.join(sub);
            if !d.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&d).map_err(|e| io_err(&d, e))? {
                let p = entry.map_err(|e| io_err(&d, e))?.path();
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with("events.out.tfevents.") {
                    remove(&p)?;
                }
            }
            let _ = std::fs::remove_dir(&d);
        }
        let _ = std::fs::remove_dir(&tb);
        Ok(())
    }

    /// The `run.json` of the run a saved model belongs to (`<run>/model.safetensors` or
    /// `<run>/checkpoints/epoch-NNN.safetensors`), if there is one.
    pub fn of_model_file(model_file: &Path) -> Option<(RunDir, Value)> {
        let dir = model_file.parent()?;
        [Some(dir), dir.parent()]
            .into_iter()
            .flatten()
            .find_map(|d| {
                let run = RunDir::new(d);
                let v = read_json(&run.config()).ok()?;
                Some((run, v))
            })
    }
}

/// Removes a file; one that is not there is fine.
pub fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path, e)),
        _ => Ok(()),
    }
}

/// Writes a history as JSON: epochs and, per epoch, the logged `[key, value]` pairs in order
/// (non-finite values as null).
pub fn history_to_json(h: &History) -> Value {
    json!({
        "epochs": h.epochs,
        "logs": h.logs.iter().map(|l| {
            l.iter().map(|(k, v)| json!([k, if v.is_finite() { json!(v) } else { Value::Null }]))
                .collect::<Vec<_>>()
        }).collect::<Vec<_>>(),
    })
}

/// Reads what [`history_to_json`] wrote.
pub fn history_from_json(v: &Value, path: &Path) -> Result<History> {
    let bad = || CliError::new(format!("{}: not a history file", path.display()));
    let epochs = v["epochs"].as_array().ok_or_else(bad)?;
    let logs = v["logs"].as_array().ok_or_else(bad)?;
    if epochs.len() != logs.len() {
        return Err(bad());
    }
    let mut h = History::default();
    for (e, l) in epochs.iter().zip(logs) {
        h.epochs.push(e.as_u64().ok_or_else(bad)? as usize);
        let mut logs = Logs::new();
        for pair in l.as_array().ok_or_else(bad)? {
            let k = pair[0].as_str().ok_or_else(bad)?;
            logs.insert(k, pair[1].as_f64().unwrap_or(f64::NAN));
        }
        h.logs.push(logs);
    }
    Ok(h)
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::new(format!("{}: invalid JSON ({e})", path.display())))
}

/// Writes pretty JSON atomically.
pub fn write_json(path: &Path, v: &Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v)
        .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    text.push('\n');
    Ok(write_atomic(path, text.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_config_round_trips_and_old_runs_are_classify_runs() {
        let cfg = RunConfig {
            command: "train".into(),
            task: TaskKind::Classify,
            model: "resnet20".into(),
            data: "cifar10:/d/c".parse().unwrap(),
            optimizer: "momentum".into(),
            lr: Some(0.05),
            batch_size: 20,
            seed: 3,
            limit: Some(60),
            test_limit: Some(40),
            augment: None,
            recipe: Recipe {
                weight_decay: Some(1e-4),
                schedule: Some("step:2,4".parse().unwrap()),
                freeze: vec!["class:BatchNormalization".into()],
                ..Recipe::default()
            },
            run_id: Some("00c0ffee00c0ffee".into()),
        };
        let v = cfg.to_json(&["a".into(), "b".into()]);
        assert_eq!(v["classes"], serde_json::json!(["a", "b"]));
        assert_eq!(
            RunConfig::from_json(&v, Path::new("run.json")).unwrap(),
            cfg
        );
        // run.json as written before tasks, zoo names and --test-limit existed.
        let old = json!({"command": "train", "model": "Lenet5", "data": "builtin",
            "optimizer": "adam", "lr": null, "batch_size": 32, "seed": 42, "limit": null,
            "augment": null});
        let back = RunConfig::from_json(&old, Path::new("run.json")).unwrap();
        assert_eq!(
            (back.task, back.model.as_str(), back.test_limit, back.run_id),
            (TaskKind::Classify, "lenet5", None, None)
        );
        let mut bad = old.clone();
        bad["model"] = json!("alexnet");
        let e = RunConfig::from_json(&bad, Path::new("r/run.json")).unwrap_err();
        assert!(e.to_string().contains("r/run.json") && e.to_string().contains("'model'"));
    }
}
