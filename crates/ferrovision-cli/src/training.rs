//! One training run, shared by `train` and `demo`: lock the run directory, restore it (when
//! resuming), open the task's data, build the model, `fit` with the run directory's callbacks
//! (each epoch committed by [`RunJournal`]), then write the final model, history, plot, metrics
//! and manifest.

use crate::cli::PipelineOpts;
use crate::error::{CliError, Context, Result};
use crate::interrupt::{self, StopOnInterrupt};
use crate::pipeline::PipelineStatsLogger;
use crate::recipe;
use crate::run_dir::{history_to_json, write_json, RunConfig, RunDir};
use crate::run_journal::{self, RunJournal};
use crate::run_lock::RunLock;
use crate::tasks::classify::TOP5_ACCURACY;
use crate::tasks::OpenOpts;
use crate::{nnglue, plot};
use ferrovision_io::crash::crash_point;
use ferrovision_nn::datasets::mnist::Split;
use ferrovision_train::callbacks::{Callback, Logs};
use ferrovision_train::{FitOptions, History, Model};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The error of a `fit` that a SIGINT/SIGTERM stopped: which signal, what the run keeps and
/// how to resume (exit status 128 + the signal number). None when no stop was requested.
/// `partial` is the checkpoint of the suspended epoch, if one was written.
fn interrupted_error(
    out: &Path,
    epochs: usize,
    model: &Model,
    partial: Option<&Path>,
) -> Option<CliError> {
    let sig = interrupt::requested()?;
    let done = model.epoch();
    let kept = match (partial, model.epoch_progress()) {
        (Some(p), Some(progress)) => format!(
            "saved the epoch's progress after step {} in {}",
            progress.steps,
            p.display()
        ),
        _ if done == 0 => "no epoch was completed yet".to_string(),
        _ => format!("the run keeps its checkpoint after epoch {done}"),
    };
    Some(CliError::with_exit_code(
        format!(
            "interrupted by {} during epoch {} of {epochs}; {kept}. Resume with: ferrovision \
             train --out {} --resume --epochs {epochs}",
            interrupt::signal_name(sig),
            done + 1,
            out.display()
        ),
        128 + sig,
    ))
}

/// What a training run produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub out: PathBuf,
    pub model_file: PathBuf,
    pub test_loss: f64,
    /// The task's headline metric on the test split (accuracy for `classify`).
    pub test_metric: f64,
    /// Top-5 accuracy on the test split (classifiers of 10 or more classes).
    pub test_top5: Option<f64>,
    pub test_samples: usize,
    pub epochs: usize,
    pub train_seconds: f64,
    /// How the steps ran: traced plans (how many traced, replayed) or eagerly, and why.
    pub execution: String,
}

/// How a model's steps ran, one line (and one per refused signature) ([`ferrovision_train::traced::TraceStats`]).
pub fn execution_summary(model: &Model) -> String {
    if model.run_eagerly() {
        return "eager (FERROVISION_RUN_EAGERLY or run_eagerly)".into();
    }
    let s = model.trace_stats();
    let mut line = format!(
        "traced: {} training plan(s), {} step(s) replayed, {} eager; {} inference plan(s), \
         {} batch(es) replayed, {} eager",
        s.training_traces,
        s.training_replays,
        s.training_eager_batches,
        s.traces,
        s.replays,
        s.eager_batches
    );
    for why in &s.refused {
        line.push_str(&format!("\n  refused (runs eagerly): {why}"));
    }
    line
}

/// Records the wall time of each epoch.
struct EpochTimer {
    start: Option<Instant>,
    times: Arc<Mutex<Vec<f64>>>,
}

impl Callback for EpochTimer {
    fn on_epoch_begin(&mut self, _model: &mut Model, _epoch: usize) -> ferrovision_nn::Result<()> {
        self.start = Some(Instant::now());
        Ok(())
    }

    fn on_epoch_end(
        &mut self,
        _model: &mut Model,
        _epoch: usize,
        _logs: &Logs,
    ) -> ferrovision_nn::Result<()> {
        if let Some(s) = self.start.take() {
            self.times
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(s.elapsed().as_secs_f64());
        }
        Ok(())
    }
}

/// How a run is started.
pub struct RunRequest<'a> {
    /// The run's settings.
    pub cfg: &'a RunConfig,
    /// The run directory.
    pub out: &'a Path,
    /// Total epochs to reach.
    pub epochs: usize,
    /// Continue from the last checkpoint in `out`.
    pub resume: bool,
    /// Progress output of `fit`.
    pub verbose: u8,
    /// Input-pipeline options.
    pub pipe: &'a PipelineOpts,
    /// Where the augmentation config came from (named in errors).
    pub augment_source: String,
}

/// Trains (or resumes) a run and writes the whole run directory, holding its lock throughout.
/// Resuming continues from whatever state a crash left (see [`crate::run_journal`]). A new run
/// that fails before writing `run.json` (bad data, bad options) leaves no directory behind.
pub fn train_run(req: RunRequest) -> Result<TrainOutcome> {
    let out = req.out;
    let created = !out.exists();
    let result = train_run_locked(req);
    if result.is_err() && created && RunDir::new(out).is_empty_or_lock_only().unwrap_or(false) {
        let _ = std::fs::remove_dir_all(out);
    }
    result
}

fn train_run_locked(req: RunRequest) -> Result<TrainOutcome> {
    let RunRequest {
        cfg,
        out,
        epochs,
        resume,
        verbose,
        pipe,
        augment_source,
    } = req;
    let dir = RunDir::new(out);
    if cfg.batch_size == 0 {
        return Err(CliError::new("--batch-size must be at least 1"));
    }
    if epochs == 0 {
        return Err(CliError::new("--epochs must be at least 1"));
    }
    let _lock = RunLock::acquire(out)?;
    if !resume && dir.config().exists() {
        // Another process started a run here after this one checked.
        return Err(CliError::new(format!(
            "{} already holds a training run; pass --resume to continue it, or choose another \
             --out",
            out.display()
        )));
    }
    interrupt::install();
    let task = cfg.task.task();
    let (mut model, mut history) = if resume {
        let r = run_journal::restore(&dir, cfg.run_id.as_deref())?;
        (r.model, r.history)
    } else {
        // What a writer that crashed here left half-written (`restore` does this on resume).
        ferrovision_io::fsutil::remove_stale_temps(out)?;
        (None, History::default())
    };
    let done = model.as_ref().map_or(0, |m| m.epoch());
    if done >= epochs {
        if run_journal::finished_epochs(&dir) == Some(done) {
            return Err(CliError::new(format!(
                "{}: the run is complete ({done} epoch(s)); pass a larger --epochs to train \
                 further",
                out.display()
            )));
        }
        if done > epochs {
            return Err(CliError::new(format!(
                "{}: the run already has {done} epoch(s), more than --epochs {epochs}; pass \
                 --epochs {done} to finish it, or more to train further",
                out.display()
            )));
        }
    }
    let input_shape = model.as_ref().map(nnglue::input_shape);
    // Checks the stored normalisation of a resumed model before the data is opened.
    if let Some(m) = &model {
        nnglue::input_normalization(m)?;
    }
    let mut train_data = task
        .open(
            &cfg.data,
            Split::Train,
            &OpenOpts {
                batch_size: cfg.batch_size,
                limit: cfg.limit,
                shuffle_seed: Some(cfg.seed),
                augment: cfg.augment.clone().map(|a| (a, augment_source)),
                workers: pipe.workers,
                input_shape,
                // Training images are normalised by their augmentation config.
                normalize: None,
            },
        )
        .context("loading the training set")?;
    let mut model = match model.take() {
        Some(m) => m,
        None => {
            // The seed fixes the initial weights; the data decides the input and output sizes.
            ferrovision_nn::tensor::rng::manual_seed(cfg.seed);
            let mut m = nnglue::build(
                &cfg.model,
                &train_data.input_shape,
                train_data.classes.len(),
            )?;
            for line in recipe::prepare_model(
                &mut m,
                &cfg.recipe,
                &cfg.model,
                &train_data.input_shape,
                train_data.classes.len(),
            )? {
                println!("{line}");
            }
            let steps_per_epoch = train_data.len.div_ceil(cfg.batch_size);
            let opt = recipe::build_optimizer(
                &cfg.optimizer,
                cfg.lr,
                &cfg.recipe,
                steps_per_epoch,
                epochs,
            )?;
            task.compile(&mut m, opt)?;
            // What evaluation and prediction must apply to inputs, kept with the model.
            nnglue::set_input_normalization(
                &mut m,
                cfg.augment.as_ref().and_then(|a| a.normalize.as_ref()),
            );
            m
        }
    };
    let mut test_data = task
        .open(
            &cfg.data,
            Split::Test,
            &OpenOpts {
                batch_size: 256,
                limit: cfg.test_limit,
                workers: pipe.workers,
                input_shape: Some(train_data.input_shape.clone()),
                normalize: nnglue::input_normalization(&model)?,
                ..OpenOpts::default()
            },
        )
        .context("loading the test set")?;
    let n_train = train_data.len;
    let n_test = test_data.len;

    write_json(&dir.config(), &cfg.to_json(&train_data.classes))?;
    crash_point("run-config-written");

    let times = Arc::new(Mutex::new(Vec::new()));
    let mut train_seconds = 0.0;
    if done < epochs {
        // The run is no longer finished at its old length.
        run_journal::remove_manifest(&dir)?;
        let callbacks: Vec<Box<dyn Callback>> = vec![
            Box::new(StopOnInterrupt),
            Box::new(EpochTimer {
                start: None,
                times: times.clone(),
            }),
            Box::new(PipelineStatsLogger::new(
                train_data.stats.clone(),
                out,
                resume,
                pipe.stats,
            )?),
            nnglue::tensorboard(out),
            // Last: the epoch is committed once everything before it has run.
            Box::new(RunJournal::new(out, cfg.run_id.clone(), history.clone())),
        ];
        let opts = FitOptions {
            epochs,
            verbose,
            ..FitOptions::default()
        };
        let t0 = Instant::now();
        let fitted = model.fit_source(
            train_data.source.as_mut(),
            Some(test_data.source.as_mut()),
            &opts,
            callbacks,
        );
        let new = match fitted {
            Err(e) => return Err(interrupted_error(out, epochs, &model, None).unwrap_or(e.into())),
            Ok(h) => h,
        };
        if model.epoch_progress().is_some() {
            // Suspended mid-epoch by a signal: checkpoint the epoch's progress and stop.
            history.epochs.extend(new.epochs.iter().copied());
            history.logs.extend(new.logs.iter().cloned());
            let partial =
                run_journal::save_partial(&mut model, &dir, cfg.run_id.as_deref(), &history)?;
            return Err(interrupted_error(out, epochs, &model, Some(&partial))
                .unwrap_or_else(|| CliError::new("training was suspended without a signal")));
        }
        train_seconds = t0.elapsed().as_secs_f64();
        history.epochs.extend(new.epochs.iter().copied());
        history.logs.extend(new.logs.iter().cloned());
    }

    nnglue::save(&model, &dir.model())?;
    crash_point("final-model-written");
    let logs = model.evaluate_source(test_data.source.as_mut())?;
    let test_loss = logs.get("loss").unwrap_or(f64::NAN);
    let test_metric = logs.get(task.metric()).unwrap_or(f64::NAN);
    let test_top5 = logs.get(TOP5_ACCURACY);
    write_json(&dir.history(), &history_to_json(&history))?;
    plot::plot_history(&history, &dir.plot())?;
    let epoch_seconds = times.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let lr = model.optimizer().map(|o| o.learning_rate());
    let execution = execution_summary(&model);
    write_json(
        &dir.metrics(),
        &json!({
            "task": cfg.task.name(),
            "model": cfg.model,
            "data": cfg.data.to_string(),
            "optimizer": cfg.optimizer,
            "lr": lr,
            "batch_size": cfg.batch_size,
            "seed": cfg.seed,
            "epochs": model.epoch(),
            "train_samples": n_train,
            "test_samples": n_test,
            "test_loss": test_loss,
            format!("test_{}", task.metric()): test_metric,
            format!("test_{TOP5_ACCURACY}"): test_top5,
            "train_seconds": train_seconds,
            "epoch_seconds": epoch_seconds,
            "last_epoch": history.last().map(|l| {
                l.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()
            }),
        }),
    )?;
    run_journal::write_manifest(&dir, cfg.run_id.as_deref(), model.epoch())?;
    Ok(TrainOutcome {
        out: out.to_path_buf(),
        model_file: dir.model(),
        test_loss,
        test_metric,
        test_top5,
        test_samples: n_test,
        epochs: model.epoch(),
        train_seconds,
        execution,
    })
}
