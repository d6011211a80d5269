//! Precision and recall from a streaming (weighted) confusion count at one threshold.

use super::config::{named, serialized, ConfusionConfig};
use super::{read_weights, same_shape_f64, Metric};
use crate::{Error, Result};
use ferrovision_tensor::Tensor;
use serde_json::Value;

/// Weighted true positives, false positives and false negatives.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counts {
    tp: f64,
    fp: f64,
    fn_: f64,
}

/// Shared state of [`Precision`] and [`Recall`].
#[derive(Debug, Clone)]
struct Confusion {
    name: String,
    threshold: f64,
    class_id: Option<usize>,
    counts: Counts,
}

impl Confusion {
    fn update(&mut self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<()> {
        let name = &self.name;
        let (y_true, y_pred) = match self.class_id {
            None => (y_true.clone(), y_pred.clone()),
            Some(k) => {
                if y_pred.rank() < 2 || y_true.shape() != y_pred.shape() {
                    return Err(Error::config(format!(
                        "metric '{name}': with class_id, y_true and y_pred must both be [N, C] \
                         (or [N, C, d...]), got {:?} and {:?}",
                        y_true.shape(),
                        y_pred.shape()
                    )));
                }
                let c = y_pred.shape()[1];
                if k >= c {
                    return Err(Error::config(format!(
                        "metric '{name}': class_id {k} is out of range for {c} classes \
                         (y_pred shape {:?})",
                        y_pred.shape()
                    )));
                }
                (y_true.narrow(1, k, 1)?, y_pred.narrow(1, k, 1)?)
            }
        };
        let (t, p, n) = same_shape_f64(name, &y_true, &y_pred)?;
        let w = read_weights(name, sw, n)?;
        let per = p.len().checked_div(n).unwrap_or(0);
        for (i, (&t, &p)) in t.iter().zip(&p).enumerate() {
            let wt = w.as_ref().map_or(1.0, |w| w[i / per]);
            let (label, pred) = (t != 0.0, p > self.threshold);
            match (label, pred) {
                (true, true) => self.counts.tp += wt,
                (false, true) => self.counts.fp += wt,
                (true, false) => self.counts.fn_ += wt,
                (false, false) => {}
            }
        }
        Ok(())
    }

    fn config(&self, class: &str) -> Value {
        serialized(
            class,
            &ConfusionConfig {
                name: named(&self.name),
                thresholds: Some(self.threshold),
                class_id: self.class_id,
            },
        )
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

macro_rules! confusion_metric {
    ($ty:ident, $default_name:literal, $doc:literal, $value:expr) => {
        #[doc = $doc]
        ///
        /// A prediction is positive when `y_pred > threshold` (default 0.5) and a label is
        /// positive when non-zero; every element counts (multi-label `[N, C]` predictions are
        /// pooled), weighted by its sample's weight. `class_id` restricts the count to one
        /// class (index on axis 1). The result is 0 while the denominator is 0, like Keras.
        #[derive(Debug, Clone)]
        pub struct $ty(Confusion);

        impl Default for $ty {
            fn default() -> Self {
                $ty(Confusion {
                    name: $default_name.into(),
                    threshold: 0.5,
                    class_id: None,
                    counts: Counts::default(),
                })
            }
        }

        impl $ty {
            /// Threshold 0.5, all classes.
            pub fn new() -> Self {
                Self::default()
            }

            /// Sets the decision threshold.
            pub fn threshold(mut self, threshold: f64) -> Self {
                self.0.threshold = threshold;
                self
            }

            /// Counts only class `class_id` (axis 1 of `[N, C]` predictions).
            pub fn class_id(mut self, class_id: Option<usize>) -> Self {
                self.0.class_id = class_id;
                self
            }

            /// Renames the metric.
            pub fn named(mut self, name: &str) -> Self {
                self.0.name = name.into();
                self
            }

            /// The config (`thresholds`, `class_id` as in Keras).
            pub fn config(&self) -> Value {
                self.0.config(stringify!($ty))
            }
        }

        impl Metric for $ty {
            fn config(&self) -> Value {
                // The inherent method (takes precedence over this trait method).

                Self::config(self)
            }

            fn name(&self) -> String {
                self.0.name.clone()
            }
            fn update(
                &mut self,
                y_true: &Tensor,
                y_pred: &Tensor,
                sw: Option<&Tensor>,
            ) -> Result<()> {
                self.0.update(y_true, y_pred, sw)
            }
            fn result(&self) -> f64 {
                let f: fn(&Counts) -> f64 = $value;
                f(&self.0.counts)
            }
            fn reset(&mut self) {
                self.0.counts = Counts::default();
            }
            fn state(&self) -> Option<Vec<f64>> {
                let c = &self.0.counts;
                Some(vec![c.tp, c.fp, c.fn_])
            }
            fn set_state(&mut self, state: &[f64]) -> Result<()> {
                match state {
                    [tp, fp, fn_] => {
                        self.0.counts = Counts {
                            tp: *tp,
                            fp: *fp,
                            fn_: *fn_,
                        };
                        Ok(())
                    }
                    _ => Err(super::state_len_error(&self.0.name, 3, state.len())),
                }
            }
            fn fresh(&self) -> Box<dyn Metric> {
                let mut c = self.0.clone();
                c.counts = Counts::default();
                Box::new($ty(c))
            }
        }
    };
}

confusion_metric!(
    Precision,
    "precision",
    "Keras `Precision`: weighted `tp / (tp + fp)`.",
    |c| ratio(c.tp, c.tp + c.fp)
);
confusion_metric!(
    Recall,
    "recall",
    "Keras `Recall`: weighted `tp / (tp + fn)`.",
    |c| ratio(c.tp, c.tp + c.fn_)
);
