//! Tensor creation: ranges, identity matrices and seeded random tensors.
//!
//! Random tensors take their numbers from an explicit [`Rng`] and fill elements in row-major
//! order, so one seed always gives the same tensor.

use crate::rng::Rng;
use crate::shape::numel;
use crate::storage::pool;
use crate::{Error, Result, Tensor};

/// Longest range a creation op builds (larger requests are surely mistakes).
const MAX_LEN: usize = 1 << 40;

/// The decimal value an f32 was written as (`0.1f32` -> `0.1f64`), so range lengths are
/// computed as PyTorch computes them from Python floats.
fn decimal_f64(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

/// Number of elements of `start..end` by `step` (PyTorch's rule: `ceil((end - start) / step)`).
fn range_len(op: &'static str, start: f64, end: f64, step: f64) -> Result<usize> {
    if !(start.is_finite() && end.is_finite() && step.is_finite()) {
        return Err(Error::invalid(
            op,
            format!("start {start}, end {end} and step {step} must be finite"),
        ));
    }
    if step == 0.0 {
        return Err(Error::invalid(op, "step must be nonzero"));
    }
    let span = end - start;
    if span != 0.0 && (span > 0.0) != (step > 0.0) {
        return Err(Error::invalid(
            op,
            format!("step {step} points away from end {end} (start {start})"),
        ));
    }
    let n = (span / step).ceil();
    if n > MAX_LEN as f64 {
        return Err(Error::invalid(
            op,
            format!("the range would have {n} elements"),
        ));
    }
    Ok(n.max(0.0) as usize)
}

/// A pooled f32 buffer of `n` elements, each produced by `f`, in order.
fn fill_with(n: usize, mut f: impl FnMut() -> f32) -> Vec<f32> {
    let mut v = pool::take_uninit(n);
    for x in v.iter_mut() {
        *x = f();
    }
    v
}

fn check_finite(op: &'static str, what: &str, v: f32) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(
            op,
            format!("{what} must be finite, got {v}"),
        ))
    }
}

fn check_std(op: &'static str, mean: f32, std: f32) -> Result<()> {
    check_finite(op, "mean", mean)?;
    check_finite(op, "std", std)?;
    if std < 0.0 {
        return Err(Error::invalid(
            op,
            format!("std must be non-negative, got {std}"),
        ));
    }
    Ok(())
}

/// Standard normal samples, two per Box-Muller draw.
fn normals(n: usize, rng: &mut Rng, mut emit: impl FnMut(f64) -> bool) {
    let mut made = 0;
    while made < n {
        let u1 = 1.0 - rng.next_f64(); // (0, 1]
        let u2 = rng.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
        for z in [r * c, r * s] {
            if made < n && emit(z) {
                made += 1;
            }
        }
    }
}

/// The largest f32 below the finite `x`.
fn prev_f32(x: f32) -> f32 {
    if x > 0.0 {
        f32::from_bits(x.to_bits() - 1)
    } else if x == 0.0 {
        -f32::from_bits(1)
    } else {
        f32::from_bits(x.to_bits() + 1)
    }
}

impl Tensor {
    /// `start, start + step, ...` up to but excluding `end` (f32, 1-D), like `torch.arange`.
    /// The length is `ceil((end - start) / step)` computed from the decimal values given, so
    /// `arange(0.0, 0.3, 0.1)` has 3 elements as in PyTorch.
    ///
    /// ```
    /// use ferrovision_tensor::Tensor;
    /// let t = Tensor::arange(0.0, 1.0, 0.25).unwrap();
    /// assert_eq!(t.to_vec::<f32>().unwrap(), vec![0.0, 0.25, 0.5, 0.75]);
    /// ```
    pub fn arange(start: f32, end: f32, step: f32) -> Result<Tensor> {
        let (s, e, st) = (decimal_f64(start), decimal_f64(end), decimal_f64(step));
        let n = range_len("arange", s, e, st)?;
        let mut i = 0usize;
        let v = fill_with(n, || {
            let x = (s + i as f64 * st) as f32;
            i += 1;
            x
        });
        Ok(Tensor::from_f32(v, &[n]))
    }

    /// `start, start + step, ...` up to but excluding `end` as i64 (1-D).
    pub fn arange_i64(start: i64, end: i64, step: i64) -> Result<Tensor> {
        const OP: &str = "arange_i64";
        if step == 0 {
            return Err(Error::invalid(OP, "step must be nonzero"));
        }
        let span = end as i128 - start as i128;
        if span != 0 && (span > 0) != (step > 0) {
            return Err(Error::invalid(
                OP,
                format!("step {step} points away from end {end} (start {start})"),
            ));
        }
        let step128 = step as i128;
        // ceil(span / step) for span and step of the same sign.
        let n = (span + step128 - step128.signum()) / step128;
        if n as u128 > MAX_LEN as u128 {
            return Err(Error::invalid(
                OP,
                format!("the range would have {n} elements"),
            ));
        }
        let n = n as usize;
        let v: Vec<i64> = (0..n)
            .map(|i| (start as i128 + i as i128 * step128) as i64)
            .collect();
        Tensor::from_vec(v, &[n])
    }

    /// `steps` evenly spaced values from `start` to `end` inclusive (f32, 1-D), computed like
    /// `torch.linspace` (from both ends towards the middle).
    pub fn linspace(start: f32, end: f32, steps: usize) -> Result<Tensor> {
        check_finite("linspace", "start", start)?;
        check_finite("linspace", "end", end)?;
        if steps > MAX_LEN {
            return Err(Error::invalid(
                "linspace",
                format!("{steps} steps is too many"),
            ));
        }
        if steps == 1 {
            return Ok(Tensor::from_f32(vec![start], &[1]));
        }
        let step = (end - start) / (steps.max(2) - 1) as f32;
        let half = steps / 2;
        let mut i = 0usize;
        let v = fill_with(steps, || {
            let x = if i < half {
                start + step * i as f32
            } else {
                end - step * (steps - i - 1) as f32
            };
            i += 1;
            x
        });
        Ok(Tensor::from_f32(v, &[steps]))
    }

    /// The `n x n` identity matrix (f32).
    pub fn eye(n: usize) -> Tensor {
        let mut v = pool::take_zeroed(n * n);
        for i in 0..n {
            v[i * n + i] = 1.0;
        }
        Tensor::from_f32(v, &[n, n])
    }

    /// Uniform values in `[0, 1)` (f32).
    pub fn rand(shape: &[usize], rng: &mut Rng) -> Tensor {
        Tensor::from_f32(fill_with(numel(shape), || rng.next_f32()), shape)
    }

    /// Uniform values in `[lo, hi)` (f32); `lo == hi` gives all `lo`.
    pub fn rand_uniform(shape: &[usize], lo: f32, hi: f32, rng: &mut Rng) -> Result<Tensor> {
        const OP: &str = "rand_uniform";
        check_finite(OP, "lo", lo)?;
        check_finite(OP, "hi", hi)?;
        if lo > hi || !(hi - lo).is_finite() {
            return Err(Error::invalid(
                OP,
                format!("bounds [{lo}, {hi}) are not an interval"),
            ));
        }
        let (lo64, width) = (lo as f64, hi as f64 - lo as f64);
        let top = if lo < hi { prev_f32(hi) } else { lo };
        let v = fill_with(numel(shape), || {
            ((lo64 + width * rng.next_f64()) as f32).min(top)
        });
        Ok(Tensor::from_f32(v, shape))
    }

    /// Normal values with the given mean and standard deviation (f32).
    pub fn randn(shape: &[usize], mean: f32, std: f32, rng: &mut Rng) -> Result<Tensor> {
        check_std("randn", mean, std)?;
        let n = numel(shape);
        let mut v = pool::take_uninit(n);
        let (m, s) = (mean as f64, std as f64);
        let mut i = 0;
        normals(n, rng, |z| {
            v[i] = (m + s * z) as f32;
            i += 1;
            true
        });
        Ok(Tensor::from_f32(v, shape))
    }

    /// Normal values with the given mean and std, where samples more than two standard
    /// deviations from the mean are drawn again (TensorFlow/Keras `truncated_normal`), so every
    /// value lies in `[mean - 2 std, mean + 2 std]`. Note the spread is smaller than `std`
    /// (about `0.88 std`).
    pub fn truncated_normal(shape: &[usize], mean: f32, std: f32, rng: &mut Rng) -> Result<Tensor> {
        check_std("truncated_normal", mean, std)?;
        let n = numel(shape);
        let mut v = pool::take_uninit(n);
        let (m, s) = (mean as f64, std as f64);
        let mut i = 0;
        normals(n, rng, |z| {
            if z.abs() > 2.0 {
                return false;
            }
            v[i] = (m + s * z) as f32;
            i += 1;
            true
        });
        Ok(Tensor::from_f32(v, shape))
    }

    /// Independent draws that are 1.0 with probability `p` and 0.0 otherwise (f32).
    pub fn bernoulli(shape: &[usize], p: f32, rng: &mut Rng) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "bernoulli",
                format!("probability {p} is outside [0, 1]"),
            ));
        }
        let p = p as f64;
        let v = fill_with(numel(shape), || if rng.next_f64() < p { 1.0 } else { 0.0 });
        Ok(Tensor::from_f32(v, shape))
    }

    /// A random permutation of `0..n` (i64, 1-D) by Fisher-Yates shuffling.
    pub fn randperm(n: usize, rng: &mut Rng) -> Tensor {
        let mut v: Vec<i64> = (0..n as i64).collect();
        for i in (1..n).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
        Tensor::from_buffer(crate::storage::Buffer::I64(v), &[n])
    }

    /// Uniform integers in `[low, high)` (i64).
    pub fn randint(shape: &[usize], low: i64, high: i64, rng: &mut Rng) -> Result<Tensor> {
        if low >= high {
            return Err(Error::invalid(
                "randint",
                format!("empty range [{low}, {high})"),
            ));
        }
        let width = (high as i128 - low as i128) as u64;
        let v: Vec<i64> = (0..numel(shape))
            .map(|_| (low as i128 + rng.below(width) as i128) as i64)
            .collect();
        Tensor::from_vec(v, shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prev_float_is_below() {
        for x in [1.0f32, 0.0, -1.0, 3.5e-38, -2.0e10] {
            let p = prev_f32(x);
            assert!(p < x && (x - p) <= x.abs() * 2.4e-7 + 1e-44, "{x} {p}");
        }
    }

    #[test]
    fn decimal_lengths() {
        assert_eq!(
            range_len("t", decimal_f64(0.0), decimal_f64(0.3), decimal_f64(0.1)).unwrap(),
            3
        );
        assert_eq!(range_len("t", 0.0, 1.0, 0.1).unwrap(), 10);
        assert_eq!(range_len("t", 5.0, 5.0, 1.0).unwrap(), 0);
        assert!(range_len("t", 0.0, 1.0, -1.0).is_err());
    }
}
