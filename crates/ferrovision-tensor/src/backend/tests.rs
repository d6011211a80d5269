//! Proves that op methods and gradient rules dispatch through [`Backend`]: a test backend that
//! wraps [`CpuBackend`] and counts calls per family is installed for the current thread (only in
//! this crate's unit-test build, see `for_device`), then ops run forward and backward.

use super::{Backend, ConvGeom, CpuBackend, LossArgs, LossStats, MatmulPlan, NormStats, RoiPlan};
use crate::autograd::Op;
use crate::ops::separable::{IdxBuf, SepPlan};
use crate::rng::Rng;
use crate::shape::Layout;
use crate::{ConvOpts, ConvTransposeOpts, Device, Result, Tensor};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    /// The backend `for_device` returns on this thread, when set.
    pub(super) static OVERRIDE: Cell<Option<&'static dyn Backend>> = const { Cell::new(None) };
}

/// Call counts per trait method.
#[derive(Default)]
struct Counting {
    unary: AtomicUsize,
    unary_backward: AtomicUsize,
    binary: AtomicUsize,
    matmul: AtomicUsize,
    matmul_backward: AtomicUsize,
    conv: AtomicUsize,
    conv_backward: AtomicUsize,
    conv_transpose: AtomicUsize,
    conv_transpose_backward: AtomicUsize,
    reduce: AtomicUsize,
    reduce_backward: AtomicUsize,
    arg_reduce: AtomicUsize,
    norm: AtomicUsize,
    norm_backward: AtomicUsize,
    softmax: AtomicUsize,
    softmax_backward: AtomicUsize,
    roi: AtomicUsize,
    roi_backward: AtomicUsize,
    loss: AtomicUsize,
    loss_backward: AtomicUsize,
    contiguous: AtomicUsize,
    dot_reduce: AtomicUsize,
    map_copy: AtomicUsize,
    map_accumulate: AtomicUsize,
    concat: AtomicUsize,
    index_op: AtomicUsize,
    index_op_backward: AtomicUsize,
    pool: AtomicUsize,
    pool_backward: AtomicUsize,
    max_unpool: AtomicUsize,
    max_unpool_backward: AtomicUsize,
    compare: AtomicUsize,
    compare_backward: AtomicUsize,
    dropout: AtomicUsize,
    dropout_backward: AtomicUsize,
    to_dtype: AtomicUsize,
}

fn bump(c: &AtomicUsize) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Backend for Counting {
    fn device(&self) -> Device {
        CpuBackend.device()
    }
    fn unary(&self, op: &Op, x: &Tensor) -> Result<Tensor> {
        bump(&self.unary);
        CpuBackend.unary(op, x)
    }
    fn unary_backward(&self, op: &Op, saved: Option<&Tensor>, g: &Tensor) -> Result<Tensor> {
        bump(&self.unary_backward);
        CpuBackend.unary_backward(op, saved, g)
    }
    fn binary(&self, op: &Op, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        bump(&self.binary);
        CpuBackend.binary(op, a, b)
    }
    fn matmul(
        &self,
        op: &Op,
        plan: &MatmulPlan,
        a: &Tensor,
        b: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        bump(&self.matmul);
        CpuBackend.matmul(op, plan, a, b, bias)
    }
    fn matmul_backward(
        &self,
        op: &Op,
        plan: &MatmulPlan,
        g: &Tensor,
        a: &Tensor,
        b: &Tensor,
        relu_out: Option<&Tensor>,
        needs: [bool; 3],
    ) -> Result<[Option<Tensor>; 3]> {
        bump(&self.matmul_backward);
        CpuBackend.matmul_backward(op, plan, g, a, b, relu_out, needs)
    }
    fn conv(
        &self,
        op: &'static str,
        geom: &ConvGeom,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        residual: Option<&Tensor>,
        relu: bool,
        out_shape: &[usize],
    ) -> Result<Tensor> {
        bump(&self.conv);
        CpuBackend.conv(op, geom, x, w, bias, residual, relu, out_shape)
    }
    fn conv_backward(
        &self,
        op: &'static str,
        geom: &ConvGeom,
        g: &Tensor,
        x: &Tensor,
        w: &Tensor,
        relu_out: Option<&Tensor>,
        needs: [bool; 3],
    ) -> Result<[Option<Tensor>; 3]> {
        bump(&self.conv_backward);
        CpuBackend.conv_backward(op, geom, g, x, w, relu_out, needs)
    }
    fn conv_transpose(
        &self,
        op: &'static str,
        geom: &ConvGeom,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        out_shape: &[usize],
    ) -> Result<Tensor> {
        bump(&self.conv_transpose);
        CpuBackend.conv_transpose(op, geom, x, w, bias, out_shape)
    }
    fn conv_transpose_backward(
        &self,
        op: &'static str,
        geom: &ConvGeom,
        g: &Tensor,
        x: &Tensor,
        w: &Tensor,
        needs: [bool; 3],
    ) -> Result<[Option<Tensor>; 3]> {
        bump(&self.conv_transpose_backward);
        CpuBackend.conv_transpose_backward(op, geom, g, x, w, needs)
    }
    fn reduce(&self, op: &Op, x: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        bump(&self.reduce);
        CpuBackend.reduce(op, x)
    }
    fn reduce_backward(
        &self,
        op: &Op,
        x_shape: &[usize],
        saved: [Option<&Tensor>; 3],
        g: &Tensor,
    ) -> Result<Tensor> {
        bump(&self.reduce_backward);
        CpuBackend.reduce_backward(op, x_shape, saved, g)
    }
    fn arg_reduce(
        &self,
        op: &'static str,
        x: &Tensor,
        dims: (usize, usize, usize),
        is_max: bool,
        out_shape: &[usize],
    ) -> Result<Tensor> {
        bump(&self.arg_reduce);
        CpuBackend.arg_reduce(op, x, dims, is_max, out_shape)
    }
    fn norm(
        &self,
        op: &Op,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        running: Option<[&Tensor; 2]>,
    ) -> Result<(Tensor, NormStats)> {
        bump(&self.norm);
        CpuBackend.norm(op, x, weight, bias, running)
    }
    fn norm_backward(
        &self,
        op: &Op,
        x: &Tensor,
        stats: NormStats,
        g: &Tensor,
        need_dx: bool,
    ) -> Result<[Option<Tensor>; 3]> {
        bump(&self.norm_backward);
        CpuBackend.norm_backward(op, x, stats, g, need_dx)
    }
    fn softmax(&self, op: &Op, dims: (usize, usize, usize), x: &Tensor) -> Result<Tensor> {
        bump(&self.softmax);
        CpuBackend.softmax(op, dims, x)
    }
    fn softmax_backward(
        &self,
        op: &Op,
        dims: (usize, usize, usize),
        y: &Tensor,
        g: &Tensor,
    ) -> Result<Tensor> {
        bump(&self.softmax_backward);
        CpuBackend.softmax_backward(op, dims, y, g)
    }
    fn roi(&self, op: &Op, plan: &RoiPlan, x: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        bump(&self.roi);
        CpuBackend.roi(op, plan, x)
    }
    fn roi_backward(
        &self,
        op: &Op,
        plan: &RoiPlan,
        argmax: Option<&Tensor>,
        g: &Tensor,
    ) -> Result<Tensor> {
        bump(&self.roi_backward);
        CpuBackend.roi_backward(op, plan, argmax, g)
    }
    fn loss(&self, op: &Op, args: &LossArgs<'_>) -> Result<(Tensor, LossStats)> {
        bump(&self.loss);
        CpuBackend.loss(op, args)
    }
    fn loss_backward(
        &self,
        op: &Op,
        args: &LossArgs<'_>,
        stats: LossStats,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        bump(&self.loss_backward);
        CpuBackend.loss_backward(op, args, stats, g, needs)
    }

    // --- comparisons, where, masked_fill ---
    fn compare(&self, op: &Op, inputs: &[&Tensor]) -> Result<Tensor> {
        bump(&self.compare);
        CpuBackend.compare(op, inputs)
    }
    fn compare_backward(&self, op: &Op, cond: &Tensor, g: &Tensor, keep: bool) -> Result<Tensor> {
        bump(&self.compare_backward);
        CpuBackend.compare_backward(op, cond, g, keep)
    }

    // --- dropout, dtype conversion ---
    fn dropout(&self, op: &Op, x: &Tensor, rng: &mut Rng) -> Result<(Tensor, Vec<u8>)> {
        bump(&self.dropout);
        CpuBackend.dropout(op, x, rng)
    }
    fn dropout_backward(&self, op: &Op, g: &Tensor, mask: &[u8]) -> Result<Tensor> {
        bump(&self.dropout_backward);
        CpuBackend.dropout_backward(op, g, mask)
    }
    fn to_dtype(&self, op: &Op, x: &Tensor) -> Result<Tensor> {
        bump(&self.to_dtype);
        CpuBackend.to_dtype(op, x)
    }

    // --- copies, pooling and resizing ---
    fn contiguous(&self, op: &'static str, x: &Tensor) -> Result<Tensor> {
        bump(&self.contiguous);
        CpuBackend.contiguous(op, x)
    }
    fn dot_reduce(
        &self,
        op: &'static str,
        g: &Tensor,
        x: &Tensor,
        axes: &[usize],
        out_shape: &[usize],
    ) -> Result<Tensor> {
        bump(&self.dot_reduce);
        CpuBackend.dot_reduce(op, g, x, axes, out_shape)
    }
    fn map_copy(
        &self,
        op: &Op,
        x: &Tensor,
        layout: &Layout,
        maps: &[Vec<usize>],
        fill: f64,
    ) -> Result<Tensor> {
        bump(&self.map_copy);
        CpuBackend.map_copy(op, x, layout, maps, fill)
    }
    fn map_accumulate(
        &self,
        op: &Op,
        g: &Tensor,
        maps: &[Vec<usize>],
        in_shape: &[usize],
    ) -> Result<Tensor> {
        bump(&self.map_accumulate);
        CpuBackend.map_accumulate(op, g, maps, in_shape)
    }
    fn concat(
        &self,
        op: &Op,
        tensors: &[&Tensor],
        blocks: &[usize],
        out_shape: &[usize],
    ) -> Result<Tensor> {
        bump(&self.concat);
        CpuBackend.concat(op, tensors, blocks, out_shape)
    }
    fn index_op(
        &self,
        op: &Op,
        x: &Tensor,
        index: &Tensor,
        src: Option<&Tensor>,
    ) -> Result<Tensor> {
        bump(&self.index_op);
        CpuBackend.index_op(op, x, index, src)
    }
    fn index_op_backward(
        &self,
        op: &Op,
        g: &Tensor,
        index: &Tensor,
        in_shape: &[usize],
        src_shape: &[usize],
        needs: [bool; 2],
    ) -> Result<[Option<Tensor>; 2]> {
        bump(&self.index_op_backward);
        CpuBackend.index_op_backward(op, g, index, in_shape, src_shape, needs)
    }
    fn pool(
        &self,
        op: &Op,
        plan: &SepPlan,
        x: &Tensor,
        track: bool,
    ) -> Result<(Tensor, Option<IdxBuf>)> {
        bump(&self.pool);
        CpuBackend.pool(op, plan, x, track)
    }
    fn pool_backward(
        &self,
        op: &Op,
        plan: &SepPlan,
        g: &Tensor,
        argmax: Option<&IdxBuf>,
    ) -> Result<Tensor> {
        bump(&self.pool_backward);
        CpuBackend.pool_backward(op, plan, g, argmax)
    }
    fn max_unpool(&self, op: &Op, plan: &SepPlan, x: &Tensor, idx: &[i64]) -> Result<Tensor> {
        bump(&self.max_unpool);
        CpuBackend.max_unpool(op, plan, x, idx)
    }
    fn max_unpool_backward(
        &self,
        op: &Op,
        plan: &SepPlan,
        g: &Tensor,
        idx: &[i64],
    ) -> Result<Tensor> {
        bump(&self.max_unpool_backward);
        CpuBackend.max_unpool_backward(op, plan, g, idx)
    }
}

/// Runs `f` with a fresh counting backend installed on this thread; returns its counts.
fn counting(f: impl FnOnce() -> Result<()>) -> &'static Counting {
    let b: &'static Counting = Box::leak(Box::default());
    OVERRIDE.with(|o| o.set(Some(b)));
    let r = f();
    OVERRIDE.with(|o| o.set(None));
    r.unwrap();
    b
}

fn count(c: &AtomicUsize) -> usize {
    c.load(Ordering::Relaxed)
}

#[test]
fn matmul_and_linear_dispatch_through_the_backend() {
    let c = counting(|| {
        let x = Tensor::ones(&[3, 4]).requires_grad_(true);
        let w = Tensor::ones(&[4, 2]).requires_grad_(true);
        let b = Tensor::zeros(&[2]).requires_grad_(true);
        let y = x.matmul(&w)?.add(&x.linear_relu(&w, Some(&b))?)?;
        y.sum_all()?.backward()?;
        assert_eq!(x.grad().unwrap().shape(), &[3, 4]);
        Ok(())
    });
    assert_eq!(count(&c.matmul), 2);
    assert_eq!(count(&c.matmul_backward), 2);
}

#[test]
fn conv_and_conv_transpose_dispatch_through_the_backend() {
    let c = counting(|| {
        let x = Tensor::ones(&[1, 2, 5, 5]).requires_grad_(true);
        let w = Tensor::ones(&[3, 2, 3, 3]).requires_grad_(true);
        let y = x.conv2d_relu(&w, None, &ConvOpts::new().pad(1))?;
        let wt = Tensor::ones(&[3, 2, 2, 2]).requires_grad_(true);
        let z = y.conv_transpose2d(&wt, None, &ConvTransposeOpts::new().stride(&[2]))?;
        z.sum_all()?.backward()?;
        assert_eq!(w.grad().unwrap().shape(), &[3, 2, 3, 3]);
        assert_eq!(wt.grad().unwrap().shape(), &[3, 2, 2, 2]);
        Ok(())
    });
    assert_eq!(count(&c.conv), 1);
    assert_eq!(count(&c.conv_backward), 1);
    assert_eq!(count(&c.conv_transpose), 1);
    assert_eq!(count(&c.conv_transpose_backward), 1);
}

#[test]
fn reductions_dispatch_through_the_backend() {
    let c = counting(|| {
        let x = Tensor::from_vec((0..12).map(|v| v as f32).collect::<Vec<f32>>(), &[3, 4])?
            .requires_grad_(true);
        let parts = [
            x.mean(&[1], false)?,
            x.max(&[0], false)?,
            x.var(&[1], 1, false)?,
            x.logsumexp(&[0], false)?,
        ];
        let mut total = x.prod(&[1], false)?.sum_all()?;
        for p in &parts {
            total = total.add(&p.sum_all()?)?;
        }
        total.backward()?;
        assert_eq!(x.grad().unwrap().shape(), &[3, 4]);
        assert_eq!(x.argmax(1, false)?.to_vec::<i64>()?, vec![3, 3, 3]);
        Ok(())
    });
    // mean, max, var, logsumexp, prod and the five sum_all calls; each gradient once.
    assert_eq!(count(&c.reduce), 10);
    assert_eq!(count(&c.reduce_backward), 10);
    assert_eq!(count(&c.arg_reduce), 1);
}

#[test]
fn normalisations_dispatch_through_the_backend() {
    let c = counting(|| {
        let x = Tensor::from_vec((0..16).map(|v| v as f32).collect::<Vec<f32>>(), &[2, 2, 4])?
            .requires_grad_(true);
        let w = Tensor::ones(&[2]).requires_grad_(true);
        let (rm, rv) = (Tensor::zeros(&[2]), Tensor::ones(&[2]));
        let parts = [
            x.batch_norm(&rm, &rv, Some(&w), None, true, 0.1, 1e-5)?,
            x.layer_norm(&[4], None, None, 1e-5)?,
            x.group_norm(1, Some(&w), None, 1e-5)?,
            x.instance_norm(None, None, 1e-5)?,
        ];
        let mut total = parts[0].mul(&parts[1])?;
        for p in &parts[2..] {
            total = total.add(p)?;
        }
        total.sum_all()?.backward()?;
        assert_eq!(x.grad().unwrap().shape(), &[2, 2, 4]);
        assert_eq!(w.grad().unwrap().shape(), &[2]);
        Ok(())
    });
    // batch, layer, group and instance norm: one forward and one backward call each.
    assert_eq!(count(&c.norm), 4);
    assert_eq!(count(&c.norm_backward), 4);
}

#[test]
fn softmax_dispatches_through_the_backend() {
    let c = counting(|| {
        let x = Tensor::from_vec((0..24).map(|v| v as f32).collect::<Vec<f32>>(), &[2, 3, 4])?
            .requires_grad_(true);
        // Last axis (row kernel), a middle axis (tile kernel) and the log variant.
        let y = x
            .softmax(-1)?
            .add(&x.softmax(1)?)?
            .add(&x.log_softmax(1)?)?;
        y.sum_all()?.backward()?;
        assert_eq!(x.grad().unwrap().shape(), &[2, 3, 4]);
        Ok(())
    });
    assert_eq!(count(&c.softmax), 3);
    assert_eq!(count(&c.softmax_backward), 3);
}

#[test]
fn roi_ops_dispatch_through_the_backend() {
    let c = counting(|| {
        let x = Tensor::from_vec(
            (0..50).map(|v| v as f32).collect::<Vec<f32>>(),
            &[1, 2, 5, 5],
        )?
        .requires_grad_(true);
        let rois = Tensor::from_vec(
            vec![0.0f32, 0.0, 0.0, 4.0, 4.0, 0.0, 1.0, 1.0, 3.0, 2.0],
            &[2, 5],
        )?;
        let a = x.roi_align(
            &rois,
            crate::ops::roi::RoiAlignOpts {
                output_size: (2, 2),
                ..Default::default()
            },
        )?;
        let p = x.roi_pool(&rois, (2, 2), 1.0)?;
        assert_eq!(p.shape(), &[2, 2, 2, 2]);
        a.add(&p)?.sum_all()?.backward()?;
        assert_eq!(x.grad().unwrap().shape(), &[1, 2, 5, 5]);
        Ok(())
    });
    assert_eq!(count(&c.roi), 2);
    assert_eq!(count(&c.roi_backward), 2);
}

#[test]
fn losses_dispatch_through_the_backend() {
    use crate::ops::loss::{CrossEntropyOpts, Reduction};
    let c = counting(|| {
        let x = Tensor::from_vec(
            (0..12).map(|v| v as f32 / 12.0).collect::<Vec<f32>>(),
            &[3, 4],
        )?
        .requires_grad_(true);
        let y = Tensor::from_vec(
            (0..12).map(|v| (v % 2) as f32).collect::<Vec<f32>>(),
            &[3, 4],
        )?
        .requires_grad_(true);
        let cls = Tensor::from_vec(vec![0i64, 3, 1], &[3])?;
        let sw = Tensor::ones(&[3]).requires_grad_(true);
        let w = Tensor::ones(&[4]).requires_grad_(true);
        let pw = Tensor::ones(&[4]).requires_grad_(true);
        let ce = CrossEntropyOpts {
            sample_weights: Some(sw.clone()),
            ..Default::default()
        };
        let mean = Reduction::Mean;
        let parts = [
            x.cross_entropy(&cls, &ce)?,
            x.nll_loss(&cls, &CrossEntropyOpts::default())?,
            x.cross_entropy_dense(&y, 0.1, mean)?,
            x.binary_cross_entropy_with_logits(&y, Some(&w), Some(&pw), mean)?,
            x.binary_cross_entropy(&y, Some(&w), Reduction::Sum)?,
            x.mse_loss(&y, mean)?,
            x.l1_loss(&y, mean)?,
            x.huber_loss(&y, 0.5, Reduction::None)?.sum_all()?,
        ];
        let mut total = parts[0].clone();
        for p in &parts[1..] {
            total = total.add(p)?;
        }
        total.backward()?;
        assert_eq!(x.grad().unwrap().shape(), &[3, 4]);
        assert_eq!(y.grad().unwrap().shape(), &[3, 4]);
        assert_eq!(sw.grad().unwrap().shape(), &[3]);
        assert_eq!(w.grad().unwrap().shape(), &[4]);
        assert_eq!(pw.grad().unwrap().shape(), &[4]);
        Ok(())
    });
    // Class-index (2), dense (1), binary (2) and pointwise (3): one call each way.
    assert_eq!(count(&c.loss), 8);
    assert_eq!(count(&c.loss_backward), 8);
}

#[test]
fn copies_dispatch_through_the_backend() {
    let c = counting(|| {
        let x = Tensor::from_vec((0..12).map(|v| v as f32).collect::<Vec<f32>>(), &[3, 4])?
            .requires_grad_(true);
        let y = Tensor::ones(&[3, 4]).requires_grad_(true);
        // Map copies: index_select, pad (reflect: adjoint backward; constant: crop backward),
        // flip and repeat; each with its gradient.
        let idx = Tensor::from_vec(vec![2i64, 0], &[2])?;
        let parts = [
            x.index_select(0, &idx)?.sum_all()?,
            x.pad(&[(1, 1)], crate::PadMode::Reflect)?.sum_all()?,
            x.pad(&[(1, 0)], crate::PadMode::Constant(0.0))?.sum_all()?,
            x.flip(&[1])?.sum_all()?,
            x.repeat(&[2, 1])?.sum_all()?,
            // Concatenation and its per-input slices.
            Tensor::cat(&[&x, &y], 0)?.sum_all()?,
            Tensor::stack(&[&x, &y], 1)?.sum_all()?,
            // Gather / scatter / scatter_add, forward and backward.
            x.gather(1, &Tensor::from_vec(vec![0i64, 1, 2], &[3, 1])?)?
                .sum_all()?,
            x.scatter(0, &Tensor::from_vec(vec![1i64, 2], &[1, 2])?, &y)?
                .sum_all()?,
            x.scatter_add(0, &Tensor::from_vec(vec![0i64, 0], &[1, 2])?, &y)?
                .sum_all()?,
        ];
        let mut total = parts[0].clone();
        for p in &parts[1..] {
            total = total.add(p)?;
        }
        total.backward()?;
        assert_eq!(x.grad().unwrap().shape(), &[3, 4]);
        assert_eq!(y.grad().unwrap().shape(), &[3, 4]);
        Ok(())
    });
    // Forward: index_select, two pads, flip, repeat. Backward: the constant pad's crop, flip,
    // and cat's two and stack's two slices.
    assert_eq!(count(&c.map_copy), 5 + 1 + 1 + 2 + 2);
    // index_select, the reflect pad and repeat.
    assert_eq!(count(&c.map_accumulate), 3);
    assert_eq!(count(&c.concat), 2);
    assert_eq!(count(&c.index_op), 3);
    assert_eq!(count(&c.index_op_backward), 3);
}

#[test]
fn densify_and_product_gradient_dispatch_through_the_backend() {
    let c = counting(|| {
        // A transposed (strided) input is densified by the backend before normalising.
        let x = Tensor::from_vec((0..12).map(|v| v as f32).collect::<Vec<f32>>(), &[4, 3])?
            .requires_grad_(true);
        let xt = x.t()?;
        assert!(!xt.is_contiguous());
        let w = Tensor::ones(&[4]).requires_grad_(true);
        // `ln · w` with `w` broadcast: w's gradient is the fused Σ g·ln.
        let y = xt.layer_norm(&[4], None, None, 1e-5)?.mul(&w)?;
        y.sum_all()?.backward()?;
        assert_eq!(w.grad().unwrap().shape(), &[4]);
        Ok(())
    });
    assert_eq!(count(&c.contiguous), 1);
    assert_eq!(count(&c.dot_reduce), 1);
}

#[test]
fn pooling_and_resizing_dispatch_through_the_backend() {
    let c = counting(|| {
        let x = Tensor::from_vec(
            (0..32).map(|v| v as f32).collect::<Vec<f32>>(),
            &[1, 2, 4, 4],
        )?
        .requires_grad_(true);
        let opts = crate::ops::pool::PoolOpts::new(&[2]);
        // Max pooling with indices, unpooled back; average, adaptive and global pooling; resize.
        let (m, idx) = x.max_pool2d_with_indices(&opts)?;
        let parts = [
            m.max_unpool2d(&idx, &[4, 4])?,
            x.avg_pool2d(&opts)?,
            x.adaptive_max_pool2d(&[1, 3])?,
            x.adaptive_avg_pool2d(&[3, 3])?,
            x.upsample_bilinear2d(&[6, 6], false)?,
        ];
        let mut total = x.global_avg_pool2d()?.sum_all()?;
        for p in &parts {
            total = total.add(&p.sum_all()?)?;
        }
        total.backward()?;
        assert_eq!(x.grad().unwrap().shape(), &[1, 2, 4, 4]);
        Ok(())
    });
    // Max (x2: max_pool2d, adaptive max) and linear (x4: avg, adaptive avg, resize, global).
    assert_eq!(count(&c.pool), 6);
    assert_eq!(count(&c.pool_backward), 6);
    assert_eq!(count(&c.max_unpool), 1);
    assert_eq!(count(&c.max_unpool_backward), 1);
}

#[test]
fn comparisons_where_and_masked_fill_dispatch_through_the_backend() {
    let c = counting(|| {
        let x = Tensor::from_vec(vec![1.0f32, -2.0, 3.0, f32::NAN], &[2, 2])?.requires_grad_(true);
        let y = Tensor::from_vec(vec![0.5f32, 0.5], &[2])?.requires_grad_(true);
        let m = x.gt(&y)?;
        assert_eq!(m.to_vec::<bool>()?, vec![true, false, true, false]);
        let _ = (x.le_scalar(1.0)?, x.isnan()?, x.isfinite()?);
        let _ = (m.logical_and(&x.lt_scalar(2.0)?)?, m.logical_not()?);
        // where sends g to x where m holds and to y elsewhere (y's summed over rows);
        // masked_fill sends it to x where !m.
        let w = m.where_(&x, &y)?;
        let f = x.masked_fill(&m, 0.0)?;
        w.sum_all()?.add(&f.sum_all()?)?.backward()?;
        assert_eq!(x.grad().unwrap().to_vec::<f32>()?, vec![1.0, 1.0, 1.0, 1.0]);
        assert_eq!(y.grad().unwrap().to_vec::<f32>()?, vec![0.0, 2.0]);
        Ok(())
    });
    // gt, lt_scalar, le_scalar, isnan, isfinite, logical_and, logical_not, where, masked_fill.
    assert_eq!(count(&c.compare), 9);
    // where: one mask per input; masked_fill: one.
    assert_eq!(count(&c.compare_backward), 3);
}

#[test]
fn dropout_and_dtype_conversion_dispatch_through_the_backend() {
    let c = counting(|| {
        let x = Tensor::ones(&[2, 3, 2, 2]).requires_grad_(true);
        let mut rng = Rng::new(7);
        let y = x.dropout(0.5, true, &mut rng)?;
        let z = x.spatial_dropout(0.5, true, &mut rng)?;
        // Kept values are scaled by 2, the gradient is the same mask and scale.
        assert!(y.to_vec::<f32>()?.iter().all(|&v| v == 0.0 || v == 2.0));
        y.add(&z)?.sum_all()?.backward()?;
        let (gy, gz) = (y.to_vec::<f32>()?, z.to_vec::<f32>()?);
        let want: Vec<f32> = gy.iter().zip(&gz).map(|(a, b)| a + b).collect();
        assert_eq!(x.grad().unwrap().to_vec::<f32>()?, want);
        // Float to float (recorded, converted back in the gradient) and float to int.
        let h = x.to_dtype(crate::DType::F16)?;
        h.to_dtype(crate::DType::F32)?.sum_all()?.backward()?;
        assert_eq!(x.to_dtype(crate::DType::I64)?.to_vec::<i64>()?, vec![1; 24]);
        Ok(())
    });
    assert_eq!(count(&c.dropout), 2);
    assert_eq!(count(&c.dropout_backward), 2);
    // x→f16, f16→f32, x→i64 forward; f32→f16 and f16→f32 in the gradient.
    assert_eq!(count(&c.to_dtype), 5);
}

#[test]
fn slice_gradient_and_one_hot_dispatch_through_the_backend() {
    let c = counting(|| {
        let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0], &[5])?.requires_grad_(true);
        // Elements 1 and 3: the gradient is 1 there, 0 elsewhere (one map_copy).
        x.slice(0, 1, 5, 2)?.sum_all()?.backward()?;
        assert_eq!(
            x.grad().unwrap().to_vec::<f32>()?,
            vec![0.0, 1.0, 0.0, 1.0, 0.0]
        );
        let labels = Tensor::from_vec(vec![2i64, 0], &[2])?;
        let oh = labels.one_hot(3)?;
        assert_eq!(oh.to_vec::<f32>()?, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        Ok(())
    });
    assert_eq!(count(&c.map_copy), 1);
    assert_eq!(count(&c.index_op), 1);
}

#[test]
fn unary_gradients_dispatch_through_the_backend() {
    let c = counting(|| {
        let x = Tensor::from_vec(vec![-2f32, -0.5, 0.5, 2.0], &[4])?.requires_grad_(true);
        // relu, tanh (save a tensor), mul_scalar, neg (constant derivatives), sign (zero).
        let y = x
            .relu()?
            .add(&x.tanh()?)?
            .mul_scalar(3.0)?
            .neg()?
            .add(&x.sign()?)?;
        y.sum_all()?.backward()?;
        let gx = x.grad().unwrap().to_vec::<f32>()?;
        for (g, v) in gx.iter().zip([-2f32, -0.5, 0.5, 2.0]) {
            let relu = if v > 0.0 { 1.0 } else { 0.0 };
            let want = -3.0 * (relu + 1.0 - v.tanh() * v.tanh());
            assert!((g - want).abs() < 1e-6, "{g} vs {want}");
        }
        Ok(())
    });
    // relu, tanh, mul_scalar and neg backward; sign's zero gradient needs no kernel.
    assert_eq!(count(&c.unary_backward), 4);
}
