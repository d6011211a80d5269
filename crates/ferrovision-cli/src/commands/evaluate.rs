//! `ferrovision evaluate`: a saved model's loss and headline metric on a data source's test
//! split, read at the model's input shape.

use crate::cli::PipelineOpts;
use crate::data::DataSpec;
use crate::error::{CliError, Result};
use crate::nnglue;
use crate::run_dir::{RunConfig, RunDir};
use crate::tasks::{OpenOpts, TaskKind};
use clap::Args;
use ferrovision_nn::datasets::mnist::Split;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `ferrovision evaluate`.
#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    /// Saved model (a run's model.safetensors or one of its checkpoints)
    #[arg(long, value_name = "FILE")]
    pub model_file: PathBuf,
    /// Dataset whose test split to use: builtin, mnist:<dir>, fashion-mnist:<dir>,
    /// cifar10:<dir> or folder:<dir>
    #[arg(long, value_name = "SOURCE", default_value = "builtin")]
    pub data: DataSpec,
    /// Images per forward pass
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub batch_size: usize,
    /// Evaluate on only the first N test images
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub pipeline: PipelineOpts,
}

/// The task of the run a model file belongs to (`classify` when it has no run directory).
pub fn task_of(model_file: &Path) -> Result<TaskKind> {
    match RunDir::of_model_file(model_file) {
        Some((dir, v)) => Ok(RunConfig::from_json(&v, &dir.config())?.task),
        None => Ok(TaskKind::Classify),
    }
}

/// Evaluates and prints one line (and the pipeline's statistics with `--stats`).
pub fn run(args: EvaluateArgs) -> Result<()> {
    let mut model = nnglue::load(&args.model_file)?;
    if args.batch_size == 0 {
        return Err(CliError::new("--batch-size must be at least 1"));
    }
    let task = task_of(&args.model_file)?.task();
    let mut data = task.open(
        &args.data,
        Split::Test,
        &OpenOpts {
            batch_size: args.batch_size,
            limit: args.limit,
            workers: args.pipeline.workers,
            input_shape: Some(nnglue::input_shape(&model)),
            ..OpenOpts::default()
        },
    )?;
    let outputs = model.network().output_shapes();
    if let Some(Some(k)) = outputs.first().and_then(|s| s.last()) {
        if *k < data.classes.len() {
            return Err(CliError::new(format!(
                "{} outputs {k} classes but {} has {}",
                args.model_file.display(),
                args.data,
                data.classes.len()
            )));
        }
    }
    let n = data.len;
    let t0 = Instant::now();
    let logs = model.evaluate_source(data.source.as_mut())?;
    let secs = t0.elapsed().as_secs_f64();
    let loss = logs.get("loss").unwrap_or(f64::NAN);
    let metric = task.metric();
    let value = logs.get(metric).unwrap_or(f64::NAN);
    println!(
        "{} on the test split of {} ({n} images): {metric} {value:.4}, loss {loss:.4} ({:.0} images/s)",
        args.model_file.display(),
        args.data,
        n as f64 / secs.max(1e-9)
    );
    if args.pipeline.stats {
        if let Some(report) = data.stats.report() {
            println!("input pipeline:\n{}", report.table());
        }
    }
    Ok(())
}
