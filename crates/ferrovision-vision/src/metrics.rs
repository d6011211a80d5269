//! Segmentation metrics (confusion matrix, pixel accuracy, per-class and mean IoU, Dice, with
//! an ignore value) and image-quality metrics (PSNR, SSIM as scikit-image computes them).

use crate::error::{Result, VisionError};

/// A confusion matrix over `num_classes` labels: rows are the true class, columns the predicted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    num_classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix.
    pub fn new(num_classes: usize) -> Self {
        ConfusionMatrix {
            num_classes,
            counts: vec![0; num_classes * num_classes],
        }
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Count of pixels of true class `t` predicted as `p`.
    pub fn get(&self, t: usize, p: usize) -> u64 {
        self.counts[t * self.num_classes + p]
    }

    /// Adds a label map pair. Pixels whose true label equals `ignore` (e.g. 255, or CamVid's 11)
    /// are skipped; any other label `>= num_classes` is an error naming the pixel.
    pub fn update<T: Copy + Into<u32>>(
        &mut self,
        target: &[T],
        pred: &[T],
        ignore: Option<u32>,
    ) -> Result<()> {
        if target.len() != pred.len() {
            return Err(VisionError::invalid(
                "ConfusionMatrix::update",
                format!("{} target pixels vs {} predicted", target.len(), pred.len()),
            ));
        }
        let n = self.num_classes as u32;
        for (i, (&t, &p)) in target.iter().zip(pred).enumerate() {
            let (t, p) = (t.into(), p.into());
            if Some(t) == ignore {
                continue;
            }
            if t >= n || p >= n {
                return Err(VisionError::invalid(
                    "ConfusionMatrix::update",
                    format!(
                        "pixel {i}: label {} / prediction {p} outside 0..{n}{}",
                        t,
                        ignore.map_or(String::new(), |v| format!(" (ignore value {v})"))
                    ),
                ));
            }
            self.counts[(t * n + p) as usize] += 1;
        }
        Ok(())
    }

    /// The counts, row-major `[true][pred]`.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    fn tp_fp_fn(&self, c: usize) -> (f64, f64, f64) {
        let n = self.num_classes;
        let tp = self.get(c, c) as f64;
        let row: u64 = (0..n).map(|p| self.get(c, p)).sum();
        let col: u64 = (0..n).map(|t| self.get(t, c)).sum();
        (tp, col as f64 - tp, row as f64 - tp)
    }

    /// Fraction of counted pixels predicted correctly (0 when nothing was counted).
    pub fn pixel_accuracy(&self) -> f64 {
        let total: u64 = self.counts.iter().sum();
        let correct: u64 = (0..self.num_classes).map(|c| self.get(c, c)).sum();
        if total == 0 {
            0.0
        } else {
            correct as f64 / total as f64
        }
    }

    /// IoU `tp / (tp + fp + fn)` per class; `None` for a class absent from both maps.
    pub fn per_class_iou(&self) -> Vec<Option<f64>> {
        (0..self.num_classes)
            .map(|c| {
                let (tp, fp, fneg) = self.tp_fp_fn(c);
                let d = tp + fp + fneg;
                (d > 0.0).then(|| tp / d)
            })
            .collect()
    }

    /// Mean IoU over the classes present in either map (TensorFlow `MeanIoU`).
    pub fn mean_iou(&self) -> f64 {
        mean_some(&self.per_class_iou())
    }

    /// Dice / F1 `2 tp / (2 tp + fp + fn)` per class; `None` for an absent class.
    pub fn per_class_dice(&self) -> Vec<Option<f64>> {
        (0..self.num_classes)
            .map(|c| {
                let (tp, fp, fneg) = self.tp_fp_fn(c);
                let d = 2.0 * tp + fp + fneg;
                (d > 0.0).then(|| 2.0 * tp / d)
            })
            .collect()
    }

    /// Mean Dice over the present classes.
    pub fn mean_dice(&self) -> f64 {
        mean_some(&self.per_class_dice())
    }

    /// Per-class accuracy (recall) `tp / (tp + fn)`; `None` for a class without true pixels.
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        (0..self.num_classes)
            .map(|c| {
                let (tp, _, fneg) = self.tp_fp_fn(c);
                (tp + fneg > 0.0).then(|| tp / (tp + fneg))
            })
            .collect()
    }
}

fn mean_some(v: &[Option<f64>]) -> f64 {
    let vals: Vec<f64> = v.iter().flatten().copied().collect();
    if vals.is_empty() {
        0.0
    } else {
        vals.iter().sum::<f64>() / vals.len() as f64
    }
}

fn check_pair(op: &'static str, a: &[f32], b: &[f32], data_range: f64) -> Result<()> {
    if a.len() != b.len() || a.is_empty() {
        return Err(VisionError::invalid(
            op,
            format!(
                "images must be non-empty and equal in size, got {} and {} values",
                a.len(),
                b.len()
            ),
        ));
    }
    if !(data_range > 0.0 && data_range.is_finite()) {
        return Err(VisionError::invalid(
            op,
            format!("data_range must be positive, got {data_range}"),
        ));
    }
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return Err(VisionError::invalid(
            op,
            "images contain NaN or infinite values",
        ));
    }
    Ok(())
}

/// Peak signal-to-noise ratio `10 log10(data_range^2 / MSE)` in dB (scikit-image
/// `peak_signal_noise_ratio`); infinite for identical images.
pub fn psnr(reference: &[f32], test: &[f32], data_range: f64) -> Result<f64> {
    check_pair("psnr", reference, test, data_range)?;
    let mse = reference
        .iter()
        .zip(test)
        .map(|(&a, &b)| {
            let d = a as f64 - b as f64;
            d * d
        })
        .sum::<f64>()
        / reference.len() as f64;
    Ok(10.0 * (data_range * data_range / mse).log10())
}

/// Settings of [`ssim`]; the defaults are scikit-image's `structural_similarity` defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SsimOpts {
    /// Dynamic range of the values (255 for 8-bit images, 1 for [0, 1] floats).
    pub data_range: f64,
    /// Side of the uniform window (odd); ignored with `gaussian`.
    pub win_size: usize,
    /// Gaussian-weighted window of `sigma` (Wang et al.), 11 taps for sigma 1.5.
    pub gaussian: bool,
    /// Standard deviation of the Gaussian window.
    pub sigma: f64,
    /// Normalise variances by `N - 1` instead of `N`.
    pub use_sample_covariance: bool,
    /// Constants of the formula.
    pub k1: f64,
    /// Constants of the formula.
    pub k2: f64,
}

impl Default for SsimOpts {
    fn default() -> Self {
        SsimOpts {
            data_range: 255.0,
            win_size: 7,
            gaussian: false,
            sigma: 1.5,
            use_sample_covariance: true,
            k1: 0.01,
            k2: 0.03,
        }
    }
}

impl SsimOpts {
    /// The settings of Wang et al. (Gaussian window sigma 1.5, population covariance).
    pub fn wang(data_range: f64) -> Self {
        SsimOpts {
            data_range,
            gaussian: true,
            use_sample_covariance: false,
            ..Default::default()
        }
    }
}

/// Mean structural similarity of two images stored row-major `[height][width][channels]`
/// (scikit-image `structural_similarity`, with `channel_axis=-1` for `channels > 1`: the mean of
/// the per-channel values). The mean is taken over the pixels whose window lies inside the
/// image, as scikit-image crops the border.
pub fn ssim(
    a: &[f32],
    b: &[f32],
    height: usize,
    width: usize,
    channels: usize,
    opts: SsimOpts,
) -> Result<f64> {
    const OP: &str = "ssim";
    check_pair(OP, a, b, opts.data_range)?;
    if channels == 0 || a.len() != height * width * channels {
        return Err(VisionError::invalid(
            OP,
            format!(
                "{} values do not form a {height}x{width}x{channels} image",
                a.len()
            ),
        ));
    }
    // Separable window weights.
    let taps: Vec<f64> = if opts.gaussian {
        if opts.sigma.is_nan() || opts.sigma <= 0.0 {
            return Err(VisionError::invalid(OP, "sigma must be positive"));
        }
        let r = (3.5 * opts.sigma + 0.5) as usize; // scipy: int(truncate * sigma + 0.5)
        let w: Vec<f64> = (0..=2 * r)
            .map(|i| {
                let x = i as f64 - r as f64;
                (-0.5 * x * x / (opts.sigma * opts.sigma)).exp()
            })
            .collect();
        let s: f64 = w.iter().sum();
        w.iter().map(|v| v / s).collect()
    } else {
        if opts.win_size.is_multiple_of(2) || opts.win_size < 3 {
            return Err(VisionError::invalid(
                OP,
                format!("win_size must be odd and >= 3, got {}", opts.win_size),
            ));
        }
        vec![1.0 / opts.win_size as f64; opts.win_size]
    };
    let win = taps.len();
    if win > height || win > width {
        return Err(VisionError::invalid(
            OP,
            format!("the {win}x{win} window does not fit a {height}x{width} image"),
        ));
    }
    let np = (win * win) as f64;
    let cov_norm = if opts.use_sample_covariance {
        np / (np - 1.0)
    } else {
        1.0
    };
    let c1 = (opts.k1 * opts.data_range).powi(2);
    let c2 = (opts.k2 * opts.data_range).powi(2);
    let pad = (win - 1) / 2;
    let (oh, ow) = (height - 2 * pad, width - 2 * pad);
    let mut total = 0.0;
    for ch in 0..channels {
        let x: Vec<f64> = (0..height * width)
            .map(|i| a[i * channels + ch] as f64)
            .collect();
        let y: Vec<f64> = (0..height * width)
            .map(|i| b[i * channels + ch] as f64)
            .collect();
        // Filter the five maps horizontally, then vertically, only where the window fits.
        let maps = [
            x.clone(),
            y.clone(),
            x.iter().map(|v| v * v).collect::<Vec<_>>(),
            y.iter().map(|v| v * v).collect(),
            x.iter().zip(&y).map(|(p, q)| p * q).collect(),
        ];
        let filt: Vec<Vec<f64>> = maps
            .iter()
            .map(|m| {
                let mut hpass = vec![0.0; height * ow];
                for r in 0..height {
                    for c in 0..ow {
                        let mut s = 0.0;
                        for (k, t) in taps.iter().enumerate() {
                            s += t * m[r * width + c + k];
                        }
                        hpass[r * ow + c] = s;
                    }
                }
                let mut out = vec![0.0; oh * ow];
                for r in 0..oh {
                    for c in 0..ow {
                        let mut s = 0.0;
                        for (k, t) in taps.iter().enumerate() {
                            s += t * hpass[(r + k) * ow + c];
                        }
                        out[r * ow + c] = s;
                    }
                }
                out
            })
            .collect();
        let mut sum = 0.0;
        for (i, (&ux, &uy)) in filt[0].iter().zip(&filt[1]).enumerate() {
            let vx = cov_norm * (filt[2][i] - ux * ux);
            let vy = cov_norm * (filt[3][i] - uy * uy);
            let vxy = cov_norm * (filt[4][i] - ux * uy);
            let s = ((2.0 * ux * uy + c1) * (2.0 * vxy + c2))
                / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
            sum += s;
        }
        total += sum / (oh * ow) as f64;
    }
    Ok(total / channels as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_counts_and_ignore() {
        let t: [u8; 6] = [0, 0, 1, 1, 255, 2];
        let p: [u8; 6] = [0, 1, 1, 1, 0, 0];
        let mut cm = ConfusionMatrix::new(3);
        cm.update(&t, &p, Some(255)).unwrap();
        assert_eq!(cm.get(0, 1), 1);
        assert_eq!(cm.get(2, 0), 1);
        assert!((cm.pixel_accuracy() - 0.6).abs() < 1e-12);
        let e = cm
            .update(&[3u8], &[0u8], Some(255))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pixel 0"), "{e}");
        assert_eq!(psnr(&[1.0, 2.0], &[1.0, 2.0], 1.0).unwrap(), f64::INFINITY);
    }
}
