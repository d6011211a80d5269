//! `ferrovision evaluate`: a saved model's loss and headline metric (and top-5 accuracy for 10
//! or more classes) on a data source's test split, read at the model's input shape and
//! normalised as the model was trained. With `--tta ten-crop`, predictions are averaged over
//! ten crops; with several `--model-file`s, over the models (an ensemble).

use crate::cli::PipelineOpts;
use crate::data::DataSpec;
use crate::error::{CliError, Result};
use crate::nnglue;
use crate::run_dir::{RunConfig, RunDir};
use crate::tasks::classify::{image_input_shape, TOP5_ACCURACY};
use crate::tasks::{OpenOpts, TaskKind};
use clap::{Args, ValueEnum};
use ferrovision_nn::datasets::mnist::Split;
use ferrovision_nn::tensor::Tensor;
use ferrovision_train::tta::{
    evaluate_probabilities, pad_images, predict_ensemble, predict_ten_crop,
};
use ferrovision_train::Model;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `ferrovision evaluate`.
#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    /// Saved model (a run's model.safetensors or one of its checkpoints); give it several
    /// times to evaluate the ensemble (class probabilities averaged over the models)
    #[arg(long, value_name = "FILE", required = true)]
    pub model_file: Vec<PathBuf>,
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
    /// Test-time augmentation: ten-crop averages the class probabilities of the four corner
    /// crops, the centre crop and their mirror images (torchvision's TenCrop) at the model's
    /// input size, taken from the image padded by --tta-padding pixels
    #[arg(long, value_name = "KIND")]
    pub tta: Option<Tta>,
    /// Padding (pixels of black, each side) before the ten crops; 4 matches the CIFAR
    /// pad-and-crop augmentation
    #[arg(long, value_name = "N", default_value_t = 4, requires = "tta")]
    pub tta_padding: usize,
    #[command(flatten)]
    pub pipeline: PipelineOpts,
}

/// Test-time augmentations of `evaluate --tta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tta {
    /// Four corners and the centre, and their horizontal flips
    TenCrop,
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
    if args.batch_size == 0 {
        return Err(CliError::new("--batch-size must be at least 1"));
    }
    let mut models = args
        .model_file
        .iter()
        .map(|p| nnglue::load(p))
        .collect::<Result<Vec<Model>>>()?;
    let first = &args.model_file[0];
    let task = task_of(first)?.task();
    let norm = nnglue::input_normalization(&models[0])?;
    for (m, p) in models.iter().zip(&args.model_file).skip(1) {
        if nnglue::input_shape(m) != nnglue::input_shape(&models[0])
            || nnglue::input_normalization(m)? != norm
        {
            return Err(CliError::new(format!(
                "{} and {} take different inputs (shape or normalisation); an ensemble needs \
                 the same",
                first.display(),
                p.display()
            )));
        }
    }
    let mut data = task.open(
        &args.data,
        Split::Test,
        &OpenOpts {
            batch_size: args.batch_size,
            limit: args.limit,
            workers: args.pipeline.workers,
            input_shape: Some(nnglue::input_shape(&models[0])),
            normalize: norm.clone(),
            ..OpenOpts::default()
        },
    )?;
    for (m, p) in models.iter().zip(&args.model_file) {
        let outputs = m.network().output_shapes();
        if let Some(Some(k)) = outputs.first().and_then(|s| s.last()) {
            if *k < data.classes.len() {
                return Err(CliError::new(format!(
                    "{} outputs {k} classes but {} has {}",
                    p.display(),
                    args.data,
                    data.classes.len()
                )));
            }
        }
    }
    let n = data.len;
    let names: Vec<String> = args
        .model_file
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let what = match (names.len(), args.tta) {
        (1, None) => names[0].clone(),
        (1, Some(_)) => format!("{} with ten-crop TTA", names[0]),
        (k, tta) => format!(
            "ensemble of {k} ({}){}",
            names.join(", "),
            if tta.is_some() {
                " with ten-crop TTA"
            } else {
                ""
            }
        ),
    };
    let t0 = Instant::now();
    let metric = task.metric();
    let (value, top5, loss) = if models.len() == 1 && args.tta.is_none() {
        let logs = models[0].evaluate_source(data.source.as_mut())?;
        (
            logs.get(metric).unwrap_or(f64::NAN),
            logs.get(TOP5_ACCURACY),
            logs.get("loss").unwrap_or(f64::NAN),
        )
    } else {
        if metric != "accuracy" {
            return Err(CliError::new(
                "--tta and ensembles are for classifiers (accuracy)",
            ));
        }
        let shape = image_input_shape(&models[0])?;
        // Black, normalised as the images are.
        let fill: Vec<f32> = (0..shape[0])
            .map(|c| match &norm {
                Some(n) => {
                    let (m, s) = (
                        n.mean.get(c).copied().unwrap_or(0.0),
                        n.std.get(c).copied().unwrap_or(1.0),
                    );
                    -m / s
                }
                None => 0.0,
            })
            .collect();
        let (tta, pad, bs) = (args.tta, args.tta_padding, args.batch_size);
        let refs: Vec<&Model> = models.iter().collect();
        let mut predict = |x: &Tensor| -> ferrovision_nn::Result<Tensor> {
            match tta {
                None => predict_ensemble(&refs, x, bs),
                Some(Tta::TenCrop) => {
                    let padded = pad_images(x, pad, &fill)?;
                    let each: Vec<Tensor> = refs
                        .iter()
                        .map(|m| predict_ten_crop(m, &padded, [shape[1], shape[2]], bs))
                        .collect::<ferrovision_nn::Result<_>>()?;
                    let sum = each
                        .iter()
                        .skip(1)
                        .try_fold(each[0].clone(), |a, b| a.add(b))?;
                    Ok(sum.mul_scalar(1.0 / each.len() as f32)?)
                }
            }
        };
        let s = evaluate_probabilities(data.source.as_mut(), &mut predict)?;
        let classes = models[0]
            .network()
            .output_shapes()
            .first()
            .and_then(|s| s.last().copied().flatten())
            .unwrap_or(0);
        let top5 = (classes >= crate::tasks::classify::TOP5_MIN_CLASSES).then_some(s.top5_accuracy);
        (s.accuracy, top5, s.loss)
    };
    models.clear();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{what} on the test split of {} ({n} images): {metric} {value:.4}{}, loss {loss:.4} ({:.0} images/s)",
        args.data,
        top5.map(|t| format!(", top-5 accuracy {t:.4}"))
            .unwrap_or_default(),
        n as f64 / secs.max(1e-9)
    );
    if args.pipeline.stats {
        if let Some(report) = data.stats.report() {
            println!("input pipeline:\n{}", report.table());
        }
    }
    Ok(())
}
