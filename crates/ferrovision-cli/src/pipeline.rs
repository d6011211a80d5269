//! The input pipeline of `train`, `demo` and `evaluate`: 28x28 grey images streamed through
//! `ferrovision-data` (index shuffle, optional augmentation, batching on worker threads,
//! prefetch), with per-stage statistics printed by `--stats` and logged into the run directory.

use crate::error::{CliError, Result};
use ferrovision_data::{mix_seed, Augment, Dataset, Image, StatsReport};
use ferrovision_io::write_atomic;
use ferrovision_nn::tensor::Tensor;
use ferrovision_train::callbacks::{Callback, Logs, TensorBoardWriter};
use ferrovision_train::{Batch, BatchSource, Model};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The image shape every built-in model takes.
pub const IMAGE_SHAPE: [usize; 3] = [1, 28, 28];
const PIXELS: usize = 28 * 28;

/// Reads an augmentation config (the JSON of [`Augment`], see `docs/data.md`) and checks that it
/// keeps a 28x28 grey image 28x28 (the models' input).
pub fn load_augment(path: &Path) -> Result<Augment> {
    let aug = Augment::from_json_file(path)?;
    check_augment(&aug, &path.display().to_string())?;
    Ok(aug)
}

/// Parses an augmentation config stored in a run's `run.json`.
pub fn augment_from_json(text: &str, source: &str) -> Result<Augment> {
    let aug = Augment::from_json(text, source)?;
    check_augment(&aug, source)?;
    Ok(aug)
}

fn check_augment(aug: &Augment, source: &str) -> Result<()> {
    let img = Image::new(28, 28, 1, 0u8);
    let mut rng = ferrovision_nn::tensor::rng::Rng::new(0);
    let out = aug.apply(ferrovision_data::ImageSample::from_image(img), &mut rng)?;
    let (w, h, c) = (out.image.width, out.image.height, out.image.channels);
    if (c, h, w) != (1, 28, 28) {
        return Err(CliError::new(format!(
            "{source}: the augmentation turns a 1x28x28 grey image into {c}x{h}x{w}; the models \
             take 1x28x28 (end with a resize to 28x28, or use ops that keep the size)"
        )));
    }
    Ok(())
}

/// The pipeline of the epoch in progress, shared with whoever reports its statistics.
type CurrentEpoch = Arc<Mutex<Option<Dataset<(Tensor, Tensor)>>>>;

/// A labelled set of 28x28 grey images as a per-epoch pipeline.
///
/// Each epoch builds `range(0, n) -> shuffle -> map_batch_labeled -> prefetch`: the shuffle
/// seed and the augmentation seed are derived from `(seed, epoch)`, so epoch `k` gets the same
/// batches whether or not the run was interrupted and resumed before it.
pub struct DigitPipeline {
    pixels: Arc<Vec<f32>>,
    labels: Arc<Vec<i64>>,
    batch_size: usize,
    shuffle_seed: Option<u64>,
    augment: Option<Arc<Augment>>,
    workers: usize,
    current: CurrentEpoch,
}

impl DigitPipeline {
    /// `images` `[N, 1, 28, 28]` f32 in [0, 1], `labels` `[N]` i64.
    pub fn new(images: &Tensor, labels: &Tensor, batch_size: usize) -> Result<Self> {
        let shape = images.shape().to_vec();
        if shape.len() != 4 || shape[1..] != IMAGE_SHAPE {
            return Err(CliError::new(format!(
                "images have shape {shape:?}; the pipeline takes [N, 1, 28, 28]"
            )));
        }
        if labels.shape() != [shape[0]] {
            return Err(CliError::new(format!(
                "{} images but labels of shape {:?}",
                shape[0],
                labels.shape()
            )));
        }
        if batch_size == 0 {
            return Err(CliError::new("the batch size must be at least 1"));
        }
        Ok(DigitPipeline {
            pixels: Arc::new(images.contiguous()?.to_vec::<f32>()?),
            labels: Arc::new(labels.to_vec::<i64>()?),
            batch_size,
            shuffle_seed: None,
            augment: None,
            workers: 1,
            current: Arc::new(Mutex::new(None)),
        })
    }

    /// Shuffles each epoch with a seed derived from `(seed, epoch)`.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.shuffle_seed = Some(seed);
        self
    }

    /// Augments each image (seeded from the shuffle seed, the epoch and the position).
    pub fn augment(mut self, aug: Option<Augment>) -> Self {
        self.augment = aug.map(Arc::new);
        self
    }

    /// Threads that build batches (at least 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True without images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// A handle on the statistics of the epoch in progress (or the last one).
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(self.current.clone())
    }

    /// The pipeline of one epoch.
    fn epoch_dataset(&self, epoch: usize) -> ferrovision_nn::Result<Dataset<(Tensor, Tensor)>> {
        let n = self.len();
        let mut ds = Dataset::range(0, n as i64, 1).map_err(ferrovision_nn::Error::data)?;
        let seed = self.shuffle_seed.unwrap_or(0);
        if self.shuffle_seed.is_some() {
            ds = ds.shuffle(n.max(1), mix_seed(seed, epoch as u64, 0), false);
        }
        let (pixels, labels, aug) = (
            self.pixels.clone(),
            self.labels.clone(),
            self.augment.clone(),
        );
        let ds = ds
            .map_batch_seeded_labeled(
                self.workers,
                mix_seed(seed, epoch as u64, 1),
                self.batch_size,
                false,
                &IMAGE_SHAPE,
                move |i, rng, slot| {
                    let i = i as usize;
                    let px = &pixels[i * PIXELS..(i + 1) * PIXELS];
                    match &aug {
                        None => slot.copy_from_slice(px),
                        Some(a) => {
                            // MNIST pixels are 8-bit; the loaders scaled them by 1/255.
                            let bytes = px.iter().map(|v| (v * 255.0).round() as u8).collect();
                            let img = Image::from_vec(28, 28, 1, bytes)?;
                            a.apply_image_chw(&img, rng, slot)?;
                        }
                    }
                    Ok(labels[i])
                },
            )
            .prefetch(2);
        Ok(ds)
    }
}

impl BatchSource for DigitPipeline {
    fn batches(
        &mut self,
        epoch: usize,
    ) -> ferrovision_nn::Result<Box<dyn Iterator<Item = ferrovision_nn::Result<Batch>> + '_>> {
        let ds = self.epoch_dataset(epoch)?;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(ds.clone());
        Ok(Box::new(ds.iter().map(|r| {
            let (x, y) = r.map_err(ferrovision_nn::Error::data)?;
            Ok(Batch {
                inputs: vec![x],
                targets: vec![y],
                sample_weight: None,
            })
        })))
    }

    fn num_batches(&self) -> Option<usize> {
        Some(self.len().div_ceil(self.batch_size))
    }
}

/// The statistics of a [`DigitPipeline`]'s current epoch.
#[derive(Clone)]
pub struct StatsHandle(CurrentEpoch);

impl StatsHandle {
    /// The per-stage report, once an epoch has started.
    pub fn report(&self) -> Option<StatsReport> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|d| d.stats())
    }
}

/// After each epoch: writes the training pipeline's per-stage statistics to
/// `pipeline_stats.csv` (one block of rows per epoch) and to TensorBoard (`tensorboard/pipeline`),
/// and prints the table when `print` is set (`--stats`).
pub struct PipelineStatsLogger {
    stats: StatsHandle,
    csv: PathBuf,
    csv_text: String,
    tb_dir: PathBuf,
    tb: Option<TensorBoardWriter>,
    print: bool,
}

impl PipelineStatsLogger {
    /// Logs into the run directory `out`; `resume` keeps the rows of earlier epochs.
    pub fn new(stats: StatsHandle, out: &Path, resume: bool, print: bool) -> Result<Self> {
        let csv = out.join("pipeline_stats.csv");
        let csv_text = if resume && csv.is_file() {
            std::fs::read_to_string(&csv).map_err(|e| crate::error::io_err(&csv, e))?
        } else {
            String::new()
        };
        Ok(PipelineStatsLogger {
            stats,
            csv,
            csv_text,
            tb_dir: out.join("tensorboard").join("pipeline"),
            tb: None,
            print,
        })
    }
}

impl Callback for PipelineStatsLogger {
    fn on_epoch_end(
        &mut self,
        _model: &mut Model,
        epoch: usize,
        _logs: &Logs,
    ) -> ferrovision_nn::Result<()> {
        let Some(report) = self.stats.report() else {
            return Ok(());
        };
        if self.print {
            println!("input pipeline, epoch {}:\n{}", epoch + 1, report.table());
        }
        let mut lines = report.csv().lines().map(str::to_string).collect::<Vec<_>>();
        if self.csv_text.is_empty() {
            self.csv_text = format!("epoch,{}\n", lines.first().cloned().unwrap_or_default());
        }
        for l in lines.drain(..).skip(1) {
            self.csv_text += &format!("{},{l}\n", epoch + 1);
        }
        write_atomic(&self.csv, self.csv_text.as_bytes())?;
        if self.tb.is_none() {
            self.tb = Some(TensorBoardWriter::new(&self.tb_dir)?);
        }
        if let Some(tb) = self.tb.as_mut() {
            for (tag, v) in report.scalars() {
                tb.add_scalar(&tag, epoch as u64, v)?;
            }
            tb.flush()?;
        }
        Ok(())
    }
}
