//! The input pipeline of `train`, `demo` and `evaluate`: labelled images of any `[C, H, W]`
//! streamed through `ferrovision-data` (index shuffle, optional augmentation, batching on
//! worker threads, prefetch), with per-stage statistics printed by `--stats` and logged into the
//! run directory.

use crate::data::{shape_str, Labelled};
use crate::error::{CliError, Result};
use ferrovision_data::fused::normalize_chw;
use ferrovision_data::{mix_seed, Augment, Dataset, Image, Normalize, StatsReport};
use ferrovision_io::write_atomic;
use ferrovision_nn::tensor::Tensor;
use ferrovision_train::callbacks::{Callback, Logs, TensorBoardWriter};
use ferrovision_train::{Batch, BatchSource, Model};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Reads an augmentation config (the JSON of [`Augment`], see `docs/data.md`); whether it fits
/// the images is checked by [`check_augment`] once their shape is known.
pub fn load_augment(path: &Path) -> Result<Augment> {
    Ok(Augment::from_json_file(path)?)
}

/// Checks that `aug` keeps a `shape` (`[C, H, W]`) image that shape (the model's input);
/// `source` names the config in the error.
pub fn check_augment(aug: &Augment, shape: [usize; 3], source: &str) -> Result<()> {
    let [c, h, w] = shape;
    let img = Image::new(w, h, c, 0u8);
    let mut rng = ferrovision_nn::tensor::rng::Rng::new(0);
    let out = aug.apply(ferrovision_data::ImageSample::from_image(img), &mut rng)?;
    let got = [out.image.channels, out.image.height, out.image.width];
    if got != shape {
        let kind = if c == 1 { "grey" } else { "colour" };
        return Err(CliError::new(format!(
            "{source}: the augmentation turns a {} {kind} image into {}; the model takes {} \
             (end with a resize to {h}x{w}, or use ops that keep the size)",
            shape_str(shape),
            shape_str(got),
            shape_str(shape)
        )));
    }
    Ok(())
}

/// The pipeline of the epoch in progress, shared with whoever reports its statistics.
type CurrentEpoch = Arc<Mutex<Option<Dataset<(Tensor, Tensor)>>>>;

/// A labelled set of `[C, H, W]` images as a per-epoch pipeline.
///
/// Each epoch builds `range(0, n) -> shuffle -> map_batch_labeled -> prefetch`: the shuffle
/// seed and the augmentation seed are derived from `(seed, epoch)`, so epoch `k` gets the same
/// batches whether or not the run was interrupted and resumed before it.
pub struct ImagePipeline {
    shape: [usize; 3],
    pixels: Arc<Vec<f32>>,
    labels: Arc<Vec<i64>>,
    batch_size: usize,
    shuffle_seed: Option<u64>,
    augment: Option<Arc<Augment>>,
    normalize: Option<Arc<Normalize>>,
    workers: usize,
    current: CurrentEpoch,
}

impl ImagePipeline {
    /// The images and labels of `data` (taken over, not copied), in batches of `batch_size`.
    pub fn new(data: Labelled, batch_size: usize) -> Result<Self> {
        let len: usize = data.shape.iter().product();
        if data.pixels.len() != data.labels.len() * len {
            return Err(CliError::new(format!(
                "{} pixel values for {} images of {}",
                data.pixels.len(),
                data.labels.len(),
                shape_str(data.shape)
            )));
        }
        if batch_size == 0 {
            return Err(CliError::new("the batch size must be at least 1"));
        }
        // A batch larger than the data is the whole data (as Keras does); capping keeps buffer
        // sizes derived from the batch size bounded by the data.
        let batch_size = batch_size.min(data.labels.len().max(1));
        Ok(ImagePipeline {
            shape: data.shape,
            pixels: Arc::new(data.pixels),
            labels: Arc::new(data.labels),
            batch_size,
            shuffle_seed: None,
            augment: None,
            normalize: None,
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

    /// Normalises images that are not augmented (evaluation, validation) as the training
    /// augmentation's `normalize` does; an augmented image is normalised by its augmentation.
    pub fn normalize(mut self, norm: Option<Normalize>) -> Self {
        self.normalize = norm.map(Arc::new);
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
        let (pixels, labels, aug, norm) = (
            self.pixels.clone(),
            self.labels.clone(),
            self.augment.clone(),
            self.normalize.clone(),
        );
        let [c, h, w] = self.shape;
        let len = c * h * w;
        let ds = ds
            .map_batch_seeded_labeled(
                self.workers,
                mix_seed(seed, epoch as u64, 1),
                self.batch_size,
                false,
                &self.shape,
                move |i, rng, slot| {
                    let i = i as usize;
                    let px = &pixels[i * len..(i + 1) * len];
                    match &aug {
                        None => {
                            slot.copy_from_slice(px);
                            if let Some(n) = &norm {
                                normalize_chw(slot, c, n);
                            }
                        }
                        Some(a) => {
                            // The sources' pixels are 8-bit scaled by 1/255; the augmentation
                            // works on 8-bit HWC images.
                            let mut bytes = vec![0u8; len];
                            for (j, v) in px.iter().enumerate() {
                                let (ch, p) = (j / (h * w), j % (h * w));
                                bytes[p * c + ch] = (v * 255.0).round() as u8;
                            }
                            let img = Image::from_vec(w, h, c, bytes)?;
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

impl BatchSource for ImagePipeline {
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

/// The statistics of an [`ImagePipeline`]'s current epoch.
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
