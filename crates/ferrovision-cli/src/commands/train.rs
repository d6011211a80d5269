//! `ferrovision train`: train a zoo model on a data source into a run directory, or resume one.

use crate::cli::{parse_model, TrainOpts};
use crate::data::DataSpec;
use crate::error::{CliError, Result};
use crate::nnglue;
use crate::pipeline;
use crate::recipe::Recipe;
use crate::run_dir::{read_json, RunConfig, RunDir};
use crate::tasks::TaskKind;
use crate::training::{train_run, RunRequest, TrainOutcome};
use clap::Args;
use std::path::PathBuf;

/// `ferrovision train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// What the model learns: classify (one label per image) [default: classify]
    #[arg(long, value_name = "TASK")]
    pub task: Option<TaskKind>,
    /// Architecture from the model zoo (`ferrovision models` lists them); it is built for the
    /// data's image shape and class count [default: lenet5]
    #[arg(long, value_name = "NAME", value_parser = parse_model)]
    pub model: Option<String>,
    /// Dataset: builtin, mnist:<dir>, fashion-mnist:<dir>, cifar10:<dir> or folder:<dir>
    /// [default: builtin]
    #[arg(long, value_name = "SOURCE")]
    pub data: Option<DataSpec>,
    /// Run directory (default: runs/<model>)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint; model, data, optimizer, batch size
    /// and seed default to the run's own
    #[arg(long)]
    pub resume: bool,
    /// Train on only the first N training images (quick experiments; image folders and
    /// CIFAR-10 tars are listed class by class in turn, so any N is class-balanced)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Test on only the first N test images (after every epoch and at the end)
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
    #[command(flatten)]
    pub train: TrainOpts,
    #[command(flatten)]
    pub recipe: Recipe,
}

/// Where the augmentation of a run comes from, for error messages.
fn augment_source(args: &TrainArgs, out: &std::path::Path) -> String {
    match &args.train.augment {
        Some(p) => p.display().to_string(),
        None => format!("{} (augment)", RunDir::new(out).config().display()),
    }
}

/// Resolves `train`'s options (defaults, or the run's own settings with `--resume`).
fn train_config(args: &TrainArgs) -> Result<(RunConfig, PathBuf, usize)> {
    let t = &args.train;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(args.model.as_deref().unwrap_or("lenet5")));
    let dir = RunDir::new(&out);
    if t.epochs == Some(0) {
        return Err(CliError::new("--epochs must be at least 1"));
    }
    if args.resume {
        if !dir.config().is_file() {
            return Err(CliError::new(format!(
                "{}: no run to resume here (run.json is missing); train without --resume first",
                out.display()
            )));
        }
        let saved = RunConfig::from_json(&read_json(&dir.config())?, &dir.config())?;
        if let Some(m) = &args.model {
            if *m != saved.model {
                return Err(CliError::new(format!(
                    "--model {m} does not match the run in {} (a {} model)",
                    out.display(),
                    saved.model
                )));
            }
        }
        if let Some(task) = args.task {
            if task != saved.task {
                return Err(CliError::new(format!(
                    "--task {task} does not match the run in {} (a {} run)",
                    out.display(),
                    saved.task
                )));
            }
        }
        if let Some(o) = &t.optimizer {
            if *o != saved.optimizer {
                return Err(CliError::new(format!(
                    "--optimizer {o} does not match the run in {} (trained with {}); the \
                     optimizer state comes from the checkpoint",
                    out.display(),
                    saved.optimizer
                )));
            }
        }
        let cfg = RunConfig {
            command: saved.command.clone(),
            data: args.data.clone().unwrap_or(saved.data.clone()),
            batch_size: t.batch_size.unwrap_or(saved.batch_size),
            seed: t.seed.unwrap_or(saved.seed),
            limit: args.limit.or(saved.limit),
            test_limit: args.test_limit.or(saved.test_limit),
            augment: match &t.augment {
                Some(path) => Some(pipeline::load_augment(path)?),
                None => saved.augment.clone(),
            },
            ..saved
        };
        if !args.recipe.is_empty() {
            return Err(CliError::new(format!(
                "--weight-decay, --momentum, --schedule, --warmup-epochs, --freeze, --init-from                  and --backbone-lr-multiplier cannot change when resuming: the checkpoint in {}                  holds the optimizer (with its schedule and decay), the frozen layers and the                  learning-rate multipliers",
                out.display()
            )));
        }
        let epochs = t.epochs.ok_or_else(|| {
            CliError::new("--resume needs --epochs: the total number of epochs to reach")
        })?;
        return Ok((cfg, out, epochs));
    }
    if dir.config().exists() || dir.checkpoints().exists() {
        return Err(CliError::new(format!(
            "{} already holds a training run; pass --resume to continue it, or choose another \
             --out",
            out.display()
        )));
    }
    if out.is_file() {
        return Err(CliError::new(format!(
            "--out {}: is a file; the run directory must be a new or empty folder",
            out.display()
        )));
    }
    // A run writes log.csv, metrics.json, ... : never over a folder of the user's own files.
    if out.is_dir() && !dir.is_empty_or_lock_only()? {
        return Err(CliError::new(format!(
            "--out {}: the folder is not empty and holds no training run (no run.json); choose \
             a new or empty folder",
            out.display()
        )));
    }
    args.recipe.validate()?;
    let cfg = RunConfig {
        command: "train".into(),
        task: args.task.unwrap_or(TaskKind::Classify),
        model: args.model.clone().unwrap_or_else(|| "lenet5".into()),
        data: args.data.clone().unwrap_or(DataSpec::Builtin),
        optimizer: t.optimizer.clone().unwrap_or_else(|| "adam".into()),
        lr: t.lr,
        batch_size: t.batch_size.unwrap_or(32),
        seed: t.seed.unwrap_or(42),
        limit: args.limit,
        test_limit: args.test_limit,
        augment: t
            .augment
            .as_deref()
            .map(pipeline::load_augment)
            .transpose()?,
        recipe: args.recipe.clone(),
        run_id: None,
    }
    .with_fingerprint();
    Ok((cfg, out, t.epochs.unwrap_or(10)))
}

/// Trains and prints where the run went.
pub fn run(args: TrainArgs) -> Result<TrainOutcome> {
    let (cfg, out, epochs) = train_config(&args)?;
    if args.train.lr.is_some() && args.resume {
        eprintln!("note: --lr is ignored with --resume (the checkpoint's optimizer state is used)");
    }
    let recipe = cfg.recipe.describe();
    println!(
        "training {} ({}) on {} for {} epoch(s), batch size {}, optimizer {}{}{}; run directory {}",
        cfg.model,
        cfg.task,
        cfg.data,
        epochs,
        cfg.batch_size,
        cfg.optimizer,
        cfg.lr.map(|l| format!(" (lr {l})")).unwrap_or_default(),
        if recipe.is_empty() {
            String::new()
        } else {
            format!(", {recipe}")
        },
        out.display()
    );
    let o = train_run(RunRequest {
        cfg: &cfg,
        out: &out,
        epochs,
        resume: args.resume,
        verbose: args.train.verbose,
        pipe: &args.train.pipeline,
        augment_source: augment_source(&args, &out),
    })?;
    println!(
        "test {} {:.4}{} (loss {:.4}) on {} images after {} epoch(s); training took {:.1} s",
        cfg.task.task().metric(),
        o.test_metric,
        o.test_top5
            .map(|t| format!(", top-5 accuracy {t:.4}"))
            .unwrap_or_default(),
        o.test_loss,
        o.test_samples,
        o.epochs,
        o.train_seconds
    );
    println!("{}", o.execution);
    println!(
        "wrote {}: model.{}, checkpoints/, log.csv, pipeline_stats.csv, tensorboard/, \
         history.png, metrics.json, manifest.json",
        o.out.display(),
        nnglue::MODEL_EXT
    );
    Ok(o)
}
