//! The run directory as a small transactional store: what is committed after each epoch, what
//! resuming restores, and the manifest that marks a finished run.
//!
//! The commit point of an epoch is its checkpoint, `checkpoints/epoch-NNN.safetensors`, written
//! atomically (temp file + rename). It holds the whole model (weights, optimizer state, epoch)
//! plus the run's id and the history of every epoch so far, so everything else the run
//! directory holds about epochs is derived from the newest checkpoint:
//!
//! 1. `pipeline_stats.csv` gets the epoch's row (before the commit; rows of uncommitted epochs
//!    are dropped on resume);
//! 2. the checkpoint is written (the commit);
//! 3. `history.json` and `log.csv` are rewritten from the committed history.
//!
//! An epoch suspended by SIGINT/SIGTERM is saved as `checkpoints/partial.safetensors` (the
//! model with the epoch's progress, see `ferrovision_train::EpochProgress`); resuming takes it
//! unless a later epoch was committed after it, and committing its epoch removes it.
//!
//! A finished run then writes `model.safetensors`, evaluates it, writes `history.png` and
//! `metrics.json`, and last `manifest.json` (the files of the finished run with their sizes and
//! SHA-256). Every crash point therefore leaves one of three states, all of which `--resume`
//! continues to the outputs an uninterrupted run writes: no checkpoint (start over with the
//! same seed), a checkpoint before the last epoch (train on), or the last checkpoint without
//! a manifest (write the final outputs). Writers are kept apart by `run.lock`
//! ([`crate::run_lock`]).

use crate::error::{io_err, CliError, Context, Result};
use crate::nnglue;
use crate::run_dir::{
    history_from_json, history_to_json, read_json, remove_if_present, write_json, RunDir,
};
use ferrovision_io::crash::crash_point;
use ferrovision_io::fsutil::remove_stale_temps;
use ferrovision_io::write_atomic;
use ferrovision_train::callbacks::{history_csv, Callback, Logs};
use ferrovision_train::{History, Model};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Model metadata key of the id of the run a checkpoint belongs to (see
/// [`RunConfig::fingerprint`](crate::run_dir::RunConfig::fingerprint)).
pub const RUN_ID: &str = "run_id";

/// Model metadata key of the history of every epoch up to a checkpoint (as `history.json`).
pub const HISTORY: &str = "history";

/// Commits a finished epoch: the checkpoint (with `run_id` and `history`), then the files
/// derived from it. `history` already holds the epoch.
pub fn commit_epoch(
    model: &mut Model,
    dir: &RunDir,
    run_id: Option<&str>,
    history: &History,
) -> Result<()> {
    stamp(model, run_id, history);
    nnglue::save(model, &dir.checkpoint(model.epoch()))?;
    crash_point("epoch-committed");
    // A suspended epoch's checkpoint is superseded once that epoch is committed.
    remove_if_present(&dir.partial_checkpoint())?;
    write_derived(dir, history)
}

/// Saves the model of an epoch suspended mid-way (see [`crate::interrupt`]) as
/// `checkpoints/partial.safetensors`, stamped like a checkpoint. Returns its path.
pub fn save_partial(
    model: &mut Model,
    dir: &RunDir,
    run_id: Option<&str>,
    history: &History,
) -> Result<std::path::PathBuf> {
    stamp(model, run_id, history);
    let path = dir.partial_checkpoint();
    nnglue::save(model, &path)?;
    Ok(path)
}

/// Stores the run's id and its committed history in the model's metadata (saved with it).
fn stamp(model: &mut Model, run_id: Option<&str>, history: &History) {
    model.set_metadata(HISTORY, history_to_json(history).to_string());
    if let Some(id) = run_id {
        model.set_metadata(RUN_ID, id);
    }
}

/// Rewrites `history.json` and `log.csv` from a history.
fn write_derived(dir: &RunDir, history: &History) -> Result<()> {
    write_json(&dir.history(), &history_to_json(history))?;
    Ok(write_atomic(dir.log(), history_csv(history).as_bytes())?)
}

/// Commits each epoch of `fit` (see the module documentation). An interrupted epoch (see
/// [`crate::interrupt`]) never reaches it: the run resumes from the one before.
pub struct RunJournal {
    dir: RunDir,
    run_id: Option<String>,
    history: History,
}

impl RunJournal {
    /// A journal continuing `history` (the committed epochs) in `dir`.
    pub fn new(dir: &Path, run_id: Option<String>, history: History) -> Self {
        RunJournal {
            dir: RunDir::new(dir),
            run_id,
            history,
        }
    }
}

impl Callback for RunJournal {
    fn on_epoch_end(
        &mut self,
        model: &mut Model,
        epoch: usize,
        logs: &Logs,
    ) -> ferrovision_nn::Result<()> {
        self.history.epochs.push(epoch);
        self.history.logs.push(logs.clone());
        commit_epoch(model, &self.dir, self.run_id.as_deref(), &self.history)
            .map_err(|e| ferrovision_nn::Error::config(e.to_string()))
    }
}

/// What resuming a run directory found.
pub struct Restored {
    /// The model of the newest checkpoint (None: no epoch was committed yet).
    pub model: Option<Model>,
    /// The committed epochs' history.
    pub history: History,
}

/// Brings a run directory back to its last committed epoch: removes temporary files a crash
/// left, loads and checks the newest checkpoint (it must belong to this run and hold the epoch
/// its name says), and rewrites the derived files from its history. Call it holding the lock.
pub fn restore(dir: &RunDir, run_id: Option<&str>) -> Result<Restored> {
    for d in [dir.root.clone(), dir.checkpoints()] {
        remove_stale_temps(&d)?;
    }
    let mut last = dir.last_checkpoint()?;
    // A suspended epoch's checkpoint wins unless a later epoch was committed after it.
    let partial = dir.partial_checkpoint();
    let mut loaded = None;
    if partial.is_file() {
        let model = nnglue::load(&partial).context("cannot resume")?;
        let newest = last.as_ref().map_or(0, |(e, _)| *e);
        if model.epoch() >= newest && model.epoch_progress().is_some() {
            last = Some((model.epoch(), partial));
            loaded = Some(model);
        } else {
            remove_if_present(&partial)?;
        }
    }
    let Some((epoch, path)) = last else {
        // Nothing committed: whatever an earlier attempt wrote about epochs is void.
        for p in [dir.history(), dir.log(), dir.pipeline_stats()] {
            remove_if_present(&p)?;
        }
        return Ok(Restored {
            model: None,
            history: History::default(),
        });
    };
    let model = match loaded {
        Some(m) => m,
        None => nnglue::load(&path).context("cannot resume")?,
    };
    check_checkpoint(&path, &model, epoch, run_id)?;
    let history = stored_history(dir, &model, &path)?;
    write_derived(dir, &history)?;
    truncate_stats(&dir.pipeline_stats(), model.epoch())?;
    Ok(Restored {
        model: Some(model),
        history,
    })
}

/// The committed history a checkpoint holds (or, for checkpoints of older versions, the run's
/// history.json or log.csv), cut to the checkpoint's epochs.
fn stored_history(dir: &RunDir, model: &Model, path: &Path) -> Result<History> {
    let history = match model.metadata(HISTORY) {
        Some(text) => {
            let v: Value = serde_json::from_str(text).map_err(|e| {
                CliError::new(format!("{}: invalid stored history ({e})", path.display()))
            })?;
            history_from_json(&v, path)?
        }
        // Checkpoints written before histories were stored: the run's history.json, else its
        // log.csv (older runs wrote history.json only at the end).
        None if dir.history().is_file() => {
            history_from_json(&read_json(&dir.history())?, &dir.history())?
        }
        None if dir.log().is_file() => history_from_csv(&dir.log())?,
        None => History::default(),
    };
    Ok(truncate_history(history, model.epoch()))
}

/// Reads the epochs of a `log.csv` as written by `CSVLogger` (header `epoch,<keys...>`, `NA`
/// for a missing value).
fn history_from_csv(path: &Path) -> Result<History> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let mut h = History::default();
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let bad = || CliError::new(format!("{}:{}: not a log row", path.display(), i + 2));
        if cells.len() != header.len() || header.first() != Some(&"epoch") {
            return Err(bad());
        }
        h.epochs.push(cells[0].parse().map_err(|_| bad())?);
        let mut logs = Logs::new();
        for (k, v) in header.iter().zip(&cells).skip(1) {
            if *v != "NA" {
                logs.insert(*k, v.parse().map_err(|_| bad())?);
            }
        }
        h.logs.push(logs);
    }
    Ok(h)
}

/// Refuses a checkpoint that is not this run's: a model after a different number of epochs
/// than its file name says, or one stamped with another run's id.
fn check_checkpoint(path: &Path, model: &Model, epoch: usize, run_id: Option<&str>) -> Result<()> {
    let foreign = |why: String| {
        CliError::new(format!(
            "{}: {why}; it was not written by this run. Move it out of checkpoints/ to resume \
             from the checkpoint before it",
            path.display()
        ))
    };
    if model.epoch() != epoch {
        return Err(foreign(format!(
            "the file holds a model after {} epoch(s), its name says {epoch}",
            model.epoch()
        )));
    }
    match (run_id, model.metadata(RUN_ID)) {
        (Some(ours), Some(theirs)) if ours != theirs => Err(foreign(format!(
            "it belongs to run {theirs}, run.json is run {ours}"
        ))),
        (Some(ours), None) => Err(foreign(format!(
            "it carries no run id (run.json is run {ours})"
        ))),
        _ => Ok(()),
    }
}

/// The first `epochs` epochs of a history (later ones were never committed).
fn truncate_history(mut h: History, epochs: usize) -> History {
    let keep = h.epochs.iter().take_while(|&&e| e < epochs).count();
    h.epochs.truncate(keep);
    h.logs.truncate(keep);
    h
}

/// Drops the rows of `pipeline_stats.csv` (first column: the 1-based epoch) after `epochs`.
fn truncate_stats(path: &Path, epochs: usize) -> Result<()> {
    if !path.is_file() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let epoch = line.split(',').next().and_then(|c| c.parse::<usize>().ok());
        if i == 0 || epoch.is_some_and(|e| e <= epochs) {
            out.push_str(line);
            out.push('\n');
        }
    }
    if epochs == 0 || out.lines().count() <= 1 {
        return remove_if_present(path);
    }
    if out != text {
        write_atomic(path, out.as_bytes())?;
    }
    Ok(())
}

/// File name of the manifest of a finished run.
pub const MANIFEST: &str = "manifest.json";

/// The files a finished run lists in its manifest (those present).
const OUTPUTS: &[&str] = &[
    "run.json",
    "model.safetensors",
    "history.json",
    "log.csv",
    "pipeline_stats.csv",
    "history.png",
    "metrics.json",
];

/// Writes `manifest.json`, the last file of a finished run: its id, epochs and each output's
/// size and SHA-256.
pub fn write_manifest(dir: &RunDir, run_id: Option<&str>, epochs: usize) -> Result<()> {
    let mut files = serde_json::Map::new();
    for name in OUTPUTS {
        let p = dir.root.join(name);
        if !p.is_file() {
            continue;
        }
        let bytes = std::fs::read(&p).map_err(|e| io_err(&p, e))?;
        let digest = Sha256::digest(&bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        files.insert(
            name.to_string(),
            json!({"bytes": bytes.len(), "sha256": hex}),
        );
    }
    write_json(
        &dir.manifest(),
        &json!({"complete": true, "run_id": run_id, "epochs": epochs, "files": files}),
    )
}

/// Removes the manifest (a finished run trained further is unfinished until it ends).
pub fn remove_manifest(dir: &RunDir) -> Result<()> {
    remove_if_present(&dir.manifest())
}

/// The number of epochs of a finished run (its manifest), if it is finished.
pub fn finished_epochs(dir: &RunDir) -> Option<usize> {
    let v = read_json(&dir.manifest()).ok()?;
    (v["complete"] == json!(true))
        .then(|| v["epochs"].as_u64())
        .flatten()
        .map(|e| e as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_runs_log_csv_reads_back_as_its_history() {
        let mut h = History::default();
        for (e, loss) in [(0usize, 1.718_281_7), (1, 0.1 + 0.2)] {
            let mut l = Logs::new();
            l.insert("loss", loss);
            l.insert("accuracy", 1.0 / 3.0);
            l.insert("lr", 1e-3);
            h.epochs.push(e);
            h.logs.push(l);
        }
        let dir = std::env::temp_dir().join(format!("fv-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("log.csv");
        std::fs::write(&p, history_csv(&h)).unwrap();
        let back = history_from_csv(&p).unwrap();
        assert_eq!(back.epochs, h.epochs);
        // Exact values (Python repr floats round-trip); the NA columns Keras adds stay absent.
        assert_eq!(history_csv(&back), history_csv(&h));
        assert_eq!(back.logs[1].get("loss"), Some(0.1 + 0.2));
        assert_eq!(back.logs[0].get("val_loss"), None);
        std::fs::write(&p, "epoch,loss\n0,x\n").unwrap();
        let e = history_from_csv(&p).unwrap_err().to_string();
        assert!(e.contains("log.csv:2"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
