//! Weight histograms with TensorFlow's default buckets (`tf.compat.v1.summary.histogram`).

use crate::{Error, Result};
use std::sync::OnceLock;

/// TensorFlow's default bucket limits: `±1e-12 * 1.1^k` up to 1e20, `±f64::MAX` and 0, so
/// the histogram keeps ~10% relative resolution at every scale.
fn default_limits() -> &'static [f64] {
    static LIMITS: OnceLock<Vec<f64>> = OnceLock::new();
    LIMITS.get_or_init(|| {
        let mut pos = Vec::new();
        let mut v = 1.0e-12;
        while v < 1.0e20 {
            pos.push(v);
            v *= 1.1;
        }
        pos.push(f64::MAX);
        let mut out: Vec<f64> = pos.iter().rev().map(|v| -v).collect();
        out.push(0.0);
        out.extend_from_slice(&pos);
        out
    })
}

/// A histogram of values as TensorBoard's `HistogramProto`: statistics plus the non-empty
/// buckets, each given by its right edge (`bucket_limit[i]`) and count (`bucket[i]`); a run of
/// empty buckets is collapsed into one, as TensorFlow does.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Number of values.
    pub num: f64,
    /// Sum of the values.
    pub sum: f64,
    /// Sum of the squared values.
    pub sum_squares: f64,
    /// Right edges of the buckets.
    pub bucket_limit: Vec<f64>,
    /// Counts of the buckets.
    pub bucket: Vec<f64>,
}

impl Histogram {
    /// The histogram of `values`; NaN or infinite values are an error (TensorFlow's histogram
    /// op rejects them too), naming `tag`.
    pub fn from_values(tag: &str, values: &[f32]) -> Result<Self> {
        let limits = default_limits();
        let mut counts = vec![0.0f64; limits.len()];
        let (mut min, mut max) = (f64::MAX, -f64::MAX);
        let (mut sum, mut sum_squares) = (0.0f64, 0.0f64);
        for (i, &x) in values.iter().enumerate() {
            if !x.is_finite() {
                return Err(Error::config(format!(
                    "histogram '{tag}': value {i} is {x}; histograms need finite values"
                )));
            }
            let v = x as f64;
            // upper_bound: the first limit strictly greater than v.
            let b = limits.partition_point(|&l| l <= v);
            counts[b] += 1.0;
            min = min.min(v);
            max = max.max(v);
            sum += v;
            sum_squares += v * v;
        }
        let mut bucket_limit = Vec::new();
        let mut bucket = Vec::new();
        let mut i = 0;
        while i < counts.len() {
            let mut end = limits[i];
            let mut count = counts[i];
            i += 1;
            if count <= 0.0 {
                while i < counts.len() && counts[i] <= 0.0 {
                    end = limits[i];
                    count = counts[i];
                    i += 1;
                }
            }
            bucket_limit.push(end);
            bucket.push(count);
        }
        Ok(Histogram {
            min,
            max,
            num: values.len() as f64,
            sum,
            sum_squares,
            bucket_limit,
            bucket,
        })
    }
}
