//! What "better" means for a monitored quantity (Keras `MonitorCallback`), shared by
//! EarlyStopping, ModelCheckpoint and ReduceLROnPlateau.

use crate::{Error, Result};

/// Whether the monitored quantity should go down or up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// From the name: losses and errors go down; accuracy, precision, recall, AUC, PSNR and
    /// IoU go up; anything else is an error asking for an explicit mode (as Keras does).
    #[default]
    Auto,
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
}

/// A resolved comparison: direction and the signed minimum change (Keras negates `min_delta`
/// when minimizing, then tests `current - min_delta` against the reference).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Monitor {
    minimize: bool,
    min_delta: f64,
}

impl Monitor {
    /// Resolves `mode` for the quantity `key`; `who` names the callback in errors.
    pub(crate) fn new(who: &str, key: &str, mode: Mode, min_delta: f64) -> Result<Self> {
        if !min_delta.is_finite() {
            return Err(Error::config(format!(
                "{who}: min_delta must be finite, got {min_delta}"
            )));
        }
        let minimize = match mode {
            Mode::Min => true,
            Mode::Max => false,
            Mode::Auto => infer_minimize(key).ok_or_else(|| {
                Error::config(format!(
                    "{who}: cannot tell whether '{key}' should be minimized or maximized; \
                     set mode to Mode::Min or Mode::Max"
                ))
            })?,
        };
        let d = min_delta.abs();
        Ok(Monitor {
            minimize,
            min_delta: if minimize { -d } else { d },
        })
    }

    /// True when `current` beats `reference` by more than `min_delta` (always true without a
    /// reference). NaN never improves.
    pub(crate) fn is_improvement(&self, current: f64, reference: Option<f64>) -> bool {
        match reference {
            None => true,
            Some(r) if self.minimize => current - self.min_delta < r,
            Some(r) => current - self.min_delta > r,
        }
    }
}

/// Keras infers the direction from the loss name or the metric's declared direction; our
/// metrics carry no direction, so use their names.
fn infer_minimize(key: &str) -> Option<bool> {
    let name = key.strip_prefix("val_").unwrap_or(key).to_ascii_lowercase();
    const DOWN: [&str; 7] = [
        "loss",
        "error",
        "mse",
        "mae",
        "crossentropy",
        "divergence",
        "hinge",
    ];
    const UP: [&str; 8] = [
        "acc",
        "accuracy",
        "auc",
        "precision",
        "recall",
        "psnr",
        "iou",
        "f1",
    ];
    if DOWN
        .iter()
        .any(|d| name == *d || name.ends_with(&format!("_{d}")))
    {
        Some(true)
    } else if UP.iter().any(|u| {
        name == *u || name.ends_with(&format!("_{u}")) || name.starts_with(&format!("{u}_"))
    }) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_mode_from_names() {
        assert_eq!(infer_minimize("val_loss"), Some(true));
        assert_eq!(infer_minimize("output_1_loss"), Some(true));
        assert_eq!(infer_minimize("mean_squared_error"), Some(true));
        assert_eq!(infer_minimize("val_accuracy"), Some(false));
        assert_eq!(infer_minimize("sparse_categorical_accuracy"), Some(false));
        assert_eq!(infer_minimize("top_5_accuracy"), Some(false));
        assert_eq!(infer_minimize("lr"), None);
        assert!(Monitor::new("EarlyStopping", "lr", Mode::Auto, 0.0).is_err());
    }
}
