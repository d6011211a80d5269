//! Normalisation: batch norm (training and inference, running statistics updated in place),
//! layer norm, group norm and instance norm (PyTorch semantics: biased variance for
//! normalising, `1/sqrt(var + eps)`).
//!
//! The op methods validate their arguments, densify the input, run the fused forward through
//! [`Backend::norm`](crate::backend::Backend::norm) and record the dense input with the
//! backend's statistics; the one gradient rule runs `Backend::norm_backward` (the kernels are
//! in `backend/cpu/norm.rs`).

use super::axis::dense;
use crate::autograd::{record_rule_operands, GradCtx, Op, Saved};
use crate::backend::{self, NormStats};
use crate::{Error, Result, Tensor};

/// Checks an optional per-channel (or per-element) affine parameter.
fn check_param(op: &'static str, name: &str, t: Option<&Tensor>, shape: &[usize]) -> Result<()> {
    let Some(t) = t else { return Ok(()) };
    t.expect_f32(op)?;
    if t.shape() != shape {
        return Err(Error::bad_shape(
            op,
            t.shape(),
            format!("{name} of shape {shape:?}"),
        ));
    }
    Ok(())
}

/// The autodiff inputs `[x, weight?, bias?]` and, for each, its slot in the gradient vector.
fn inputs<'a>(
    x: &'a Tensor,
    weight: Option<&'a Tensor>,
    bias: Option<&'a Tensor>,
) -> Vec<&'a Tensor> {
    let mut v = vec![x];
    v.extend(weight);
    v.extend(bias);
    v
}

/// Packs `(dx, dweight, dbias)` into one entry per recorded input.
fn pack_grads(
    dx: Option<Tensor>,
    dw: Option<Tensor>,
    db: Option<Tensor>,
    has_w: bool,
    has_b: bool,
) -> Vec<Option<Tensor>> {
    let mut v = vec![dx];
    if has_w {
        v.push(dw);
    }
    if has_b {
        v.push(db);
    }
    v
}

/// `[N, C, S]` dimensions of a `[N, C, ...]` tensor.
fn ncs(op: &'static str, t: &Tensor) -> Result<(usize, usize, usize)> {
    if t.rank() < 2 {
        return Err(Error::bad_shape(op, t.shape(), "[N, C, ...] (rank >= 2)"));
    }
    let sh = t.shape();
    Ok((sh[0], sh[1], sh[2..].iter().product()))
}

/// Group-wise normalisation of `[N, C, S]` with `groups` groups of `C / groups` adjacent
/// channels and optional per-channel affine parameters (shared by group and instance norm).
fn group_norm_impl(
    op: &'static str,
    x_in: &Tensor,
    groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    x_in.expect_f32(op)?;
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(Error::invalid(
            op,
            format!("eps must be finite and >= 0, got {eps}"),
        ));
    }
    let (_, c, _) = ncs(op, x_in)?;
    if groups == 0 || c % groups != 0 {
        return Err(Error::invalid(
            op,
            format!(
                "{groups} groups do not divide the {c} channels of shape {:?}",
                x_in.shape()
            ),
        ));
    }
    check_param(op, "weight", weight, &[c])?;
    check_param(op, "bias", bias, &[c])?;
    let x = dense(x_in)?;
    let rec = if op == "instance_norm" {
        Op::InstanceNorm { eps }
    } else {
        Op::GroupNorm { groups, eps }
    };
    let (out, stats) = backend::for_device(x.device(), op)?.norm(&rec, &x, weight, bias, None)?;
    Ok(record_rule_operands(
        out,
        rec,
        &inputs(x_in, weight, bias),
        &[Some(x_in), weight, bias],
        norm_grad,
        Saved::with_state(vec![x], stats),
    ))
}

impl Tensor {
    /// Batch normalisation of `[N, C, ...]` (any rank >= 2, channels on axis 1), like
    /// `torch.nn.functional.batch_norm`.
    ///
    /// - `training`: normalises with the batch mean and biased variance over every axis but 1,
    ///   and updates `running_mean` / `running_var` (f32 `[C]`, contiguous) **in place**:
    ///   `running = (1 − momentum)·running + momentum·batch`, with the unbiased variance for
    ///   `running_var`. Errors when a channel has only one value (`N · spatial == 1`).
    /// - inference: normalises with the running statistics (left unchanged).
    ///
    /// `y = (x − mean) / sqrt(var + eps) · weight + bias` with optional `[C]` weight and bias.
    /// Differentiable in `x`, `weight` and `bias` (the running statistics get no gradient).
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm(
        &self,
        running_mean: &Tensor,
        running_var: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        training: bool,
        momentum: f32,
        eps: f32,
    ) -> Result<Tensor> {
        self.batch_norm_impl(
            [running_mean, running_var],
            weight,
            bias,
            training,
            momentum,
            eps,
            false,
        )
    }

    /// [`Tensor::batch_norm`] with Keras' update of the moving statistics in training:
    /// `moving = momentum·moving + (1 − momentum)·batch`, with the batch's biased variance
    /// (`keras.layers.BatchNormalization`; `momentum` is Keras', e.g. 0.99).
    ///
    /// ```
    /// use ferrovision_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 3.0], &[2, 1]).unwrap();
    /// let (mean, var) = (Tensor::zeros(&[1]), Tensor::ones(&[1]));
    /// x.batch_norm_keras(&mean, &var, None, None, true, 0.9, 1e-3).unwrap();
    /// // Batch mean 2, biased variance 1.
    /// assert!((mean.to_vec::<f32>().unwrap()[0] - 0.2).abs() < 1e-6);
    /// assert!((var.to_vec::<f32>().unwrap()[0] - 1.0).abs() < 1e-6);
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm_keras(
        &self,
        moving_mean: &Tensor,
        moving_var: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        training: bool,
        momentum: f32,
        eps: f32,
    ) -> Result<Tensor> {
        self.batch_norm_impl(
            [moving_mean, moving_var],
            weight,
            bias,
            training,
            momentum,
            eps,
            true,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn batch_norm_impl(
        &self,
        [running_mean, running_var]: [&Tensor; 2],
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        training: bool,
        momentum: f32,
        eps: f32,
        keras: bool,
    ) -> Result<Tensor> {
        const OP: &str = "batch_norm";
        self.expect_f32(OP)?;
        if !(eps >= 0.0 && eps.is_finite()) {
            return Err(Error::invalid(
                OP,
                format!("eps must be finite and >= 0, got {eps}"),
            ));
        }
        if !momentum.is_finite() {
            return Err(Error::invalid(
                OP,
                format!("momentum must be finite, got {momentum}"),
            ));
        }
        let (n, c, s) = ncs(OP, self)?;
        for (name, t) in [("running_mean", running_mean), ("running_var", running_var)] {
            t.expect_f32(OP)?;
            if t.shape() != [c] {
                return Err(Error::bad_shape(
                    OP,
                    t.shape(),
                    format!("{name} of shape [{c}] for input {:?}", self.shape()),
                ));
            }
        }
        check_param(OP, "weight", weight, &[c])?;
        check_param(OP, "bias", bias, &[c])?;
        let m = n * s;
        if training && m <= 1 {
            return Err(Error::invalid(
                OP,
                format!(
                    "expected more than 1 value per channel when training, got input of shape {:?}",
                    self.shape()
                ),
            ));
        }
        let x = dense(self)?;
        let rec = Op::BatchNorm {
            training,
            momentum,
            eps,
            keras,
        };
        let running = Some([running_mean, running_var]);
        let (out, stats) =
            backend::for_device(x.device(), OP)?.norm(&rec, &x, weight, bias, running)?;
        Ok(record_rule_operands(
            out,
            rec,
            &inputs(self, weight, bias),
            &[
                Some(self),
                weight,
                bias,
                Some(running_mean),
                Some(running_var),
            ],
            norm_grad,
            Saved::with_state(vec![x], stats),
        ))
    }

    /// Layer normalisation over the trailing dims `normalized_shape` (like
    /// `torch.nn.functional.layer_norm`): each row of `prod(normalized_shape)` values is
    /// normalised with its own mean and biased variance, then scaled by `weight` and shifted by
    /// `bias` (both of shape `normalized_shape`, optional).
    pub fn layer_norm(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        const OP: &str = "layer_norm";
        self.expect_f32(OP)?;
        if !(eps >= 0.0 && eps.is_finite()) {
            return Err(Error::invalid(
                OP,
                format!("eps must be finite and >= 0, got {eps}"),
            ));
        }
        if normalized_shape.is_empty() {
            return Err(Error::invalid(OP, "normalized_shape must not be empty"));
        }
        let r = self.rank();
        let k = normalized_shape.len();
        if k > r || self.shape()[r - k..] != *normalized_shape {
            return Err(Error::bad_shape(
                OP,
                self.shape(),
                format!("trailing dimensions {normalized_shape:?}"),
            ));
        }
        check_param(OP, "weight", weight, normalized_shape)?;
        check_param(OP, "bias", bias, normalized_shape)?;
        let x = dense(self)?;
        let rec = Op::LayerNorm {
            normalized_shape: normalized_shape.to_vec(),
            eps,
        };
        let (out, stats) =
            backend::for_device(x.device(), OP)?.norm(&rec, &x, weight, bias, None)?;
        Ok(record_rule_operands(
            out,
            rec,
            &inputs(self, weight, bias),
            &[Some(self), weight, bias],
            norm_grad,
            Saved::with_state(vec![x], stats),
        ))
    }

    /// Group normalisation of `[N, C, ...]` (like `torch.nn.functional.group_norm`): the `C`
    /// channels form `groups` groups of adjacent channels; each (sample, group) is normalised
    /// with its own mean and biased variance, then scaled and shifted per channel by the
    /// optional `[C]` `weight` and `bias`.
    pub fn group_norm(
        &self,
        groups: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        group_norm_impl("group_norm", self, groups, weight, bias, eps)
    }

    /// Instance normalisation of `[N, C, ...]` (like `torch.nn.functional.instance_norm` with
    /// batch statistics and no running statistics): each (sample, channel) is normalised over
    /// its spatial values, then scaled and shifted by the optional `[C]` `weight` and `bias`.
    /// Errors when there is only one spatial value (like PyTorch).
    pub fn instance_norm(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        const OP: &str = "instance_norm";
        let (_, c, s) = ncs(OP, self)?;
        if s <= 1 {
            return Err(Error::bad_shape(
                OP,
                self.shape(),
                "more than 1 spatial element per channel",
            ));
        }
        group_norm_impl(OP, self, c.max(1), weight, bias, eps)
    }
}

/// The gradient rule of every normalisation: `Backend::norm_backward` from the saved dense
/// input and the backend's statistics.
fn norm_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let stats = *ctx.take_state::<NormStats>()?;
    let (has_w, has_b) = stats.affine();
    let x = ctx.saved(0)?;
    let gd = dense(g)?;
    let [dx, dw, db] = backend::for_device(x.device(), op.name())?.norm_backward(
        op,
        x,
        stats,
        &gd,
        ctx.needs(0),
    )?;
    Ok(pack_grads(dx, dw, db, has_w, has_b))
}
