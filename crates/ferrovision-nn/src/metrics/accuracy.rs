//! Accuracy metrics: binary (threshold), categorical (argmax vs argmax of one-hot), sparse
//! categorical (argmax vs integer label), and top-k (one-hot or sparse targets).

use super::config::{named, serialized, BinaryAccuracyConfig, NameConfig, TopKConfig};
use super::mean::{mean_metric_methods, WeightedMean};
use super::{row_means, same_shape_f64, Metric};
use crate::{Error, Result};
use ferrovision_tensor::Tensor;
use serde_json::Value;

/// Which accuracy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AccuracyKind {
    /// `y_pred > threshold` equals `y_true` (0/1), element-wise.
    Binary {
        /// Decision threshold on the predictions (Keras default 0.5).
        threshold: f64,
    },
    /// `argmax(y_pred) == argmax(y_true)` over the class axis (1) for one-hot targets.
    Categorical,
    /// `argmax(y_pred) == y_true` over the class axis (1) for integer targets.
    Sparse,
    /// Chosen from the shapes at the first update, with Keras 3's rule for `"accuracy"`:
    /// binary when `y_pred` has one class, sparse when `y_true` has fewer axes than `y_pred`
    /// (or one class against several), categorical otherwise.
    Auto,
}

/// The Keras accuracies: `BinaryAccuracy`, `CategoricalAccuracy`, `SparseCategoricalAccuracy`,
/// and the automatic choice behind `metrics=["accuracy"]`.
///
/// Each sample's value is the fraction of its positions that match (1 or 0 for `[N, C]`
/// predictions; per-pixel for `[N, C, H, W]`), and the result is the mean over samples,
/// weighted by `sample_weight`.
///
/// ```
/// use ferrovision_nn::metrics::Accuracy;
/// use ferrovision_nn::Metric;
/// use ferrovision_nn::tensor::Tensor;
/// let mut acc = Accuracy::sparse();
/// let logits = Tensor::from_vec(vec![0.1f32, 0.9, 0.8, 0.2], &[2, 2])?;
/// acc.update(&Tensor::from_vec(vec![1i64, 1], &[2])?, &logits, None)?;
/// assert_eq!(acc.result(), 0.5);
/// # Ok::<(), ferrovision_nn::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Accuracy {
    name: String,
    kind: AccuracyKind,
    resolved: Option<AccuracyKind>,
    state: WeightedMean,
}

impl Accuracy {
    /// An accuracy of this kind, named like Keras' class (`binary_accuracy`,
    /// `categorical_accuracy`, `sparse_categorical_accuracy`, or `accuracy` for `Auto`).
    pub fn new(kind: AccuracyKind) -> Self {
        let name = match kind {
            AccuracyKind::Binary { .. } => "binary_accuracy",
            AccuracyKind::Categorical => "categorical_accuracy",
            AccuracyKind::Sparse => "sparse_categorical_accuracy",
            AccuracyKind::Auto => "accuracy",
        };
        Accuracy {
            name: name.into(),
            kind,
            resolved: None,
            state: WeightedMean::default(),
        }
    }

    /// Binary accuracy with threshold 0.5.
    pub fn binary() -> Self {
        Self::new(AccuracyKind::Binary { threshold: 0.5 })
    }

    /// Binary accuracy with another threshold.
    pub fn binary_threshold(threshold: f64) -> Self {
        Self::new(AccuracyKind::Binary { threshold })
    }

    /// Categorical accuracy (one-hot targets).
    pub fn categorical() -> Self {
        Self::new(AccuracyKind::Categorical)
    }

    /// Sparse categorical accuracy (integer targets).
    pub fn sparse() -> Self {
        Self::new(AccuracyKind::Sparse)
    }

    /// The kind chosen from the shapes at the first update (`"accuracy"`).
    pub fn auto() -> Self {
        Self::new(AccuracyKind::Auto)
    }

    /// Renames the metric (Keras logs `"accuracy"` when compiled with that string).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// The configured kind (`Auto` stays `Auto`; see [`Accuracy::resolved_kind`]).
    pub fn kind(&self) -> AccuracyKind {
        self.kind
    }

    /// The kind in use: the configured one, or what `Auto` chose (None before the first update).
    pub fn resolved_kind(&self) -> Option<AccuracyKind> {
        match self.kind {
            AccuracyKind::Auto => self.resolved,
            k => Some(k),
        }
    }

    /// The config (`{"class_name": "BinaryAccuracy" | "CategoricalAccuracy" |
    /// "SparseCategoricalAccuracy" | "AutoAccuracy", "config": {...}}`).
    pub fn config(&self) -> Value {
        match self.kind {
            AccuracyKind::Binary { threshold } => serialized(
                "BinaryAccuracy",
                &BinaryAccuracyConfig {
                    name: named(&self.name),
                    threshold: Some(threshold),
                },
            ),
            AccuracyKind::Categorical => serialized(
                "CategoricalAccuracy",
                &NameConfig {
                    name: named(&self.name),
                },
            ),
            AccuracyKind::Sparse => serialized(
                "SparseCategoricalAccuracy",
                &NameConfig {
                    name: named(&self.name),
                },
            ),
            AccuracyKind::Auto => serialized(
                "AutoAccuracy",
                &NameConfig {
                    name: named(&self.name),
                },
            ),
        }
    }

    fn choose(y_true: &Tensor, y_pred: &Tensor) -> AccuracyKind {
        let (ts, ps) = (y_true.shape(), y_pred.shape());
        // Keras looks at the last axis; ours is channels-first, so the class axis is 1 (for
        // [N, C] that is the same axis).
        let class_dim = |s: &[usize]| if s.len() >= 2 { s[1] } else { 1 };
        if ps.len() < 2 || class_dim(ps) == 1 {
            AccuracyKind::Binary { threshold: 0.5 }
        } else if ts.len() < ps.len() || class_dim(ts) == 1 {
            AccuracyKind::Sparse
        } else {
            AccuracyKind::Categorical
        }
    }
}

/// `[N, C, inner]` view of a class-axis-1 tensor's shape.
pub(super) fn class_dims(metric: &str, shape: &[usize]) -> Result<(usize, usize, usize)> {
    if shape.len() < 2 {
        return Err(Error::config(format!(
            "metric '{metric}': y_pred must be [N, C] or [N, C, d1, ...] (class axis 1), got \
             shape {shape:?}"
        )));
    }
    Ok((shape[0], shape[1], shape[2..].iter().product()))
}

/// Index of the first largest score at each position: `[N * inner]` in (sample, position)
/// order. NaN never wins.
pub(super) fn argmax_axis1(v: &[f64], n: usize, c: usize, inner: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(n * inner);
    for i in 0..n {
        for j in 0..inner {
            let mut best = 0;
            let mut bv = f64::NEG_INFINITY;
            for k in 0..c {
                let x = v[(i * c + k) * inner + j];
                if x > bv || (k == 0 && !x.is_nan()) {
                    best = k;
                    bv = x;
                }
            }
            out.push(best);
        }
    }
    out
}

/// Per-sample fraction of matching positions.
fn per_sample_fraction(hits: &[bool], n: usize) -> Vec<f64> {
    row_means(hits.len(), n, |j| if hits[j] { 1.0 } else { 0.0 })
}

/// Integer-label targets `[N, d...]` (or `[N, 1, d...]`) for class-axis-1 predictions.
pub(super) fn sparse_labels(metric: &str, y_true: &Tensor, y_pred: &Tensor) -> Result<Vec<f64>> {
    let (ts, ps) = (y_true.shape(), y_pred.shape());
    let mut want = vec![ps[0]];
    want.extend_from_slice(&ps[2..]);
    let squeezable = ts.len() == ps.len() && ts[1] == 1 && ts[0] == ps[0] && ts[2..] == ps[2..];
    if ts != want.as_slice() && !squeezable {
        return Err(Error::config(format!(
            "metric '{metric}': y_true has shape {ts:?} and y_pred has shape {ps:?}; integer \
             targets must have shape {want:?}"
        )));
    }
    Ok(y_true.to_f64_vec()?)
}

impl Metric for Accuracy {
    mean_metric_methods!(no_fresh);

    fn update(&mut self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<()> {
        let kind = match self.kind {
            AccuracyKind::Auto => *self
                .resolved
                .get_or_insert_with(|| Self::choose(y_true, y_pred)),
            k => k,
        };
        let name = &self.name;
        let values = match kind {
            AccuracyKind::Binary { threshold } => {
                let (t, p, n) = same_shape_f64(name, y_true, y_pred)?;
                let hits: Vec<bool> = t
                    .iter()
                    .zip(&p)
                    .map(|(&t, &p)| t == if p > threshold { 1.0 } else { 0.0 })
                    .collect();
                per_sample_fraction(&hits, n)
            }
            AccuracyKind::Categorical => {
                if y_true.shape() != y_pred.shape() {
                    return Err(Error::config(format!(
                        "metric '{name}': y_true has shape {:?} and y_pred has shape {:?}; \
                         one-hot targets must have the predictions' shape",
                        y_true.shape(),
                        y_pred.shape()
                    )));
                }
                let (n, c, inner) = class_dims(name, y_pred.shape())?;
                let a = argmax_axis1(&y_true.to_f64_vec()?, n, c, inner);
                let b = argmax_axis1(&y_pred.to_f64_vec()?, n, c, inner);
                let hits: Vec<bool> = a.iter().zip(&b).map(|(x, y)| x == y).collect();
                per_sample_fraction(&hits, n)
            }
            AccuracyKind::Sparse => {
                let (n, c, inner) = class_dims(name, y_pred.shape())?;
                let labels = sparse_labels(name, y_true, y_pred)?;
                let b = argmax_axis1(&y_pred.to_f64_vec()?, n, c, inner);
                let hits: Vec<bool> = labels
                    .iter()
                    .zip(&b)
                    .map(|(&t, &k)| t == k as f64)
                    .collect();
                per_sample_fraction(&hits, n)
            }
            AccuracyKind::Auto => unreachable!("Auto is resolved above"),
        };
        self.state.add_weighted(name, &values, sw)
    }

    fn fresh(&self) -> Box<dyn Metric> {
        // Also forgets what `Auto` chose (a fresh metric may see other shapes).
        Box::new(Accuracy {
            name: self.name.clone(),
            kind: self.kind,
            resolved: None,
            state: WeightedMean::default(),
        })
    }
}

/// Keras `TopKCategoricalAccuracy` (one-hot targets) and `SparseTopKCategoricalAccuracy`
/// (integer targets): whether the target class is among the `k` highest scores. Like
/// `tf.math.in_top_k`, classes tied with the target's score do not push it out (the target is
/// in the top k when fewer than `k` classes score strictly higher), and a position with a
/// non-finite score is a miss. Predictions `[N, C]` or `[N, C, d...]` (class axis 1).
#[derive(Debug, Clone)]
pub struct TopKCategoricalAccuracy {
    name: String,
    k: usize,
    sparse: bool,
    state: WeightedMean,
}

impl TopKCategoricalAccuracy {
    /// Top-`k` accuracy for one-hot targets, named `top_k_categorical_accuracy`.
    pub fn new(k: usize) -> Self {
        TopKCategoricalAccuracy {
            name: "top_k_categorical_accuracy".into(),
            k,
            sparse: false,
            state: WeightedMean::default(),
        }
    }

    /// Top-`k` accuracy for integer targets, named `sparse_top_k_categorical_accuracy`.
    pub fn sparse(k: usize) -> Self {
        TopKCategoricalAccuracy {
            name: "sparse_top_k_categorical_accuracy".into(),
            k,
            sparse: true,
            state: WeightedMean::default(),
        }
    }

    /// Renames the metric (e.g. `top_5_accuracy`).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// The config.
    pub fn config(&self) -> Value {
        let class = if self.sparse {
            "SparseTopKCategoricalAccuracy"
        } else {
            "TopKCategoricalAccuracy"
        };
        serialized(
            class,
            &TopKConfig {
                name: named(&self.name),
                k: Some(self.k),
            },
        )
    }
}

impl Metric for TopKCategoricalAccuracy {
    mean_metric_methods!();

    fn update(&mut self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<()> {
        let name = &self.name;
        if self.k == 0 {
            return Err(Error::config(format!(
                "metric '{name}': k must be at least 1"
            )));
        }
        let (n, c, inner) = class_dims(name, y_pred.shape())?;
        let p = y_pred.to_f64_vec()?;
        let targets: Vec<f64> = if self.sparse {
            sparse_labels(name, y_true, y_pred)?
        } else {
            if y_true.shape() != y_pred.shape() {
                return Err(Error::config(format!(
                    "metric '{name}': y_true has shape {:?} and y_pred has shape {:?}; one-hot \
                     targets must have the predictions' shape",
                    y_true.shape(),
                    y_pred.shape()
                )));
            }
            argmax_axis1(&y_true.to_f64_vec()?, n, c, inner)
                .into_iter()
                .map(|k| k as f64)
                .collect()
        };
        let mut hits = Vec::with_capacity(n * inner);
        for i in 0..n {
            for j in 0..inner {
                let t = targets[i * inner + j];
                let at = |k: usize| p[(i * c + k) * inner + j];
                let finite = (0..c).all(|k| at(k).is_finite());
                let hit = t >= 0.0 && t.fract() == 0.0 && (t as usize) < c && finite && {
                    let s = at(t as usize);
                    (0..c).filter(|&k| at(k) > s).count() < self.k
                };
                hits.push(hit);
            }
        }
        self.state
            .add_weighted(name, &per_sample_fraction(&hits, n), sw)
    }
}
