//! Progress output of `fit` (Keras `ProgbarLogger`).

use super::{Callback, Logs, TrainParams};
use crate::{Model, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;
use std::time::{Duration, Instant};

/// Where the logger writes.
enum Sink {
    /// The process's stdout: a live bar when it is a terminal, summary lines otherwise.
    Stdout,
    /// Summary lines into a writer (never a bar): logs, tests.
    Writer(Box<dyn Write + Send>),
    /// A bar drawn on a given target (tests of the bar itself).
    #[cfg(test)]
    Target(Option<ProgressDrawTarget>),
}

/// Prints training progress like Keras:
/// - `verbose` 0: nothing;
/// - 1: `Epoch 3/10`, then a live bar
///   `7/10 [=====================>........] - ETA: 2s - loss: 0.1234 - accuracy: 0.9876 - 12ms/step`
///   that ends as `10/10 [==============================] - 1s 12ms/step - loss: ... - val_loss: ...`.
///   When stdout is not a terminal the bar hides itself and one summary line per epoch is
///   printed instead (`Epoch 3/10 - 10/10 - 1s 12ms/step - loss: ...`), so logs are not spammed;
/// - 2: one line per epoch: `Epoch 3/10 - 1s - 12ms/step - loss: ... - val_loss: ...`.
///
/// `fit` adds one with its `verbose` option; add your own (with `verbose` 0 in `fit`) to send
/// the lines elsewhere with [`ProgbarLogger::to_writer`].
pub struct ProgbarLogger {
    verbose: u8,
    epochs: usize,
    steps: Option<usize>,
    sink: Sink,
    bar: Option<ProgressBar>,
    epoch_start: Instant,
    seen: usize,
}

impl ProgbarLogger {
    /// A logger on stdout for this verbosity.
    pub fn new(verbose: u8) -> Self {
        Self::with_sink(verbose, Sink::Stdout)
    }

    /// A logger writing its per-epoch summary lines to `w` (no live bar).
    pub fn to_writer(verbose: u8, w: impl Write + Send + 'static) -> Self {
        Self::with_sink(verbose, Sink::Writer(Box::new(w)))
    }

    fn with_sink(verbose: u8, sink: Sink) -> Self {
        ProgbarLogger {
            verbose,
            epochs: 0,
            steps: None,
            sink,
            bar: None,
            epoch_start: Instant::now(),
            seen: 0,
        }
    }

    /// A draw target for a live bar, or `None` when lines must be printed instead.
    fn bar_target(&mut self) -> Option<ProgressDrawTarget> {
        match &mut self.sink {
            Sink::Stdout => {
                let t = ProgressDrawTarget::stdout();
                (!t.is_hidden()).then_some(t)
            }
            Sink::Writer(_) => None,
            #[cfg(test)]
            Sink::Target(t) => t.take(),
        }
    }

    fn line(&mut self, s: &str) -> Result<()> {
        match &mut self.sink {
            Sink::Writer(w) => writeln!(w, "{s}")
                .and_then(|_| w.flush())
                .map_err(|e| crate::Error::io("<progress output>", e)),
            _ => {
                println!("{s}");
                Ok(())
            }
        }
    }

    fn epoch_header(&self, epoch: usize) -> String {
        format!("Epoch {}/{}", epoch + 1, self.epochs)
    }
}

/// `loss: 0.1234 - accuracy: 0.9876` (Keras' log format: 4 decimals, or `1.2346e-05` for
/// magnitudes up to 1e-3).
pub fn format_logs(logs: &Logs) -> String {
    logs.iter()
        .map(|(k, v)| format!("{k}: {}", format_value(v)))
        .collect::<Vec<_>>()
        .join(" - ")
}

fn format_value(v: f64) -> String {
    if v.abs() > 1e-3 || !v.is_finite() {
        format!("{v:.4}")
    } else {
        let s = format!("{v:.4e}");
        // Python's exponent layout (`e-05`), like Keras prints.
        match s.split_once('e') {
            Some((m, e)) => {
                let e: i32 = e.parse().unwrap_or(0);
                format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
            }
            None => s,
        }
    }
}

/// Keras' time per step: `2s/step`, `12ms/step`, `85us/step`.
fn format_per_step(per_step: Duration) -> String {
    let t = per_step.as_secs_f64();
    if t >= 1.0 || t == 0.0 {
        format!("{t:.0}s/step")
    } else if t >= 1e-3 {
        format!("{:.0}ms/step", t * 1e3)
    } else {
        format!("{:.0}us/step", t * 1e6)
    }
}

/// Keras' ETA: `42s`, `1:02`, `1:02:03`.
fn format_eta(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else if s >= 60 {
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn per_step(elapsed: Duration, steps: usize) -> Duration {
    if steps == 0 {
        Duration::ZERO
    } else {
        elapsed / steps as u32
    }
}

impl Callback for ProgbarLogger {
    fn on_train_begin(&mut self, _model: &mut Model, params: &TrainParams) -> Result<()> {
        self.epochs = params.epochs;
        self.steps = params.steps;
        Ok(())
    }

    fn on_epoch_begin(&mut self, _model: &mut Model, epoch: usize) -> Result<()> {
        self.epoch_start = Instant::now();
        self.seen = 0;
        if self.verbose != 1 {
            return Ok(());
        }
        if let Some(target) = self.bar_target() {
            let header = self.epoch_header(epoch);
            let bar = ProgressBar::with_draw_target(self.steps.map(|s| s as u64), target);
            let template = if self.steps.is_some() {
                "{pos}/{len} [{bar:30}] {msg}"
            } else {
                "{pos}/Unknown {msg}"
            };
            // The template is a constant: it always parses.
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=>."));
            }
            bar.println(header);
            self.bar = Some(bar);
        }
        Ok(())
    }

    fn on_batch_end(&mut self, _model: &mut Model, batch: usize, logs: &Logs) -> Result<()> {
        self.seen = batch + 1;
        if let Some(bar) = &self.bar {
            let elapsed = self.epoch_start.elapsed();
            let ps = per_step(elapsed, self.seen);
            let eta = match self.steps {
                Some(total) => format!(
                    "- ETA: {} ",
                    format_eta(ps.as_secs_f64() * total.saturating_sub(self.seen) as f64)
                ),
                None => String::new(),
            };
            bar.set_position(self.seen as u64);
            bar.set_message(format!(
                "{eta}- {} - {}",
                format_logs(logs),
                format_per_step(ps)
            ));
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, _model: &mut Model, epoch: usize, logs: &Logs) -> Result<()> {
        let elapsed = self.epoch_start.elapsed();
        let timing = format!(
            "{:.0}s {}",
            elapsed.as_secs_f64(),
            format_per_step(per_step(elapsed, self.seen))
        );
        let logs_text = format_logs(logs);
        match self.verbose {
            0 => {}
            1 => {
                if let Some(bar) = self.bar.take() {
                    bar.set_position(self.seen as u64);
                    if self.steps.is_none() {
                        bar.set_length(self.seen as u64);
                    }
                    bar.finish_with_message(format!("- {timing} - {logs_text}"));
                } else {
                    let total = self
                        .steps
                        .map_or_else(|| "Unknown".to_string(), |s| s.to_string());
                    let line = format!(
                        "{} - {}/{total} - {timing} - {logs_text}",
                        self.epoch_header(epoch),
                        self.seen
                    );
                    self.line(&line)?;
                }
            }
            _ => {
                let line = format!(
                    "{} - {:.0}s - {} - {logs_text}",
                    self.epoch_header(epoch),
                    elapsed.as_secs_f64(),
                    format_per_step(per_step(elapsed, self.seen))
                );
                self.line(&line)?;
            }
        }
        Ok(())
    }

    fn on_train_end(&mut self, _model: &mut Model, _logs: &Logs) -> Result<()> {
        // A bar left over from an epoch that errored or stopped early: keep what it showed.
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::TermLike;
    use std::sync::{Arc, Mutex};

    /// A terminal that records the lines written to it.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl TermLike for Recorder {
        fn width(&self) -> u16 {
            200
        }
        fn move_cursor_up(&self, _n: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _n: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _n: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _n: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(s.to_string());
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(s.to_string());
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn formats_like_keras() {
        let mut logs = Logs::new();
        logs.insert("loss", 0.123456);
        logs.insert("lr", 1e-4);
        assert_eq!(format_logs(&logs), "loss: 0.1235 - lr: 1.0000e-04");
        assert_eq!(format_per_step(Duration::from_micros(12_400)), "12ms/step");
        assert_eq!(format_per_step(Duration::from_micros(85)), "85us/step");
        assert_eq!(format_per_step(Duration::from_millis(2400)), "2s/step");
        assert_eq!(format_eta(42.4), "42s");
        assert_eq!(format_eta(62.0), "1:02");
        assert_eq!(format_eta(3723.0), "1:02:03");
    }

    /// The bar drawn on a terminal: header line, then the finished bar with all logs.
    #[test]
    fn draws_a_keras_bar_on_a_terminal() {
        let rec = Recorder::default();
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(rec.clone()), 20);
        let mut p = ProgbarLogger::with_sink(1, Sink::Target(Some(target)));
        p.epochs = 3;
        p.steps = Some(4);
        // The model is not used by the logger's epoch/batch hooks; build the smallest one.
        let net = ferrovision_nn::Sequential::new(&[1])
            .add(ferrovision_nn::layers::Dense::new(1))
            .build()
            .unwrap();
        let mut model = Model::new(net);
        p.on_epoch_begin(&mut model, 1).unwrap();
        let mut logs = Logs::new();
        logs.insert("loss", 0.5);
        for b in 0..4 {
            p.on_batch_end(&mut model, b, &logs).unwrap();
        }
        logs.insert("val_loss", 0.25);
        p.on_epoch_end(&mut model, 1, &logs).unwrap();
        let lines = rec.0.lock().unwrap().clone();
        assert!(lines.iter().any(|l| l == "Epoch 2/3"), "{lines:?}");
        let last = lines
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap()
            .trim_end();
        assert!(
            last.starts_with(&format!("4/4 [{}] - ", "=".repeat(30))),
            "{last}"
        );
        assert!(
            last.ends_with("step - loss: 0.5000 - val_loss: 0.2500"),
            "{last}"
        );
    }
}
