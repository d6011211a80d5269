//! One training run, shared by `train` and `demo`: open the task's data, build (or resume) the
//! model, `fit` with the run directory's callbacks, then write the final model, history, plot
//! and metrics.

use crate::cli::PipelineOpts;
use crate::error::{io_err, CliError, Context, Result};
use crate::pipeline::PipelineStatsLogger;
use crate::recipe;
use crate::run_dir::{
    history_from_json, history_to_json, read_json, write_json, RunConfig, RunDir,
};
use crate::tasks::classify::TOP5_ACCURACY;
use crate::tasks::OpenOpts;
use crate::{nnglue, plot};
use ferrovision_nn::datasets::mnist::Split;
use ferrovision_train::callbacks::{Callback, Logs};
use ferrovision_train::{FitOptions, History, Model};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

/// Trains (or resumes) a run and writes the whole run directory.
pub fn train_run(req: RunRequest) -> Result<TrainOutcome> {
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
    let task = cfg.task.task();
    let (mut model, mut history) = if resume {
        let ckpt = dir.last_checkpoint()?.ok_or_else(|| {
            CliError::new(format!(
                "{}: no checkpoint to resume from (expected checkpoints/epoch-NNN.{})",
                out.display(),
                nnglue::MODEL_EXT
            ))
        })?;
        let model = nnglue::load(&ckpt).context("cannot resume")?;
        let history = if dir.history().is_file() {
            history_from_json(&read_json(&dir.history())?, &dir.history())?
        } else {
            History::default()
        };
        (Some(model), history)
    } else {
        (None, History::default())
    };
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

    let done = model.epoch();
    if epochs <= done {
        return Err(CliError::new(format!(
            "{}: the run already has {done} epoch(s); pass a larger --epochs to train further",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    write_json(&dir.config(), &cfg.to_json(&train_data.classes))?;

    let times = Arc::new(Mutex::new(Vec::new()));
    let mut callbacks = nnglue::callbacks(out, resume)?;
    callbacks.push(Box::new(EpochTimer {
        start: None,
        times: times.clone(),
    }));
    callbacks.push(Box::new(PipelineStatsLogger::new(
        train_data.stats.clone(),
        out,
        resume,
        pipe.stats,
    )?));
    let opts = FitOptions {
        epochs,
        verbose,
        ..FitOptions::default()
    };
    let t0 = Instant::now();
    let new = model.fit_source(
        train_data.source.as_mut(),
        Some(test_data.source.as_mut()),
        &opts,
        callbacks,
    )?;
    let train_seconds = t0.elapsed().as_secs_f64();
    history.epochs.extend(new.epochs.iter().copied());
    history.logs.extend(new.logs.iter().cloned());

    nnglue::save(&model, &dir.model())?;
    let logs = model.evaluate_source(test_data.source.as_mut())?;
    let test_loss = logs.get("loss").unwrap_or(f64::NAN);
    let test_metric = logs.get(task.metric()).unwrap_or(f64::NAN);
    let test_top5 = logs.get(TOP5_ACCURACY);
    write_json(&dir.history(), &history_to_json(&history))?;
    plot::plot_history(&history, &dir.plot())?;
    let epoch_seconds = times.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let lr = model.optimizer().map(|o| o.learning_rate());
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
    Ok(TrainOutcome {
        out: out.to_path_buf(),
        model_file: dir.model(),
        test_loss,
        test_metric,
        test_top5,
        test_samples: n_test,
        epochs: model.epoch(),
        train_seconds,
    })
}
