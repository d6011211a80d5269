//! Cross-entropy losses: binary, categorical (one-hot / soft targets) and sparse categorical
//! (integer targets), on logits or probabilities. The class axis is 1 (channels-first), so
//! `[N, C]` scores and per-pixel `[N, C, H, W]` scores work alike.

use super::config::{serialized, BaseConfig, BinaryConfig, CategoricalConfig, SparseConfig};
use super::util::{
    align_same_shape, check_pred, class_indices, float_targets, per_sample_mean, sample_weight,
    shape_error, weighted_mean, EPS,
};
use super::{Loss, PerSampleLoss};
use crate::{Error, Result};
use ferrovision_tensor::{CrossEntropyOpts, Reduction, Tensor};
use serde_json::Value;

fn check_smoothing(loss: &str, ls: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&ls) {
        return Err(Error::config(format!(
            "loss '{loss}': label_smoothing must be in [0, 1], got {ls}"
        )));
    }
    Ok(())
}

fn check_class_weights(loss: &str, cw: Option<&[f32]>, c: usize) -> Result<()> {
    if let Some(cw) = cw {
        if cw.len() != c {
            return Err(Error::config(format!(
                "loss '{loss}': {} class weights for {c} classes (y_pred's axis 1)",
                cw.len()
            )));
        }
    }
    Ok(())
}

/// `log(clip(p, eps, 1 - eps))`: Keras' treatment of probabilities before the log.
fn clipped_log(p: &Tensor) -> Result<Tensor> {
    Ok(p.clamp(Some(EPS), Some(1.0 - EPS))?.log()?)
}

/// Shape `[N, 1, ..., 1]` of rank `rank`: the sample weights broadcast per position.
fn positions_weight(
    loss: &str,
    sw: Option<&Tensor>,
    n: usize,
    rank: usize,
) -> Result<Option<Tensor>> {
    sample_weight(loss, sw, n, rank)
}

// ----------------------------------------------------------------------------------------------
// Binary
// ----------------------------------------------------------------------------------------------

/// Keras `BinaryCrossentropy`: `−[y·log p + (1−y)·log(1−p)]` per element, averaged.
///
/// Predictions are probabilities (clipped to `[1e-7, 1 − 1e-7]`, the default) or logits
/// (`from_logits(true)`, computed stably by the engine's fused kernel). Targets have the
/// predictions' shape (`[N]` against `[N, 1]` is aligned) and may be soft; label smoothing
/// squeezes them towards 0.5: `y·(1 − ls) + 0.5·ls`.
#[derive(Debug, Clone)]
pub struct BinaryCrossentropy {
    name: String,
    from_logits: bool,
    label_smoothing: f32,
}

impl Default for BinaryCrossentropy {
    fn default() -> Self {
        BinaryCrossentropy {
            name: "binary_crossentropy".into(),
            from_logits: false,
            label_smoothing: 0.0,
        }
    }
}

impl BinaryCrossentropy {
    /// On probabilities, without smoothing (Keras defaults).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether predictions are logits.
    pub fn from_logits(mut self, from_logits: bool) -> Self {
        self.from_logits = from_logits;
        self
    }

    /// Label smoothing in `[0, 1]`.
    pub fn label_smoothing(mut self, ls: f32) -> Self {
        self.label_smoothing = ls;
        self
    }

    /// Renames the loss.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    fn targets(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        check_smoothing(&self.name, self.label_smoothing)?;
        let yt = align_same_shape(&self.name, y_true, y_pred)?;
        let ls = self.label_smoothing;
        Ok(if ls > 0.0 {
            yt.mul_scalar(1.0 - ls)?.add_scalar(0.5 * ls)?
        } else {
            yt
        })
    }

    /// Unreduced element losses.
    fn elements(&self, yt: &Tensor, yp: &Tensor) -> Result<Tensor> {
        if self.from_logits {
            return Ok(yp.binary_cross_entropy_with_logits(yt, None, None, Reduction::None)?);
        }
        let pos = yt.mul(&clipped_log(yp)?)?;
        let neg = yt
            .rsub_scalar(1.0)?
            .mul(&clipped_log(&yp.rsub_scalar(1.0)?)?)?;
        Ok(pos.add(&neg)?.neg()?)
    }
}

impl Loss for BinaryCrossentropy {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn call(&self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<Tensor> {
        let yt = self.targets(y_true, y_pred)?;
        let w = sample_weight(&self.name, sw, y_pred.shape()[0], y_pred.rank())?;
        if self.from_logits && y_pred.numel() > 0 {
            // The fused kernel weights and reduces in one pass.
            let r = if w.is_some() {
                Reduction::Sum
            } else {
                Reduction::Mean
            };
            let l = y_pred.binary_cross_entropy_with_logits(&yt, w.as_ref(), None, r)?;
            return Ok(if w.is_some() {
                l.div_scalar(y_pred.numel() as f32)?
            } else {
                l
            });
        }
        weighted_mean(&self.elements(&yt, y_pred)?, w.as_ref())
    }

    fn config(&self) -> Value {
        serialized(
            "BinaryCrossentropy",
            &BinaryConfig {
                base: BaseConfig::new(&self.name),
                from_logits: self.from_logits,
                label_smoothing: self.label_smoothing,
            },
        )
    }
}

impl PerSampleLoss for BinaryCrossentropy {
    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        let yt = self.targets(y_true, y_pred)?;
        per_sample_mean(&self.elements(&yt, y_pred)?)
    }
}

// ----------------------------------------------------------------------------------------------
// Categorical (dense targets)
// ----------------------------------------------------------------------------------------------

/// Keras `CategoricalCrossentropy`: `−Σ_c q_c·log p_c` over the class axis (axis 1), averaged
/// over samples and positions.
///
/// Targets are one-hot (or soft) with the predictions' shape `[N, C]` or `[N, C, H, W]`;
/// label smoothing uses `q·(1 − ls) + ls/C`. Probabilities are renormalised to sum to 1 and
/// clipped to `[1e-7, 1 − 1e-7]` like Keras; logits go through the engine's fused kernel.
/// Class weights multiply each sample's (position's) weight by the weight of its target class
/// (`argmax` of the target), like Keras' `fit(class_weight=...)`.
#[derive(Debug, Clone)]
pub struct CategoricalCrossentropy {
    name: String,
    from_logits: bool,
    label_smoothing: f32,
    class_weights: Option<Vec<f32>>,
}

impl Default for CategoricalCrossentropy {
    fn default() -> Self {
        CategoricalCrossentropy {
            name: "categorical_crossentropy".into(),
            from_logits: false,
            label_smoothing: 0.0,
            class_weights: None,
        }
    }
}

impl CategoricalCrossentropy {
    /// On probabilities, without smoothing or class weights (Keras defaults).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether predictions are logits.
    pub fn from_logits(mut self, from_logits: bool) -> Self {
        self.from_logits = from_logits;
        self
    }

    /// Label smoothing in `[0, 1]`.
    pub fn label_smoothing(mut self, ls: f32) -> Self {
        self.label_smoothing = ls;
        self
    }

    /// One weight per class (length C).
    pub fn class_weights(mut self, weights: Vec<f32>) -> Self {
        self.class_weights = Some(weights);
        self
    }

    /// Renames the loss.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    fn check(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        check_pred(&self.name, y_pred)?;
        check_smoothing(&self.name, self.label_smoothing)?;
        if y_pred.rank() < 2 {
            return Err(shape_error(
                &self.name,
                y_true.shape(),
                y_pred.shape(),
                "y_pred must be [N, C] or [N, C, d1, ...] (class axis 1)",
            ));
        }
        if y_true.shape() != y_pred.shape() {
            return Err(shape_error(
                &self.name,
                y_true.shape(),
                y_pred.shape(),
                "one-hot targets must have the predictions' shape",
            ));
        }
        check_class_weights(&self.name, self.class_weights.as_deref(), y_pred.shape()[1])?;
        float_targets(y_true)
    }

    /// Per-position losses `[N, d...]`.
    fn positions(&self, yt: &Tensor, yp: &Tensor) -> Result<Tensor> {
        let ls = self.label_smoothing;
        if self.from_logits {
            return Ok(yp.cross_entropy_dense(yt, ls, Reduction::None)?);
        }
        let c = yp.shape()[1] as f32;
        let q = if ls > 0.0 {
            yt.mul_scalar(1.0 - ls)?.add_scalar(ls / c)?
        } else {
            yt.clone()
        };
        let p = yp.div(&yp.sum(&[1], true)?)?;
        Ok(q.mul(&clipped_log(&p)?)?.sum(&[1], false)?.neg()?)
    }
}

impl Loss for CategoricalCrossentropy {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn call(&self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<Tensor> {
        let yt = self.check(y_true, y_pred)?;
        let l = self.positions(&yt, y_pred)?;
        let mut w = positions_weight(&self.name, sw, y_pred.shape()[0], l.rank())?;
        if let Some(cw) = &self.class_weights {
            let cls = yt.argmax(1, false)?.to_f64_vec()?;
            let v: Vec<f32> = cls.iter().map(|&k| cw[k as usize]).collect();
            let cwt = Tensor::from_vec(v, l.shape())?;
            w = Some(match w {
                Some(w) => cwt.mul(&w)?,
                None => cwt,
            });
        }
        weighted_mean(&l, w.as_ref())
    }

    fn config(&self) -> Value {
        serialized(
            "CategoricalCrossentropy",
            &CategoricalConfig {
                base: BaseConfig::new(&self.name),
                from_logits: self.from_logits,
                label_smoothing: self.label_smoothing,
                class_weights: self.class_weights.clone(),
            },
        )
    }
}

impl PerSampleLoss for CategoricalCrossentropy {
    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        let yt = self.check(y_true, y_pred)?;
        per_sample_mean(&self.positions(&yt, y_pred)?)
    }
}

// ----------------------------------------------------------------------------------------------
// Sparse categorical (integer targets)
// ----------------------------------------------------------------------------------------------

/// Keras `SparseCategoricalCrossentropy`: `−log p_t` for integer targets `t`.
///
/// Scores are `[N, C]` with targets `[N]` (or `[N, 1]`), or per-pixel `[N, C, H, W]` (any
/// number of trailing axes) with targets `[N, H, W]`; targets are i64/i32/u8 or whole-number
/// f32. A target outside `0..C` that is not `ignore_class` is an error naming it.
///
/// - Probabilities are clipped to `[1e-7, 1 − 1e-7]` and their log is fed to softmax
///   cross-entropy, exactly like Keras' TensorFlow backend (which renormalises them).
/// - `ignore_class`: those positions add no loss and no gradient, and the mean is over the
///   other positions (Keras' mask); a batch with every position ignored gives 0.
/// - `class_weights`: each position's weight is multiplied by its class' weight (Keras'
///   `fit(class_weight=...)` semantics; the mean still divides by the number of positions).
/// - `label_smoothing` (a ferrovision extension, Keras has none here): the targets are
///   treated as one-hot smoothed to `(1 − ls)·onehot + ls/C`, like `CategoricalCrossentropy`.
#[derive(Debug, Clone)]
pub struct SparseCategoricalCrossentropy {
    name: String,
    from_logits: bool,
    ignore_class: Option<i64>,
    class_weights: Option<Vec<f32>>,
    label_smoothing: f32,
}

impl Default for SparseCategoricalCrossentropy {
    fn default() -> Self {
        SparseCategoricalCrossentropy {
            name: "sparse_categorical_crossentropy".into(),
            from_logits: false,
            ignore_class: None,
            class_weights: None,
            label_smoothing: 0.0,
        }
    }
}

/// Validated sparse targets.
struct Sparse {
    targets: Tensor,
    idx: Vec<i64>,
    valid: usize,
}

impl SparseCategoricalCrossentropy {
    /// On probabilities, no ignored class, no class weights (Keras defaults).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether predictions are logits.
    pub fn from_logits(mut self, from_logits: bool) -> Self {
        self.from_logits = from_logits;
        self
    }

    /// A target value whose positions are left out (e.g. 255 or -1 for "void" pixels).
    pub fn ignore_class(mut self, class: Option<i64>) -> Self {
        self.ignore_class = class;
        self
    }

    /// One weight per class (length C).
    pub fn class_weights(mut self, weights: Vec<f32>) -> Self {
        self.class_weights = Some(weights);
        self
    }

    /// Label smoothing in `[0, 1]` (ferrovision extension).
    pub fn label_smoothing(mut self, ls: f32) -> Self {
        self.label_smoothing = ls;
        self
    }

    /// Renames the loss.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    fn sparse(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Sparse> {
        let name = &self.name;
        check_pred(name, y_pred)?;
        check_smoothing(name, self.label_smoothing)?;
        let ps = y_pred.shape();
        if ps.len() < 2 {
            return Err(shape_error(
                name,
                y_true.shape(),
                ps,
                "y_pred must be [N, C] or [N, C, d1, ...] (class axis 1)",
            ));
        }
        let c = ps[1];
        let mut tshape = vec![ps[0]];
        tshape.extend_from_slice(&ps[2..]);
        let ts = y_true.shape();
        let squeezable = ts.len() == ps.len() && ts[1] == 1 && ts[0] == ps[0] && ts[2..] == ps[2..];
        if ts != tshape.as_slice() && !squeezable {
            return Err(shape_error(
                name,
                ts,
                ps,
                &format!("integer targets must have shape {tshape:?}"),
            ));
        }
        check_class_weights(name, self.class_weights.as_deref(), c)?;
        let idx = class_indices(&format!("loss '{name}'"), y_true)?;
        let mut valid = 0;
        for (i, &t) in idx.iter().enumerate() {
            if Some(t) == self.ignore_class {
                continue;
            }
            if t < 0 || t as u64 >= c as u64 {
                return Err(Error::config(format!(
                    "loss '{name}': y_true element {i} is class {t}, out of range for {c} classes \
                     (y_pred shape {ps:?}){}",
                    self.ignore_class
                        .map_or(String::new(), |k| format!("; ignore_class is {k}"))
                )));
            }
            valid += 1;
        }
        let targets = Tensor::from_vec(idx.clone(), &tshape)?;
        Ok(Sparse {
            targets,
            idx,
            valid,
        })
    }

    fn scores(&self, y_pred: &Tensor) -> Result<Tensor> {
        if self.from_logits {
            Ok(y_pred.clone())
        } else {
            clipped_log(y_pred)
        }
    }

    fn opts(&self, weights: Option<Tensor>, reduction: Reduction) -> CrossEntropyOpts {
        CrossEntropyOpts {
            ignore_index: self.ignore_class,
            class_weights: None,
            sample_weights: weights,
            label_smoothing: self.label_smoothing,
            reduction,
        }
    }
}

impl Loss for SparseCategoricalCrossentropy {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn call(&self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<Tensor> {
        let s = self.sparse(y_true, y_pred)?;
        let x = self.scores(y_pred)?;
        let n = y_pred.shape()[0];
        let w = sample_weight(&self.name, sw, n, 1)?;
        if w.is_none() && self.class_weights.is_none() {
            // The fused mean divides by the non-ignored positions: Keras' masked mean.
            return Ok(x.cross_entropy(&s.targets, &self.opts(None, Reduction::Mean))?);
        }
        // Per-position weights: sample weight × class weight (0 where ignored).
        let sv = match &w {
            Some(w) => w.to_f64_vec()?,
            None => vec![1.0; n],
        };
        let per = s.idx.len() / n.max(1);
        let pw: Vec<f32> = s
            .idx
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                if Some(t) == self.ignore_class {
                    0.0
                } else {
                    let cw = self.class_weights.as_ref().map_or(1.0, |c| c[t as usize]);
                    sv[i / per.max(1)] as f32 * cw
                }
            })
            .collect();
        let pw = Tensor::from_vec(pw, s.targets.shape())?;
        let sum = x.cross_entropy(&s.targets, &self.opts(Some(pw), Reduction::Sum))?;
        Ok(if s.valid == 0 {
            sum.mul_scalar(0.0)?
        } else {
            sum.div_scalar(s.valid as f32)?
        })
    }

    fn config(&self) -> Value {
        serialized(
            "SparseCategoricalCrossentropy",
            &SparseConfig {
                base: BaseConfig::new(&self.name),
                from_logits: self.from_logits,
                ignore_class: self.ignore_class,
                class_weights: self.class_weights.clone(),
                label_smoothing: self.label_smoothing,
            },
        )
    }
}

impl PerSampleLoss for SparseCategoricalCrossentropy {
    /// Per-sample means over the positions; ignored positions are left out (a sample with all
    /// positions ignored gives 0).
    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        let s = self.sparse(y_true, y_pred)?;
        let x = self.scores(y_pred)?;
        let l = x.cross_entropy(&s.targets, &self.opts(None, Reduction::None))?;
        if self.ignore_class.is_none() {
            return per_sample_mean(&l);
        }
        let n = y_pred.shape()[0];
        let per = s.idx.len() / n.max(1);
        let lv = l.to_f64_vec()?;
        let out: Vec<f32> = (0..n)
            .map(|i| {
                let range = i * per..(i + 1) * per;
                let cnt = s.idx[range.clone()]
                    .iter()
                    .filter(|&&t| Some(t) != self.ignore_class)
                    .count();
                if cnt == 0 {
                    0.0
                } else {
                    (lv[range].iter().sum::<f64>() / cnt as f64) as f32
                }
            })
            .collect();
        Ok(Tensor::from_vec(out, &[n])?)
    }
}
