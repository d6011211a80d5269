//! Shape checks, target conversion and the `sum_over_batch_size` reduction shared by the losses.

use crate::{Error, Result};
use ferrovision_tensor::{DType, Tensor};

/// Keras' `backend.epsilon()`: probabilities are clipped to `[EPS, 1 - EPS]` before `log`.
pub(crate) const EPS: f32 = 1e-7;

/// `y_pred` must be f32 with a batch axis.
pub(crate) fn check_pred(loss: &str, y_pred: &Tensor) -> Result<()> {
    if y_pred.dtype() != DType::F32 {
        return Err(Error::config(format!(
            "loss '{loss}': y_pred must be f32, got {:?} (shape {:?})",
            y_pred.dtype(),
            y_pred.shape()
        )));
    }
    if y_pred.rank() == 0 {
        return Err(Error::config(format!(
            "loss '{loss}': y_pred needs a batch axis, got a scalar"
        )));
    }
    Ok(())
}

/// Float targets (f32) from any dtype; gradients never flow into targets cast from integers.
pub(crate) fn float_targets(y_true: &Tensor) -> Result<Tensor> {
    Ok(if y_true.dtype() == DType::F32 {
        y_true.clone()
    } else {
        y_true.to_dtype(DType::F32)?
    })
}

/// Keras' `squeeze_or_expand_to_same_rank` followed by an exact shape check: targets `[N]`
/// against predictions `[N, 1]` (or the reverse) are aligned; anything else that differs is an
/// error naming the loss and both shapes. Returns f32 targets with `y_pred`'s shape.
pub(crate) fn align_same_shape(loss: &str, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
    check_pred(loss, y_pred)?;
    let yt = float_targets(y_true)?;
    let (ts, ps) = (yt.shape(), y_pred.shape());
    let yt = if ts.len() + 1 == ps.len() && ps.last() == Some(&1) && ps[..ps.len() - 1] == *ts
        || ps.len() + 1 == ts.len() && ts.last() == Some(&1) && ts[..ts.len() - 1] == *ps
    {
        yt.reshape(ps)?
    } else {
        yt
    };
    if yt.shape() != y_pred.shape() {
        return Err(shape_error(
            loss,
            y_true.shape(),
            y_pred.shape(),
            "they must have the same shape",
        ));
    }
    Ok(yt)
}

/// The error of a target/prediction shape mismatch.
pub(crate) fn shape_error(loss: &str, t: &[usize], p: &[usize], why: &str) -> Error {
    Error::config(format!(
        "loss '{loss}': y_true has shape {t:?} and y_pred has shape {p:?}; {why}"
    ))
}

/// Validated per-sample weights `[N]` (or `[N, 1]`), as f32 of shape `[N, 1, ..., 1]` with
/// `rank` axes so they broadcast over every non-batch axis of a rank-`rank` tensor.
pub(crate) fn sample_weight(
    loss: &str,
    sw: Option<&Tensor>,
    n: usize,
    rank: usize,
) -> Result<Option<Tensor>> {
    let Some(w) = sw else { return Ok(None) };
    let ok = w.shape() == [n] || w.shape() == [n, 1];
    if !ok {
        return Err(Error::config(format!(
            "loss '{loss}': sample_weight has shape {:?}, expected [{n}] (one weight per sample)",
            w.shape()
        )));
    }
    let w = float_targets(&w.detach())?;
    let mut shape = vec![n];
    shape.resize(rank.max(1), 1);
    Ok(Some(w.reshape(&shape)?))
}

/// Keras' `sum_over_batch_size`: `sum(w * l) / numel(l)` (0 for an empty batch).
pub(crate) fn weighted_mean(values: &Tensor, w: Option<&Tensor>) -> Result<Tensor> {
    let n = values.numel();
    if n == 0 {
        return Ok(values.sum_all()?);
    }
    match w {
        None => Ok(values.mean_all()?),
        Some(w) => Ok(values.mul(w)?.sum_all()?.div_scalar(n as f32)?),
    }
}

/// Per-sample means `[N]` of values `[N, ...]` (Keras' `Mean` metric reduction).
pub(crate) fn per_sample_mean(values: &Tensor) -> Result<Tensor> {
    Ok(match values.rank() {
        0 => values.reshape(&[1])?,
        1 => values.clone(),
        r => {
            let axes: Vec<isize> = (1..r as isize).collect();
            if values.shape()[1..].iter().product::<usize>() == 0 {
                Tensor::zeros(&[values.shape()[0]])
            } else {
                values.mean(&axes, false)?
            }
        }
    })
}

/// Integer class targets of a sparse loss or metric: i64/i32/u8, or f32 holding whole numbers.
pub(crate) fn class_indices(what: &str, y_true: &Tensor) -> Result<Vec<i64>> {
    match y_true.dtype() {
        DType::I64 | DType::I32 | DType::U8 => {
            Ok(y_true.to_f64_vec()?.into_iter().map(|v| v as i64).collect())
        }
        DType::F32 | DType::F16 | DType::BF16 => y_true
            .to_f64_vec()?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(v as i64)
                } else {
                    Err(Error::config(format!(
                        "{what}: y_true element {i} is {v}, not a class index (whole number)"
                    )))
                }
            })
            .collect(),
        dt => Err(Error::config(format!(
            "{what}: y_true must hold class indices (i64, i32, u8 or whole-number f32), got {dt:?}"
        ))),
    }
}

/// An f32 hyper-parameter as JSON with its shortest decimal form (`0.1`, not
/// `0.10000000149011612`); it reads back as the same f32.
pub(crate) fn f32_json(v: f32) -> serde_json::Value {
    serde_json::json!(v.to_string().parse::<f64>().unwrap_or(v as f64))
}
