//! In-place updates of stored values: loading weights and optimizer steps.
//!
//! These write through the tensor's storage (every view of it sees the change), are never
//! recorded for autodiff, and need a contiguous f32 tensor on the CPU. They are how code outside
//! the engine changes weights: the crate's raw slice access (`with_f32` / `with_f32_mut`) is
//! internal. [`Tensor::update_with_grad_`] is the one slice-level entry point, the documented
//! kernel API for fused optimizer rules (a GPU backend will need its own optimizer kernels).

use crate::{Error, Result, Tensor};

impl Tensor {
    /// Overwrites the values, in row-major order, with `data` (same element count), in place.
    ///
    /// ```
    /// use ferrovision_tensor::Tensor;
    /// let w = Tensor::zeros(&[2, 2]);
    /// let view = w.reshape(&[4]).unwrap();
    /// w.assign_from_slice_(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    /// assert_eq!(view.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    /// ```
    pub fn assign_from_slice_(&self, data: &[f32]) -> Result<()> {
        const OP: &str = "assign_from_slice_";
        if data.len() != self.numel() {
            return Err(Error::DataLength {
                op: OP,
                len: data.len(),
                shape: self.shape().to_vec(),
                expected: self.numel(),
            });
        }
        self.with_f32_mut(OP, |dst| dst.copy_from_slice(data))
    }

    /// `Σ x²` accumulated in f64 (eight interleaved partial sums, then the tail: the loop
    /// vectorises and the order is fixed), not recorded. The squared L2 norm used by gradient
    /// clipping.
    pub fn sum_squares_f64(&self) -> Result<f64> {
        self.with_f32("sum_squares_f64", sum_squares)
    }

    /// Kernel API for fused optimizer rules: runs `f(values, grad)` with this tensor's values
    /// (mutable, in place) and `grad`'s values (read in row-major order; same element count),
    /// and returns what `f` returns. `self` must be a contiguous f32 CPU tensor that does not
    /// share storage with `grad`; errors name `op`. Not recorded for autodiff.
    pub fn update_with_grad_<R>(
        &self,
        grad: &Tensor,
        op: &'static str,
        f: impl FnOnce(&mut [f32], &[f32]) -> R,
    ) -> Result<R> {
        if grad.numel() != self.numel() {
            return Err(Error::shape_mismatch(op, self.shape(), grad.shape()));
        }
        if self.same_storage(grad) {
            // A write lock and a read lock on one storage would deadlock.
            return Err(Error::invalid(
                op,
                "the gradient must not share storage with the updated tensor",
            ));
        }
        grad.expect_f32(op)?;
        self.with_f32_mut(op, |w| grad.with_f32(op, |g| f(w, g)))?
    }
}

/// Sum of squares in f64 with eight partial sums (so the loop vectorises).
fn sum_squares(x: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += (v as f64) * (v as f64);
        }
    }
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|&v| (v as f64) * (v as f64))
        .sum();
    acc.iter().sum::<f64>() + tail
}
