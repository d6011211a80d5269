//! `CSVLogger`: one CSV row per epoch.

use super::pyfmt::py_float_repr;
use super::{Callback, Logs, TrainParams};
use crate::{Error, History, Model, Result};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Streams the epoch logs to a CSV file, as Keras' `CSVLogger`: columns `epoch` (from 0) then
/// the first epoch's keys sorted (plus `val_<key>` columns when no validation key is present,
/// filled with `NA`), values as Python `repr` floats. Each row is flushed when written, so the
/// file can be watched during training. With `append`, rows go after an existing file's
/// content and the header is written only when that file is empty. Rows end with `\n` (Keras'
/// excel dialect writes `\r\n`).
pub struct CSVLogger {
    path: PathBuf,
    separator: char,
    append: bool,
    file: Option<File>,
    keys: Option<Vec<String>>,
    write_header: bool,
}

impl CSVLogger {
    /// Logs to `path` (truncated at the start of `fit`), separated by commas.
    pub fn new(path: impl AsRef<Path>) -> Self {
        CSVLogger {
            path: path.as_ref().to_path_buf(),
            separator: ',',
            append: false,
            file: None,
            keys: None,
            write_header: true,
        }
    }

    /// The field separator.
    pub fn separator(mut self, sep: char) -> Self {
        self.separator = sep;
        self
    }

    /// Appends to an existing file (resuming) instead of truncating it.
    pub fn append(mut self, on: bool) -> Self {
        self.append = on;
        self
    }
}

/// Quotes a field the way Python's csv module does (minimal quoting).
fn csv_field(s: &str, sep: char) -> String {
    if s.contains(sep) || s.contains(['"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The columns after `epoch`: the first epoch's keys sorted, plus `val_<key>` columns when no
/// validation key is present (Keras).
fn csv_keys(first: &Logs) -> Vec<String> {
    let mut keys: Vec<String> = first.iter().map(|(k, _)| k.to_string()).collect();
    keys.sort();
    if !keys.is_empty() && !keys.iter().any(|k| k.starts_with("val_")) {
        let val: Vec<String> = keys.iter().map(|k| format!("val_{k}")).collect();
        keys.extend(val);
    }
    keys
}

fn csv_header(keys: &[String], sep: char) -> String {
    let header: Vec<String> = std::iter::once("epoch")
        .chain(keys.iter().map(String::as_str))
        .map(|k| csv_field(k, sep))
        .collect();
    header.join(&sep.to_string()) + "\n"
}

fn csv_row(epoch: usize, keys: &[String], logs: &Logs, sep: char) -> String {
    let row: Vec<String> = std::iter::once(epoch.to_string())
        .chain(
            keys.iter()
                .map(|k| logs.get(k).map_or("NA".to_string(), py_float_repr)),
        )
        .map(|v| csv_field(&v, sep))
        .collect();
    row.join(&sep.to_string()) + "\n"
}

/// The whole CSV text [`CSVLogger`] writes for these epochs (comma-separated, with header), so a
/// log can be rebuilt from a [`History`] (e.g. after resuming from a checkpoint).
pub fn history_csv(history: &History) -> String {
    let Some(first) = history.logs.first() else {
        return String::new();
    };
    let keys = csv_keys(first);
    let mut out = csv_header(&keys, ',');
    for (&epoch, logs) in history.epochs.iter().zip(&history.logs) {
        out += &csv_row(epoch, &keys, logs, ',');
    }
    out
}

impl Callback for CSVLogger {
    fn on_train_begin(&mut self, _model: &mut Model, _params: &TrainParams) -> Result<()> {
        if self.separator == '"' || self.separator == '\n' || self.separator == '\r' {
            return Err(Error::config(format!(
                "CSVLogger: {:?} cannot be the separator",
                self.separator
            )));
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        self.write_header = true;
        let file = if self.append {
            if self.path.exists() {
                let f = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
                let mut first = String::new();
                BufReader::new(f)
                    .read_line(&mut first)
                    .map_err(|e| Error::io(&self.path, e))?;
                self.write_header = first.is_empty();
            }
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
        } else {
            File::create(&self.path)
        }
        .map_err(|e| Error::io(&self.path, e))?;
        self.file = Some(file);
        self.keys = None;
        Ok(())
    }

    fn on_epoch_end(&mut self, _model: &mut Model, epoch: usize, logs: &Logs) -> Result<()> {
        let sep = self.separator;
        let mut out = String::new();
        if self.keys.is_none() {
            let keys = csv_keys(logs);
            if self.write_header {
                out.push_str(&csv_header(&keys, sep));
            }
            self.keys = Some(keys);
        }
        let keys = self.keys.as_deref().unwrap_or_default();
        out.push_str(&csv_row(epoch, keys, logs, sep));
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::config("CSVLogger: on_train_begin was not called"))?;
        file.write_all(out.as_bytes())
            .and_then(|_| file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }

    fn on_train_end(&mut self, _model: &mut Model, _logs: &Logs) -> Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_all().map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }
}
