//! The `classify` task: labelled images in, one class per image out. Sparse categorical
//! cross-entropy on the model's logits, accuracy as the headline metric, top-k class
//! probabilities (softmax of the logits) as predictions.

use super::{OpenOpts, PredictOpts, Task, TaskData, TaskKind};
use crate::data::DataSpec;
use crate::error::{CliError, Result};
use crate::image_input;
use crate::nnglue;
use crate::pipeline::{check_augment, ImagePipeline};
use ferrovision_data::fused::normalize_chw;
use ferrovision_nn::datasets::mnist::Split;
use ferrovision_nn::losses::SparseCategoricalCrossentropy;
use ferrovision_nn::metrics::{Accuracy, TopKCategoricalAccuracy};
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{Loss, Optimizer};
use ferrovision_train::{Compile, Model};
use std::path::PathBuf;

/// Log key of the accuracy metric.
pub const ACCURACY: &str = "accuracy";

/// Log key of the top-5 accuracy, logged for models of at least [`TOP5_MIN_CLASSES`] classes.
pub const TOP5_ACCURACY: &str = "top_5_accuracy";

/// Fewer classes make top-5 accuracy nearly meaningless (5 of 5 is always right).
pub const TOP5_MIN_CLASSES: usize = 10;

/// Image classification.
pub struct Classify;

impl Task for Classify {
    fn kind(&self) -> TaskKind {
        TaskKind::Classify
    }

    fn open(&self, data: &DataSpec, split: Split, opts: &OpenOpts) -> Result<TaskData> {
        let mut set = data.load(split, &opts.load_opts()?)?;
        if set.labels.is_empty() {
            let which = match split {
                Split::Train => "training",
                Split::Test => "test",
            };
            return Err(CliError::new(format!(
                "{data}: the {which} set has no images"
            )));
        }
        let shape = set.image_shape();
        let classes = std::mem::take(&mut set.classes);
        if let Some((aug, source)) = &opts.augment {
            check_augment(aug, shape, source)?;
        }
        let pipe = ImagePipeline::new(set, opts.batch_size)?
            .augment(opts.augment.as_ref().map(|(a, _)| a.clone()))
            .normalize(opts.normalize.clone())
            .workers(opts.workers);
        let pipe = match opts.shuffle_seed {
            Some(seed) => pipe.shuffle(seed),
            None => pipe,
        };
        Ok(TaskData {
            stats: pipe.stats_handle(),
            len: pipe.len(),
            source: Box::new(pipe),
            input_shape: shape.to_vec(),
            classes,
        })
    }

    fn compile(&self, model: &mut Model, optimizer: Box<dyn Optimizer>) -> Result<()> {
        let classes = output_classes(model);
        let loss: Box<dyn Loss> = Box::new(SparseCategoricalCrossentropy::new().from_logits(true));
        let mut c =
            Compile::boxed(optimizer, vec![loss]).metric(Accuracy::sparse().named(ACCURACY));
        if classes >= TOP5_MIN_CLASSES {
            c = c.metric(TopKCategoricalAccuracy::sparse(5).named(TOP5_ACCURACY));
        }
        model.compile(c)?;
        Ok(())
    }

    fn metric(&self) -> &'static str {
        ACCURACY
    }

    fn predict(&self, model: &Model, files: &[PathBuf], opts: &PredictOpts) -> Result<Vec<String>> {
        let probs = class_probabilities(model, files)?;
        Ok(probs
            .iter()
            .map(|p| format_top(&top_k(p, opts.top), opts.class_names.as_deref()))
            .collect())
    }
}

/// The number of classes a classifier outputs (the last axis of its first output; 0 when not
/// known).
pub fn output_classes(model: &Model) -> usize {
    model
        .network()
        .output_shapes()
        .first()
        .and_then(|s| s.last().copied().flatten())
        .unwrap_or(0)
}

/// The per-sample input shape `[C, H, W]` of an image model.
pub fn image_input_shape(model: &Model) -> Result<[usize; 3]> {
    let shapes = model.network().input_shapes();
    let dims: Option<Vec<usize>> = shapes
        .first()
        .and_then(|s| s.get(1..))
        .and_then(|s| s.iter().copied().collect());
    dims.and_then(|d| <[usize; 3]>::try_from(d).ok())
        .ok_or_else(|| {
            CliError::new(format!(
                "the model takes inputs of shape {shapes:?}; an image classifier takes \
                 [N, C, H, W] with known sizes"
            ))
        })
}

/// Class probabilities (softmax of the model's logits) for each image file, normalised as
/// the model was trained (see `nnglue::input_normalization`).
pub fn class_probabilities(model: &Model, paths: &[PathBuf]) -> Result<Vec<Vec<f64>>> {
    let shape = image_input_shape(model)?;
    let norm = nnglue::input_normalization(model)?;
    let mut pixels = Vec::with_capacity(paths.len() * shape.iter().product::<usize>());
    for p in paths {
        let mut px = image_input::load_input(p, shape)?;
        if let Some(n) = &norm {
            normalize_chw(&mut px, shape[0], n);
        }
        pixels.extend(px);
    }
    let x = Tensor::from_vec(pixels, &[paths.len(), shape[0], shape[1], shape[2]])?;
    let logits = model.predict(&x, 256)?;
    if logits.rank() != 2 || logits.shape()[0] != paths.len() {
        return Err(CliError::new(format!(
            "the model outputs shape {:?}; a classifier outputs [images, classes]",
            logits.shape()
        )));
    }
    let probs = logits.softmax(-1)?.to_f64_vec()?;
    let k = logits.shape()[1];
    Ok(probs.chunks(k).map(|c| c.to_vec()).collect())
}

/// The `k` most likely (class, probability) pairs, most likely first.
pub fn top_k(probs: &[f64], k: usize) -> Vec<(usize, f64)> {
    let mut idx: Vec<(usize, f64)> = probs.iter().copied().enumerate().collect();
    idx.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    idx.truncate(k.max(1));
    idx
}

/// `name (12.3%), ...`; classes without a name print as `class <i>`.
pub fn format_top(top: &[(usize, f64)], names: Option<&[String]>) -> String {
    top.iter()
        .map(|&(c, p)| {
            let name = names
                .and_then(|n| n.get(c))
                .map_or_else(|| format!("class {c}"), |n| n.to_string());
            format!("{name} ({:.1}%)", 100.0 * p)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
