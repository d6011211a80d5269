//! Tasks: what a model is trained to do. A task turns a data source into batches, compiles a
//! model with its loss and metrics and shows a model's predictions; `train`, `evaluate` and
//! `predict` are written once against [`Task`], so any zoo model meets any data source.
//!
//! Only `classify` exists today. `detect` and `segment` slot in as new files here: a variant of
//! [`TaskKind`], a type implementing [`Task`] and one arm in [`TaskKind::task`].

pub mod classify;

use crate::data::{DataSpec, LoadOpts};
use crate::error::{CliError, Result};
use crate::pipeline::StatsHandle;
use ferrovision_data::{Augment, Normalize};
use ferrovision_nn::datasets::mnist::Split;
use ferrovision_nn::Optimizer;
use ferrovision_train::{BatchSource, Model};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The tasks the CLI knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// Image classification: one label per image.
    Classify,
}

/// Tasks planned but not built yet (named so a user learns they are coming, not mistyped).
const PLANNED: &[&str] = &["detect", "segment"];

impl TaskKind {
    /// Every available task.
    pub const ALL: &'static [TaskKind] = &[TaskKind::Classify];

    /// The name used on the command line and in `run.json`.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Classify => "classify",
        }
    }

    /// The task's implementation.
    pub fn task(self) -> Box<dyn Task> {
        match self {
            TaskKind::Classify => Box::new(classify::Classify),
        }
    }
}

impl FromStr for TaskKind {
    type Err = CliError;

    fn from_str(s: &str) -> Result<Self> {
        if let Some(k) = TaskKind::ALL.iter().find(|k| k.name() == s) {
            return Ok(*k);
        }
        let known: Vec<&str> = TaskKind::ALL.iter().map(|k| k.name()).collect();
        if PLANNED.contains(&s) {
            return Err(CliError::new(format!(
                "the {s} task is not available yet; available: {}",
                known.join(", ")
            )));
        }
        Err(CliError::new(format!(
            "unknown task '{s}'; available: {}",
            known.join(", ")
        )))
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How to open a split of a data source for a task.
#[derive(Clone, Default)]
pub struct OpenOpts {
    /// Samples per batch.
    pub batch_size: usize,
    /// Keep only the first `n` samples.
    pub limit: Option<usize>,
    /// Shuffle every epoch with a seed derived from `(seed, epoch)`.
    pub shuffle_seed: Option<u64>,
    /// Augment every sample (training).
    pub augment: Option<(Augment, String)>,
    /// Threads that decode files and build batches.
    pub workers: usize,
    /// The per-sample input shape the model takes, when a model exists already.
    pub input_shape: Option<Vec<usize>>,
    /// Per-channel normalisation of the images when there is no augmentation (evaluation and
    /// validation apply what training's augmentation config applied; see
    /// `nnglue::input_normalization`).
    pub normalize: Option<Normalize>,
}

impl OpenOpts {
    pub(crate) fn load_opts(&self) -> Result<LoadOpts> {
        let shape = match &self.input_shape {
            None => None,
            Some(s) => Some(<[usize; 3]>::try_from(s.as_slice()).map_err(|_| {
                CliError::new(format!(
                    "the model takes inputs of shape {s:?}; this task reads images [C, H, W]"
                ))
            })?),
        };
        Ok(LoadOpts {
            limit: self.limit,
            shape,
            workers: self.workers,
        })
    }
}

/// One split of a data source, ready for `fit`/`evaluate`.
pub struct TaskData {
    /// The batches.
    pub source: Box<dyn BatchSource>,
    /// Statistics of the input pipeline's current epoch.
    pub stats: StatsHandle,
    /// Number of samples.
    pub len: usize,
    /// Per-sample input shape (what a new model is built for).
    pub input_shape: Vec<usize>,
    /// Class names (the model's output size).
    pub classes: Vec<String>,
}

/// What a task does with data and models.
pub trait Task {
    /// Which task this is.
    fn kind(&self) -> TaskKind;

    /// Loads one split of `data` as batches for this task.
    fn open(&self, data: &DataSpec, split: Split, opts: &OpenOpts) -> Result<TaskData>;

    /// Compiles `model` with this optimizer and the task's loss and metrics.
    fn compile(&self, model: &mut Model, optimizer: Box<dyn Optimizer>) -> Result<()>;

    /// The log key of the metric reported as a run's headline number (e.g. `accuracy`).
    fn metric(&self) -> &'static str;

    /// Runs `model` on image files; one printable line per file (without the file name).
    fn predict(&self, model: &Model, files: &[PathBuf], opts: &PredictOpts) -> Result<Vec<String>>;
}

/// Options of [`Task::predict`].
#[derive(Debug, Clone, Default)]
pub struct PredictOpts {
    /// Names of the classes (index = class); `None` prints `class <i>`.
    pub class_names: Option<Vec<String>>,
    /// How many of the most likely classes to print.
    pub top: usize,
}
