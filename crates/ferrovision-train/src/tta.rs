//! Test-time augmentation and model averaging for classifiers: predictions averaged over the
//! ten crops of torchvision's `TenCrop` (four corners and the centre, then the same five of the
//! horizontally flipped image) and over the members of an ensemble, and an evaluation loop
//! that scores such averaged probabilities (loss, top-1 and top-5 accuracy).
//!
//! Averaging is done on probabilities (softmax of each view's or member's logits), as in the
//! ResNet and Inception papers' multi-crop results; the averaged probabilities are what is
//! scored (the loss is their negative log-likelihood).

use crate::{BatchSource, Model};
use ferrovision_nn::metrics::{Accuracy, Metric, TopKCategoricalAccuracy};
use ferrovision_nn::{Error, Result};
use ferrovision_tensor::Tensor;

/// Pads images `[N, C, H, W]` by `pad` pixels on every side with a per-channel value
/// (`values[c]`, one value or one per channel), e.g. the normalised value of black so that
/// padding matches a pad-then-crop training augmentation.
pub fn pad_images(x: &Tensor, pad: usize, values: &[f32]) -> Result<Tensor> {
    let [n, c, h, w] = dims4("pad_images", x)?;
    if values.len() != 1 && values.len() != c {
        return Err(Error::config(format!(
            "pad_images: {} fill values for {c} channels (give 1 or {c})",
            values.len()
        )));
    }
    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
    let src = x.to_vec::<f32>()?;
    let mut out = Vec::with_capacity(n * c * ph * pw);
    for img in 0..n {
        for ch in 0..c {
            let fill = values[if values.len() == 1 { 0 } else { ch }];
            let plane = &src[(img * c + ch) * h * w..][..h * w];
            out.extend(std::iter::repeat_n(fill, pad * pw));
            for row in plane.chunks_exact(w) {
                out.extend(std::iter::repeat_n(fill, pad));
                out.extend_from_slice(row);
                out.extend(std::iter::repeat_n(fill, pad));
            }
            out.extend(std::iter::repeat_n(fill, pad * pw));
        }
    }
    Ok(Tensor::from_vec(out, &[n, c, ph, pw])?)
}

/// torchvision's `TenCrop(size)` on a batch `[N, C, H, W]`: crops of `[height, width]` at the
/// top-left, top-right, bottom-left, bottom-right and centre (`round((H - h) / 2)` with
/// Python's round-half-to-even, as `center_crop`), then the same five of the horizontally
/// flipped images, in that order.
pub fn ten_crop(x: &Tensor, size: [usize; 2]) -> Result<Vec<Tensor>> {
    let [_, _, h, w] = dims4("ten_crop", x)?;
    let [ch, cw] = size;
    if ch == 0 || cw == 0 || ch > h || cw > w {
        return Err(Error::config(format!(
            "ten_crop: crop {ch}x{cw} does not fit images of {h}x{w}"
        )));
    }
    let top = ((h - ch) as f64 / 2.0).round_ties_even() as usize;
    let left = ((w - cw) as f64 / 2.0).round_ties_even() as usize;
    let corners = [
        (0, 0),
        (0, w - cw),
        (h - ch, 0),
        (h - ch, w - cw),
        (top, left),
    ];
    let crop = |img: &Tensor, (t, l): (usize, usize)| -> Result<Tensor> {
        Ok(img.narrow(2, t, ch)?.narrow(3, l, cw)?.contiguous()?)
    };
    let mut out = Vec::with_capacity(10);
    for &c in &corners {
        out.push(crop(x, c)?);
    }
    // Flipping the whole image mirrors the corner positions: torchvision crops the flipped
    // image at the same five places.
    let flipped = x.flip(&[3])?;
    for &c in &corners {
        out.push(crop(&flipped, c)?);
    }
    Ok(out)
}

/// Class probabilities `[N, K]` averaged over the ten crops of `x` (see [`ten_crop`]).
pub fn predict_ten_crop(
    model: &Model,
    x: &Tensor,
    size: [usize; 2],
    batch_size: usize,
) -> Result<Tensor> {
    let views = ten_crop(x, size)?;
    mean_probabilities(views.iter().map(|v| (model, v)), batch_size)
}

/// Class probabilities `[N, K]` averaged over the members of an ensemble (each member's
/// softmax; all must output the same number of classes).
pub fn predict_ensemble(models: &[&Model], x: &Tensor, batch_size: usize) -> Result<Tensor> {
    if models.is_empty() {
        return Err(Error::config("predict_ensemble: no models"));
    }
    mean_probabilities(models.iter().map(|m| (*m, x)), batch_size)
}

/// The mean of `softmax(model(x))` over the (model, input) pairs.
fn mean_probabilities<'a>(
    runs: impl Iterator<Item = (&'a Model, &'a Tensor)>,
    batch_size: usize,
) -> Result<Tensor> {
    let mut sum: Option<Vec<f32>> = None;
    let mut shape = Vec::new();
    let mut count = 0usize;
    for (model, x) in runs {
        let logits = model.predict(x, batch_size)?;
        if logits.rank() != 2 {
            return Err(Error::config(format!(
                "a classifier outputs [N, classes]; this model outputs {:?}",
                logits.shape()
            )));
        }
        let p = logits.softmax(-1)?.to_vec::<f32>()?;
        match &mut sum {
            None => {
                shape = logits.shape().to_vec();
                sum = Some(p);
            }
            Some(s) => {
                if logits.shape() != shape.as_slice() {
                    return Err(Error::config(format!(
                        "averaged predictions differ in shape: {:?} and {:?}",
                        shape,
                        logits.shape()
                    )));
                }
                for (a, b) in s.iter_mut().zip(&p) {
                    *a += b;
                }
            }
        }
        count += 1;
    }
    let sum = sum.ok_or_else(|| Error::config("nothing to average"))?;
    let inv = 1.0 / count as f32;
    Ok(Tensor::from_vec(
        sum.into_iter().map(|v| v * inv).collect(),
        &shape,
    )?)
}

/// Scores of averaged probabilities over a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbabilityScores {
    /// Samples seen.
    pub samples: usize,
    /// Mean negative log-likelihood of the target class (probabilities clipped at 1e-7, as
    /// Keras' cross-entropy on probabilities).
    pub loss: f64,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Top-5 accuracy (Keras' sparse top-k rule: ties with the target do not push it out).
    pub top5_accuracy: f64,
}

/// Scores `predict(inputs) -> probabilities [N, K]` on every batch of `data` (integer
/// targets, the first input and target of each batch), e.g. with [`predict_ten_crop`] or
/// [`predict_ensemble`].
pub fn evaluate_probabilities(
    data: &mut dyn BatchSource,
    predict: &mut dyn FnMut(&Tensor) -> Result<Tensor>,
) -> Result<ProbabilityScores> {
    let mut acc = Accuracy::sparse();
    let mut top5 = TopKCategoricalAccuracy::sparse(5);
    let (mut nll, mut samples) = (0.0f64, 0usize);
    for batch in data.batches(0)? {
        let batch = batch?;
        let (Some(x), Some(y)) = (batch.inputs.first(), batch.targets.first()) else {
            return Err(Error::config(
                "evaluate_probabilities: batches need an input and a target",
            ));
        };
        let probs = predict(x)?;
        let k = *probs.shape().last().unwrap_or(&0);
        let labels = y.to_f64_vec()?;
        if probs.rank() != 2 || probs.shape()[0] != labels.len() {
            return Err(Error::config(format!(
                "predictions of shape {:?} for {} targets",
                probs.shape(),
                labels.len()
            )));
        }
        let p = probs.to_vec::<f32>()?;
        for (i, &l) in labels.iter().enumerate() {
            let c = l as usize;
            if l < 0.0 || c >= k {
                return Err(Error::config(format!(
                    "target class {l} is outside the model's {k} classes"
                )));
            }
            nll -= (p[i * k + c] as f64).clamp(1e-7, 1.0).ln();
        }
        acc.update(y, &probs, None)?;
        top5.update(y, &probs, None)?;
        samples += labels.len();
    }
    if samples == 0 {
        return Err(Error::config(
            "evaluate_probabilities: the data set is empty",
        ));
    }
    Ok(ProbabilityScores {
        samples,
        loss: nll / samples as f64,
        accuracy: acc.result(),
        top5_accuracy: top5.result(),
    })
}

fn dims4(op: &str, x: &Tensor) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(x.shape()).map_err(|_| {
        Error::config(format!(
            "{op}: expects images [N, C, H, W], got shape {:?}",
            x.shape()
        ))
    })
}
