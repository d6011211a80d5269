//! TensorBoard event files: [`TensorBoardWriter`] (scalars, histograms, images) and the
//! [`TensorBoard`] callback (Keras' tags: `epoch_loss`, `batch_loss`, `<weight>/histogram`).

mod histogram;
mod record;

pub use histogram::Histogram;

use super::{Callback, Logs, TrainParams};
use crate::{Error, Model, Result};
use ferrovision_io::FramedWriter;
use ferrovision_nn::network::NetworkExt;
use record::{EventWhat, HistoFields, ValueKind};
use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Options of a [`TensorBoardWriter`]. The defaults (the clock and this machine's host name)
/// are what you want; fixing them gives byte-identical files (tests, reproducible fixtures).
#[derive(Debug, Clone, Default)]
pub struct WriterOptions {
    /// Wall time (seconds since the Unix epoch) stamped on every event and in the file name,
    /// instead of the clock.
    pub wall_time: Option<f64>,
    /// Host name in the file name, instead of this machine's.
    pub hostname: Option<String>,
}

/// Writes one TensorBoard event file `events.out.tfevents.<time>.<host>` in a folder:
/// TFRecord-framed `Event` protobufs starting with the `brain.Event:2` version record.
/// TensorBoard reads it while it grows; call [`TensorBoardWriter::flush`] to make the latest
/// events visible (dropping the writer flushes too).
///
/// ```no_run
/// use ferrovision_train::callbacks::TensorBoardWriter;
/// let mut w = TensorBoardWriter::new("runs/exp1/train")?;
/// w.add_scalar("loss", 0, 0.5)?;
/// w.add_histogram("weights", 0, &[0.1, -0.2, 0.3])?;
/// w.add_image("digit", 0, &[0u8; 28 * 28], 28, 28, 1)?;
/// w.flush()?;
/// # Ok::<(), ferrovision_nn::Error>(())
/// ```
pub struct TensorBoardWriter {
    path: PathBuf,
    out: FramedWriter<BufWriter<File>>,
    wall_time: Option<f64>,
}

/// This machine's host name (Linux: the kernel's; elsewhere the environment's).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl TensorBoardWriter {
    /// A new event file in `dir` (created if missing).
    pub fn new(dir: impl AsRef<Path>) -> Result<Self> {
        Self::with_options(dir, &WriterOptions::default())
    }

    /// A new event file in `dir` with a fixed clock and/or host name.
    pub fn with_options(dir: impl AsRef<Path>, opts: &WriterOptions) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let t = opts.wall_time.unwrap_or_else(now);
        if !t.is_finite() || t < 0.0 {
            return Err(Error::config(format!(
                "TensorBoardWriter: wall_time must be finite and >= 0, got {t}"
            )));
        }
        let host = opts.hostname.clone().unwrap_or_else(hostname);
        if host.contains(['/', '\\']) {
            return Err(Error::config(format!(
                "TensorBoardWriter: host name '{host}' cannot be part of a file name"
            )));
        }
        let base = format!("events.out.tfevents.{:010}.{host}", t as u64);
        // Two writers started in the same second in the same folder must not share a file;
        // TensorBoard reads every file whose name contains "tfevents".
        let mut n = 0;
        let (path, file) = loop {
            let name = if n == 0 {
                base.clone()
            } else {
                format!("{base}.{n}")
            };
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(Error::io(path, e)),
            }
        };
        let mut w = TensorBoardWriter {
            out: FramedWriter::new(BufWriter::new(file), &path),
            path,
            wall_time: opts.wall_time,
        };
        w.write_event(0, &EventWhat::FileVersion("brain.Event:2"))?;
        w.flush()?;
        Ok(w)
    }

    /// The event file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_event(&mut self, step: u64, what: &EventWhat) -> Result<()> {
        let step = i64::try_from(step).map_err(|_| {
            Error::config(format!(
                "TensorBoardWriter: step {step} does not fit in int64"
            ))
        })?;
        let t = self.wall_time.unwrap_or_else(now);
        Ok(self.out.write_record(&record::event(t, step, what))?)
    }

    fn write_value(&mut self, tag: &str, step: u64, kind: &ValueKind) -> Result<()> {
        if tag.is_empty() {
            return Err(Error::config("TensorBoardWriter: empty tag"));
        }
        let v = record::summary_value(tag, kind);
        self.write_event(step, &EventWhat::Summary(&[v]))
    }

    /// A scalar (stored as float32 `simple_value`, like Keras' scalars).
    pub fn add_scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<()> {
        self.write_value(tag, step, &ValueKind::Simple(value as f32))
    }

    /// A histogram of `values` (TensorFlow's default exponential buckets). Non-finite values
    /// are an error.
    pub fn add_histogram(&mut self, tag: &str, step: u64, values: &[f32]) -> Result<()> {
        let h = Histogram::from_values(tag, values)?;
        self.add_histogram_proto(tag, step, &h)
    }

    /// A histogram computed elsewhere.
    pub fn add_histogram_proto(&mut self, tag: &str, step: u64, h: &Histogram) -> Result<()> {
        if h.bucket.len() != h.bucket_limit.len() {
            return Err(Error::config(format!(
                "histogram '{tag}': {} bucket counts for {} bucket limits",
                h.bucket.len(),
                h.bucket_limit.len()
            )));
        }
        let fields = HistoFields {
            min: h.min,
            max: h.max,
            num: h.num,
            sum: h.sum,
            sum_squares: h.sum_squares,
            bucket_limit: &h.bucket_limit,
            bucket: &h.bucket,
        };
        self.write_value(tag, step, &ValueKind::Histo(fields))
    }

    /// An 8-bit image, row-major with interleaved channels (`height * width * channels`
    /// bytes): 1 = grey, 2 = grey + alpha, 3 = RGB, 4 = RGBA. Stored PNG-encoded.
    pub fn add_image(
        &mut self,
        tag: &str,
        step: u64,
        pixels: &[u8],
        height: usize,
        width: usize,
        channels: usize,
    ) -> Result<()> {
        let png = encode_png(tag, pixels, height, width, channels)?;
        self.write_value(
            tag,
            step,
            &ValueKind::Image {
                height: height as i32,
                width: width as i32,
                colorspace: channels as i32,
                png: &png,
            },
        )
    }

    /// Writes buffered events to the file.
    pub fn flush(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }
}

impl Drop for TensorBoardWriter {
    fn drop(&mut self) {
        // Errors cannot be reported from drop; `flush` is there for callers who care.
        let _ = self.out.flush();
    }
}

fn encode_png(
    tag: &str,
    pixels: &[u8],
    height: usize,
    width: usize,
    channels: usize,
) -> Result<Vec<u8>> {
    let color = match channels {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        _ => {
            return Err(Error::config(format!(
                "image '{tag}': {channels} channels; expected 1 (grey), 2 (grey+alpha), 3 \
                 (RGB) or 4 (RGBA)"
            )))
        }
    };
    if height == 0 || width == 0 || height > i32::MAX as usize || width > i32::MAX as usize {
        return Err(Error::config(format!(
            "image '{tag}': size {height}x{width} is not a valid image size"
        )));
    }
    let expected = height
        .checked_mul(width)
        .and_then(|n| n.checked_mul(channels));
    if expected != Some(pixels.len()) {
        return Err(Error::config(format!(
            "image '{tag}': {} bytes given, a {height}x{width}x{channels} image needs {}",
            pixels.len(),
            expected.map_or("more than usize::MAX".into(), |n| n.to_string())
        )));
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    let png_err = |e: png::EncodingError| Error::config(format!("image '{tag}': PNG: {e}"));
    let mut w = enc.write_header().map_err(png_err)?;
    w.write_image_data(pixels).map_err(png_err)?;
    w.finish().map_err(png_err)?;
    Ok(out)
}

/// How often [`TensorBoard`] writes training scalars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdateFreq {
    /// Once per epoch (`epoch_*` tags).
    #[default]
    Epoch,
    /// Also every `n` batches (`batch_*` tags, step = batches seen since the start of `fit`).
    Batches(usize),
}

/// Logs training to TensorBoard like Keras' callback: `log_dir/train` gets `epoch_<key>`
/// scalars (step = epoch from 0; the learning rate as `epoch_learning_rate`), `batch_<key>`
/// scalars with [`UpdateFreq::Batches`], and `<weight>/histogram` of every weight every
/// `histogram_freq` epochs; `log_dir/validation` gets the `val_*` values as `epoch_<key>`.
/// With `write_images`, 1-D and 2-D weights are also logged as min-max normalized grey
/// images (`<weight>/image`).
pub struct TensorBoard {
    log_dir: PathBuf,
    histogram_freq: usize,
    write_images: bool,
    update_freq: UpdateFreq,
    options: WriterOptions,
    train: Option<TensorBoardWriter>,
    val: Option<TensorBoardWriter>,
    global_batch: u64,
}

impl TensorBoard {
    /// Logs under `log_dir` (`train/` and `validation/` are created inside).
    pub fn new(log_dir: impl AsRef<Path>) -> Self {
        TensorBoard {
            log_dir: log_dir.as_ref().to_path_buf(),
            histogram_freq: 0,
            write_images: false,
            update_freq: UpdateFreq::Epoch,
            options: WriterOptions::default(),
            train: None,
            val: None,
            global_batch: 0,
        }
    }

    /// Weight histograms every `n` epochs (0 = never, the default).
    pub fn histogram_freq(mut self, n: usize) -> Self {
        self.histogram_freq = n;
        self
    }

    /// Also log weights as images when histograms are written.
    pub fn write_images(mut self, on: bool) -> Self {
        self.write_images = on;
        self
    }

    /// How often to write training scalars.
    pub fn update_freq(mut self, f: UpdateFreq) -> Self {
        self.update_freq = f;
        self
    }

    /// Fixed clock / host name for the event files (reproducible output).
    pub fn writer_options(mut self, opts: WriterOptions) -> Self {
        self.options = opts;
        self
    }

    /// The event files written so far (train, then validation).
    pub fn event_files(&self) -> Vec<PathBuf> {
        [&self.train, &self.val]
            .into_iter()
            .flatten()
            .map(|w| w.path().to_path_buf())
            .collect()
    }

    fn val_writer(&mut self) -> Result<&mut TensorBoardWriter> {
        if self.val.is_none() {
            self.val = Some(TensorBoardWriter::with_options(
                self.log_dir.join("validation"),
                &self.options,
            )?);
        }
        Ok(self.val.as_mut().expect("just created"))
    }

    fn log_weights(&mut self, model: &Model, epoch: usize) -> Result<()> {
        let write_images = self.write_images;
        let Some(w) = self.train.as_mut() else {
            return Ok(());
        };
        for (name, p) in model.network().named_weights() {
            let values = p.to_vec()?;
            w.add_histogram(&format!("{name}/histogram"), epoch as u64, &values)?;
            if write_images {
                if let Some((img, h, wd)) = weight_image(&values, &p.shape()) {
                    w.add_image(&format!("{name}/image"), epoch as u64, &img, h, wd, 1)?;
                }
            }
        }
        Ok(())
    }
}

/// A 1-D or 2-D weight as a grey image (the longer side horizontal, like Keras), values
/// scaled from [min, max] to [0, 255]. `None` for other ranks or non-finite values.
fn weight_image(values: &[f32], shape: &[usize]) -> Option<(Vec<u8>, usize, usize)> {
    let (rows, cols, transpose) = match *shape {
        [n] => (1, n, false),
        [r, c] if r > c => (c, r, true),
        [r, c] => (r, c, false),
        _ => return None,
    };
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    let mut img = vec![0u8; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            let v = if transpose {
                values[j * rows + i]
            } else {
                values[i * cols + j]
            };
            img[i * cols + j] = ((v - lo) * scale).round() as u8;
        }
    }
    Some((img, rows, cols))
}

impl Callback for TensorBoard {
    fn on_train_begin(&mut self, _model: &mut Model, _params: &TrainParams) -> Result<()> {
        if self.update_freq == UpdateFreq::Batches(0) {
            return Err(Error::config(
                "TensorBoard: update_freq must be at least 1 batch",
            ));
        }
        self.train = Some(TensorBoardWriter::with_options(
            self.log_dir.join("train"),
            &self.options,
        )?);
        self.val = None;
        self.global_batch = 0;
        Ok(())
    }

    fn on_batch_begin(&mut self, _model: &mut Model, _batch: usize) -> Result<()> {
        self.global_batch += 1;
        Ok(())
    }

    fn on_batch_end(&mut self, _model: &mut Model, _batch: usize, logs: &Logs) -> Result<()> {
        let UpdateFreq::Batches(n) = self.update_freq else {
            return Ok(());
        };
        if !self.global_batch.is_multiple_of(n as u64) {
            return Ok(());
        }
        let step = self.global_batch;
        if let Some(w) = self.train.as_mut() {
            for (k, v) in logs.iter() {
                w.add_scalar(&format!("batch_{k}"), step, v)?;
            }
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, model: &mut Model, epoch: usize, logs: &Logs) -> Result<()> {
        let step = epoch as u64;
        if let Some(w) = self.train.as_mut() {
            for (k, v) in logs.iter().filter(|(k, _)| !k.starts_with("val_")) {
                let k = if k == "lr" { "learning_rate" } else { k };
                w.add_scalar(&format!("epoch_{k}"), step, v)?;
            }
        }
        if logs.iter().any(|(k, _)| k.starts_with("val_")) {
            let w = self.val_writer()?;
            for (k, v) in logs.iter() {
                if let Some(k) = k.strip_prefix("val_") {
                    w.add_scalar(&format!("epoch_{k}"), step, v)?;
                }
            }
            w.flush()?;
        }
        if self.histogram_freq > 0 && epoch.is_multiple_of(self.histogram_freq) {
            self.log_weights(model, epoch)?;
        }
        if let Some(w) = self.train.as_mut() {
            w.flush()?;
        }
        Ok(())
    }

    fn on_train_end(&mut self, _model: &mut Model, _logs: &Logs) -> Result<()> {
        for w in [self.train.as_mut(), self.val.as_mut()]
            .into_iter()
            .flatten()
        {
            w.flush()?;
        }
        Ok(())
    }
}
