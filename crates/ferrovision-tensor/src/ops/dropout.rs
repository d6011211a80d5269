//! Dropout (elementwise) and spatial dropout (whole channels), with inverted scaling: kept
//! values are multiplied by `1 / (1 − p)` during training so inference is the identity.
//!
//! The methods validate and record; the mask is drawn from the caller's [`Rng`] and applied by
//! [`Backend::dropout`] (one random `u32` per element, per channel for spatial dropout, drawn
//! in independently seeded chunks so the mask depends only on the seed, never on the thread
//! count; kernels in `backend/cpu/dropout.rs`). The backward pass multiplies by the saved byte
//! mask through [`Backend::dropout_backward`].
//!
//! [`Backend::dropout`]: crate::backend::Backend::dropout
//! [`Backend::dropout_backward`]: crate::backend::Backend::dropout_backward

use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::backend;
use crate::rng::Rng;
use crate::{Error, Result, Tensor};

fn check_p(op: &'static str, p: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::invalid(
            op,
            format!("dropout probability has to be between 0 and 1, got {p}"),
        ));
    }
    Ok(())
}

/// The kept-element mask of a dropout (1 = kept, one byte per element, per channel for
/// spatial dropout), saved for the gradient.
struct Mask(Vec<u8>);

/// Runs the dropout `rec` of `x` on its backend and records it with the gradient rule
/// `dx = dy · mask · scale`.
fn run(rec: Op, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
    let (out, mask) = backend::for_device(x.device(), rec.name())?.dropout(&rec, x, rng)?;
    let saved = Saved::with_state(vec![], Mask(mask));
    Ok(record_rule(out, rec, &[x], grad, saved))
}

/// Zeros of `x`'s shape whose gradient is zero (dropout with `p == 1`, nothing saved).
fn all_dropped(rec: Op, x: &Tensor) -> Tensor {
    let out = Tensor::zeros(x.shape());
    record_rule(out, rec, &[x], grad, Saved::none())
}

/// The gradient rule of the dropouts: the output gradient through the saved mask and scale
/// (zeros when everything was dropped).
fn grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    if matches!(op, Op::Dropout { p, .. } | Op::SpatialDropout { p, .. } if *p == 1.0) {
        return Ok(vec![Some(Tensor::zeros(g.shape()))]);
    }
    let Mask(mask) = *ctx.take_state::<Mask>()?;
    let dx = backend::for_device(g.device(), op.name())?.dropout_backward(op, g, &mask)?;
    Ok(vec![Some(dx)])
}

impl Tensor {
    /// Inverted dropout: in training, each element is zeroed with probability `p` and the kept
    /// ones are scaled by `1 / (1 − p)`. The identity when `!training` or `p == 0`; zeros when
    /// `p == 1`; an error for `p` outside `[0, 1]`. The mask is drawn from `rng`, so the same
    /// seed gives the same mask (independent of the thread count).
    ///
    /// ```
    /// use ferrovision_tensor::{rng::Rng, Tensor};
    /// let x = Tensor::ones(&[1000]);
    /// let y = x.dropout(0.5, true, &mut Rng::new(1)).unwrap().to_vec::<f32>().unwrap();
    /// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
    /// ```
    pub fn dropout(&self, p: f32, training: bool, rng: &mut Rng) -> Result<Tensor> {
        self.dropout_from(p, training, rng, false)
    }

    /// [`Tensor::dropout`]; `global_rng` says whether `rng` is the process-wide generator.
    fn dropout_from(
        &self,
        p: f32,
        training: bool,
        rng: &mut Rng,
        global_rng: bool,
    ) -> Result<Tensor> {
        const OP: &str = "dropout";
        check_p(OP, p)?;
        if !training || p == 0.0 {
            return Ok(self.clone());
        }
        self.expect_f32(OP)?;
        if p == 1.0 {
            return Ok(all_dropped(Op::Dropout { p, global_rng }, self));
        }
        run(Op::Dropout { p, global_rng }, self, rng)
    }

    /// Spatial dropout of `[N, C, ...]` (like Keras `SpatialDropout2D` / `torch.nn.functional.
    /// dropout2d`): whole channels of each sample are zeroed with probability `p`, the kept ones
    /// scaled by `1 / (1 − p)`. Same conventions as [`Tensor::dropout`]; one random number per
    /// (sample, channel).
    pub fn spatial_dropout(&self, p: f32, training: bool, rng: &mut Rng) -> Result<Tensor> {
        self.spatial_dropout_from(p, training, rng, false)
    }

    /// [`Tensor::spatial_dropout`]; `global_rng` as for [`Tensor::dropout_from`].
    fn spatial_dropout_from(
        &self,
        p: f32,
        training: bool,
        rng: &mut Rng,
        global_rng: bool,
    ) -> Result<Tensor> {
        const OP: &str = "spatial_dropout";
        check_p(OP, p)?;
        if self.rank() < 2 {
            return Err(Error::bad_shape(
                OP,
                self.shape(),
                "[N, C, ...] (rank >= 2)",
            ));
        }
        if !training || p == 0.0 {
            return Ok(self.clone());
        }
        self.expect_f32(OP)?;
        if p == 1.0 {
            return Ok(all_dropped(Op::SpatialDropout { p, global_rng }, self));
        }
        run(Op::SpatialDropout { p, global_rng }, self, rng)
    }

    /// [`Tensor::dropout`] drawing from the process-wide generator (see
    /// [`crate::rng::manual_seed`]).
    pub fn dropout_global(&self, p: f32, training: bool) -> Result<Tensor> {
        crate::rng::with_global(|r| self.dropout_from(p, training, r, true))
    }

    /// [`Tensor::spatial_dropout`] drawing from the process-wide generator.
    pub fn spatial_dropout_global(&self, p: f32, training: bool) -> Result<Tensor> {
        crate::rng::with_global(|r| self.spatial_dropout_from(p, training, r, true))
    }
}
