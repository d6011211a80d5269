//! `ModelCheckpoint`: save the model or its weights during training.

use super::monitor::{Mode, Monitor};
use super::pyfmt::format_template;
use super::{Callback, Logs, TrainParams};
use crate::{Error, Model, Result};
use std::path::{Path, PathBuf};

/// When [`ModelCheckpoint`] saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaveFreq {
    /// At the end of every epoch (Keras' `"epoch"`).
    #[default]
    Epoch,
    /// At the end of every `n`-th epoch (epochs `n`, `2n`, ... counting from 1).
    Epochs(usize),
    /// Every `n` training batches, counted across epochs (Keras' integer `save_freq`);
    /// `{batch}` in the file name is the 1-based batch within its epoch.
    Batches(usize),
}

/// Saves the model (or only its weights) during `fit`, to a path templated with `{epoch}`
/// (1-based), `{batch}` and any log key, with Python format specs:
/// `"ckpt/weights-{epoch:02d}-{val_loss:.4f}.safetensors"`.
///
/// With `save_best_only`, it saves only when `monitor` improves (Keras semantics; a missing
/// key saves anyway, as Keras does). Writes are atomic (temp file + rename) and missing parent
/// folders are created.
pub struct ModelCheckpoint {
    filepath: String,
    monitor: String,
    mode: Mode,
    save_best_only: bool,
    save_weights_only: bool,
    save_freq: SaveFreq,
    initial_value_threshold: Option<f64>,
    verbose: u8,
    op: Option<Monitor>,
    best: Option<f64>,
    current_epoch: usize,
    batches_since_save: usize,
    last_batch: Option<usize>,
    saved: Vec<PathBuf>,
}

impl ModelCheckpoint {
    /// Saves the whole model to `filepath` (a template) after every epoch.
    pub fn new(filepath: impl Into<String>) -> Self {
        ModelCheckpoint {
            filepath: filepath.into(),
            monitor: "val_loss".into(),
            mode: Mode::Auto,
            save_best_only: false,
            save_weights_only: false,
            save_freq: SaveFreq::Epoch,
            initial_value_threshold: None,
            verbose: 0,
            op: None,
            best: None,
            current_epoch: 0,
            batches_since_save: 0,
            last_batch: None,
            saved: Vec::new(),
        }
    }

    /// The quantity `save_best_only` watches (default `"val_loss"`).
    pub fn monitor(mut self, key: impl Into<String>) -> Self {
        self.monitor = key.into();
        self
    }

    /// Direction of improvement of `monitor`.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Save only when `monitor` improves on the best value so far.
    pub fn save_best_only(mut self, on: bool) -> Self {
        self.save_best_only = on;
        self
    }

    /// Save only the weights (`Model::save_weights`) instead of the whole model.
    pub fn save_weights_only(mut self, on: bool) -> Self {
        self.save_weights_only = on;
        self
    }

    /// How often to save.
    pub fn save_freq(mut self, freq: SaveFreq) -> Self {
        self.save_freq = freq;
        self
    }

    /// With `save_best_only`, the value the first save must beat.
    pub fn initial_value_threshold(mut self, v: f64) -> Self {
        self.initial_value_threshold = Some(v);
        self
    }

    /// 1 prints a line per save decision.
    pub fn verbose(mut self, verbose: u8) -> Self {
        self.verbose = verbose;
        self
    }

    /// Every path written, in order (a path saved twice appears twice).
    pub fn saved_paths(&self) -> &[PathBuf] {
        &self.saved
    }

    /// The best monitored value (with `save_best_only`).
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    fn save(
        &mut self,
        model: &mut Model,
        epoch: usize,
        batch: Option<usize>,
        logs: &Logs,
    ) -> Result<()> {
        let path = PathBuf::from(format_template(
            &self.filepath,
            epoch + 1,
            batch.map(|b| b + 1),
            logs,
        )?);
        if self.save_best_only {
            match logs.get(&self.monitor) {
                None => {
                    eprintln!(
                        "ModelCheckpoint: can save best model only with '{}' available; saving",
                        self.monitor
                    );
                }
                Some(current) => {
                    let op = self.op.ok_or_else(|| {
                        Error::config("ModelCheckpoint: on_train_begin was not called")
                    })?;
                    let best_str = self.best.map_or("None".into(), |b| format!("{b:.5}"));
                    if !op.is_improvement(current, self.best) {
                        if self.verbose > 0 {
                            println!(
                                "Epoch {}: {} did not improve from {best_str}",
                                epoch + 1,
                                self.monitor
                            );
                        }
                        return Ok(());
                    }
                    if self.verbose > 0 {
                        println!(
                            "Epoch {}: {} improved from {best_str} to {current:.5}, saving \
                             model to {}",
                            epoch + 1,
                            self.monitor,
                            path.display()
                        );
                    }
                    self.best = Some(current);
                }
            }
        } else if self.verbose > 0 {
            println!("Epoch {}: saving model to {}", epoch + 1, path.display());
        }
        if path.is_dir() {
            return Err(Error::config(format!(
                "ModelCheckpoint: {} is an existing directory; give a file path",
                path.display()
            )));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        save_model(model, &path, self.save_weights_only)?;
        self.saved.push(path);
        Ok(())
    }
}

impl Callback for ModelCheckpoint {
    fn on_train_begin(&mut self, _model: &mut Model, _params: &TrainParams) -> Result<()> {
        match self.save_freq {
            SaveFreq::Epochs(0) | SaveFreq::Batches(0) => {
                return Err(Error::config(
                    "ModelCheckpoint: save_freq must be at least 1",
                ))
            }
            _ => {}
        }
        self.op = if self.save_best_only {
            Some(Monitor::new(
                "ModelCheckpoint",
                &self.monitor,
                self.mode,
                0.0,
            )?)
        } else {
            None
        };
        self.best = self.initial_value_threshold;
        self.batches_since_save = 0;
        self.last_batch = None;
        Ok(())
    }

    fn on_epoch_begin(&mut self, _model: &mut Model, epoch: usize) -> Result<()> {
        self.current_epoch = epoch;
        Ok(())
    }

    fn on_batch_end(&mut self, model: &mut Model, batch: usize, logs: &Logs) -> Result<()> {
        let SaveFreq::Batches(n) = self.save_freq else {
            return Ok(());
        };
        // Keras' counting: a batch index that does not follow the last one starts a new epoch.
        let add = match self.last_batch {
            Some(last) if batch > last => batch - last,
            _ => batch + 1,
        };
        self.batches_since_save += add;
        self.last_batch = Some(batch);
        if self.batches_since_save >= n {
            self.batches_since_save = 0;
            self.save(model, self.current_epoch, Some(batch), logs)?;
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, model: &mut Model, epoch: usize, logs: &Logs) -> Result<()> {
        match self.save_freq {
            SaveFreq::Epoch => self.save(model, epoch, None, logs),
            SaveFreq::Epochs(n) if (epoch + 1).is_multiple_of(n) => {
                self.save(model, epoch, None, logs)
            }
            _ => Ok(()),
        }
    }
}

fn save_model(model: &Model, path: &Path, weights_only: bool) -> Result<()> {
    if weights_only {
        model.save_weights(path)
    } else {
        model.save(path)
    }
}
