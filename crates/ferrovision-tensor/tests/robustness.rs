//! Robustness of the public API: invalid arguments must give a typed `Err` naming the op (never
//! a panic, never a silent `Ok`), and a seeded random fuzz loop over the shape-heavy ops must
//! never panic and must produce outputs of the documented shape.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ferrovision_tensor::rng::Rng;
use ferrovision_tensor::{
    ConvOpts, ConvTransposeOpts, CrossEntropyOpts, DType, NormOrd, PadMode, Padding, PoolOpts,
    Reduction, ResizeMode, Result, Tensor,
};

fn f(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| ((i * 7 % 13) as f32) * 0.1 - 0.5).collect();
    Tensor::from_vec(v, shape).unwrap()
}

fn i64s(v: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

fn bools(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|i| i % 2 == 0).collect::<Vec<bool>>(), shape).unwrap()
}

/// A non-contiguous `[a, b]` view (transpose of a `[b, a]` tensor).
fn nc(a: usize, b: usize) -> Tensor {
    f(&[b, a]).t().unwrap()
}

/// Runs `body` catching panics; returns a failure description or `None`.
fn check<T>(name: &str, op: &str, body: impl FnOnce() -> Result<T>) -> Option<String> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Some(format!("{name}: PANIC: {msg}"))
        }
        Ok(Ok(_)) => Some(format!("{name}: returned Ok, expected Err")),
        Ok(Err(e)) => {
            let s = e.to_string();
            if s.contains(op) {
                None
            } else {
                Some(format!("{name}: error does not name `{op}`: {s}"))
            }
        }
    }
}

struct Cases(Vec<String>, usize);

impl Cases {
    fn err<T>(&mut self, name: &str, op: &str, body: impl FnOnce() -> Result<T>) {
        self.1 += 1;
        if let Some(fail) = check(name, op, body) {
            self.0.push(fail);
        }
    }
    fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} of {} cases failed:\n{}",
            self.0.len(),
            self.1,
            self.0.join("\n")
        );
    }
}

#[test]
fn invalid_views_and_creation() {
    let mut c = Cases(Vec::new(), 0);
    let x = f(&[2, 3]);
    c.err("from_vec len", "from_vec", || {
        Tensor::from_vec(vec![1.0f32; 5], &[2, 3])
    });
    c.err("reshape numel", "reshape", || x.reshape(&[4, 2]));
    c.err("reshape_infer two -1", "reshape", || {
        x.reshape_infer(&[-1, -1])
    });
    c.err("reshape_infer -2", "reshape", || x.reshape_infer(&[-2, 3]));
    c.err("reshape_infer indivisible", "reshape", || {
        x.reshape_infer(&[-1, 4])
    });
    c.err("reshape_infer zero with -1", "reshape", || {
        f(&[0, 3]).reshape_infer(&[0, -1])
    });
    c.err("flatten axis", "flatten", || x.flatten(0, 2));
    c.err("flatten neg axis", "flatten", || x.flatten(-3, 1));
    c.err("flatten start>end", "flatten", || x.flatten(1, 0));
    c.err("permute len", "permute", || x.permute(&[0]));
    c.err("permute dup", "permute", || x.permute(&[0, 0]));
    c.err("permute range", "permute", || x.permute(&[0, 2]));
    c.err("transpose axis", "transpose", || x.transpose(0, 2));
    c.err("transpose neg axis", "transpose", || x.transpose(-3, 0));
    c.err("narrow past end", "narrow", || x.narrow(1, 2, 2));
    c.err("narrow overflow", "narrow", || x.narrow(1, usize::MAX, 2));
    c.err("narrow axis", "narrow", || x.narrow(2, 0, 1));
    c.err("reshape overflow", "reshape", || {
        f(&[0]).reshape(&[1 << 63, 2])
    });
    c.err("expand overflow", "expand", || {
        f(&[1, 1]).expand(&[usize::MAX, 3])
    });
    c.err("slice step 0", "slice", || x.slice(1, 0, 3, 0));
    c.err("slice axis", "slice", || x.slice(-3, 0, 1, 1));
    c.err("expand incompatible", "expand", || x.expand(&[2, 4]));
    c.err("expand fewer dims", "expand", || x.expand(&[3]));
    c.err("squeeze non-1", "squeeze", || x.squeeze(0));
    c.err("squeeze axis", "squeeze", || x.squeeze(5));
    c.err("unsqueeze axis", "unsqueeze", || x.unsqueeze(4));
    c.err("unsqueeze neg axis", "unsqueeze", || x.unsqueeze(-4));
    c.err("dim axis", "dim", || x.dim(2));
    c.err("item non-scalar", "item", || x.item());
    c.err("to_vec wrong dtype", "to_vec", || x.to_vec::<i64>());
    c.err("arange step 0", "arange", || Tensor::arange(0.0, 1.0, 0.0));
    c.err("arange nan", "arange", || {
        Tensor::arange(0.0, f32::NAN, 1.0)
    });
    c.err("arange inf", "arange", || {
        Tensor::arange(0.0, f32::INFINITY, 1.0)
    });
    c.err("arange wrong sign", "arange", || {
        Tensor::arange(0.0, 1.0, -1.0)
    });
    c.err("arange_i64 step 0", "arange", || {
        Tensor::arange_i64(0, 5, 0)
    });
    c.err("arange_i64 huge", "arange", || {
        Tensor::arange_i64(i64::MIN, i64::MAX, 1)
    });
    c.err("linspace nan", "linspace", || {
        Tensor::linspace(f32::NAN, 1.0, 3)
    });
    let mut rng = Rng::new(1);
    c.err("rand_uniform lo>hi", "rand_uniform", || {
        Tensor::rand_uniform(&[2], 1.0, 0.0, &mut rng)
    });
    c.err("rand_uniform nan", "rand_uniform", || {
        Tensor::rand_uniform(&[2], f32::NAN, 1.0, &mut rng)
    });
    c.err("randn std<0", "randn", || {
        Tensor::randn(&[2], 0.0, -1.0, &mut rng)
    });
    c.err("randn std nan", "randn", || {
        Tensor::randn(&[2], 0.0, f32::NAN, &mut rng)
    });
    c.err("truncated_normal std<0", "truncated_normal", || {
        Tensor::truncated_normal(&[2], 0.0, -1.0, &mut rng)
    });
    c.err("bernoulli p>1", "bernoulli", || {
        Tensor::bernoulli(&[2], 1.5, &mut rng)
    });
    c.err("bernoulli p nan", "bernoulli", || {
        Tensor::bernoulli(&[2], f32::NAN, &mut rng)
    });
    c.err("randint empty range", "randint", || {
        Tensor::randint(&[2], 3, 3, &mut rng)
    });
    c.err("arange too many", "arange", || {
        Tensor::arange(0.0, 3e38, 1.0)
    });
    c.err("linspace huge", "linspace", || {
        Tensor::linspace(0.0, 1.0, usize::MAX)
    });
    c.err("rand_uniform inf", "rand_uniform", || {
        Tensor::rand_uniform(&[2], 0.0, f32::INFINITY, &mut rng)
    });
    c.finish();
}

#[test]
fn huge_sizes_are_errors() {
    let mut c = Cases(Vec::new(), 0);
    let x = f(&[1, 1, 2, 2]);
    let a = f(&[2, 3]);
    c.err("adaptive_avg huge", "adaptive_avg_pool2d", || {
        x.adaptive_avg_pool2d(&[usize::MAX, 2])
    });
    c.err("adaptive_max huge", "adaptive_max_pool2d", || {
        x.adaptive_max_pool2d(&[usize::MAX, 2])
    });
    c.err("upsample huge", "upsample_nearest2d", || {
        x.upsample_nearest2d(&[usize::MAX, 2])
    });
    c.err("bilinear huge", "upsample_bilinear2d", || {
        x.upsample_bilinear2d(&[usize::MAX, 2], false)
    });
    c.err("bilinear scale huge", "upsample_bilinear2d", || {
        x.upsample_bilinear2d_scale(usize::MAX / 2, false)
    });
    c.err("one_hot huge", "one_hot", || {
        i64s(&[0, 1], &[2]).one_hot(usize::MAX)
    });
    c.err("split overflow", "split", || a.split(&[usize::MAX, 4], 1));
    c.err("index_select i64::MAX", "index_select", || {
        a.index_select(1, &i64s(&[i64::MAX], &[1]))
    });
    c.err("gather i64::MIN", "gather", || {
        a.gather(1, &i64s(&[i64::MIN], &[1, 1]))
    });
    c.err("max_unpool i64::MAX idx", "max_unpool2d", || {
        f(&[1, 1, 1, 1]).max_unpool2d(&i64s(&[i64::MAX], &[1, 1, 1, 1]), &[2, 2])
    });
    c.err("slice huge end", "slice", || a.slice(1, 0, usize::MAX, 1));
    c.err("convT out_pad huge", "conv_transpose2d", || {
        x.conv_transpose2d(
            &f(&[1, 1, 1, 1]),
            None,
            &ConvTransposeOpts::new()
                .stride(&[usize::MAX])
                .output_padding(&[usize::MAX - 1]),
        )
    });
    c.err("conv1d huge stride on empty", "conv1d", || {
        f(&[1, 1, 3]).conv1d(&f(&[1, 1, 4]), None, &ConvOpts::new().stride(&[usize::MAX]))
    });
    c.err("pool huge padding", "max_pool2d", || {
        x.max_pool2d(&PoolOpts::new(&[usize::MAX]).padding(&[usize::MAX / 2]))
    });
    c.err("avg_pool huge stride ceil", "avg_pool2d", || {
        x.avg_pool2d(
            &PoolOpts::new(&[4])
                .stride(&[usize::MAX])
                .padding(&[2])
                .ceil_mode(true),
        )
    });
    c.finish();
}

#[test]
fn invalid_elementwise_and_compare() {
    let mut c = Cases(Vec::new(), 0);
    let a = f(&[2, 3]);
    let b = f(&[4]);
    let il = i64s(&[1, 2, 3], &[3]);
    let bl = bools(&[2, 3]);
    c.err("add shapes", "add", || a.add(&b));
    c.err("sub shapes", "sub", || a.sub(&b));
    c.err("mul shapes", "mul", || a.mul(&b));
    c.err("div shapes", "div", || a.div(&b));
    c.err("pow shapes", "pow", || a.pow(&b));
    c.err("maximum shapes", "maximum", || a.maximum(&b));
    c.err("minimum shapes", "minimum", || a.minimum(&b));
    c.err("add dtypes", "add", || a.add(&il));
    c.err("add bool", "add", || bl.add(&bl));
    c.err("mul nc shapes", "mul", || nc(3, 2).mul(&a));
    c.err("eq shapes", "eq", || a.eq(&b));
    c.err("lt shapes", "lt", || a.lt(&b));
    c.err("logical_or shapes", "logical_or", || {
        bl.logical_or(&bools(&[4]))
    });
    c.err("where_ f32 cond", "where", || a.where_(&a, &a));
    c.err("where_ shapes", "where", || bl.where_(&b, &b));
    c.err("where_ dtype mix", "where", || {
        bl.where_(&a, &i64s(&[0; 6], &[2, 3]))
    });
    c.err("masked_fill f32 mask", "masked_fill", || {
        a.masked_fill(&a, 0.0)
    });
    c.err("masked_fill shapes", "masked_fill", || {
        a.masked_fill(&bools(&[4]), 0.0)
    });
    c.err("neg bool", "neg", || bl.neg());
    c.err("exp i64", "exp", || il.exp());
    c.err("relu bool", "relu", || bl.relu());
    c.err("sigmoid i64", "sigmoid", || il.sigmoid());
    c.err("clamp nan", "clamp", || a.clamp(Some(f32::NAN), None));
    c.err("softmax axis", "softmax", || a.softmax(2));
    c.err("softmax neg axis", "softmax", || a.softmax(-3));
    c.err("log_softmax axis", "log_softmax", || a.log_softmax(5));
    c.err("softmax i64", "softmax", || il.softmax(0));
    c.err("dropout p nan", "dropout", || {
        a.dropout(f32::NAN, true, &mut Rng::new(0))
    });
    c.err("dropout p>1", "dropout", || {
        a.dropout(1.5, true, &mut Rng::new(0))
    });
    c.err("dropout p<0", "dropout", || {
        a.dropout(-0.1, false, &mut Rng::new(0))
    });
    c.err("dropout i64", "dropout", || {
        il.dropout(0.5, true, &mut Rng::new(0))
    });
    c.err("spatial_dropout rank1", "spatial_dropout", || {
        f(&[4]).spatial_dropout(0.5, true, &mut Rng::new(0))
    });
    c.err("spatial_dropout p nan", "spatial_dropout", || {
        f(&[1, 2, 3]).spatial_dropout(f32::NAN, true, &mut Rng::new(0))
    });
    c.err("dropout_global p inf", "dropout", || {
        a.dropout_global(f32::INFINITY, true)
    });
    c.finish();
}

#[test]
fn invalid_reduce_and_manip() {
    let mut c = Cases(Vec::new(), 0);
    let a = f(&[2, 3]);
    let bl = bools(&[2, 3]);
    c.err("sum axis", "sum", || a.sum(&[2], false));
    c.err("sum neg axis", "sum", || a.sum(&[-3], false));
    c.err("sum dup axis", "sum", || a.sum(&[0, -2], false));
    c.err("mean axis", "mean", || a.mean(&[7], true));
    c.err("max axis", "max", || a.max(&[2], false));
    c.err("max empty axis", "max", || f(&[0, 3]).max(&[0], false));
    c.err("min_all empty", "min", || f(&[0]).min_all());
    c.err("max_all empty", "max", || f(&[2, 0]).max_all());
    c.err("argmax axis", "argmax", || a.argmax(2, false));
    c.err("argmin neg axis", "argmin", || a.argmin(-3, false));
    c.err("argmax empty", "argmax", || f(&[0, 2]).argmax(0, false));
    c.err("argmax_all empty", "argmax", || f(&[0]).argmax_all());
    c.err("prod axis", "prod", || a.prod(&[3], false));
    c.err("var axis", "var", || a.var(&[3], 1, false));
    c.err("std axis", "std", || a.std(&[-9], 0, false));
    c.err("logsumexp axis", "logsumexp", || a.logsumexp(&[2], false));
    c.err("norm axis", "norm", || a.norm(NormOrd::L2, &[2], false));
    c.err("sum bool", "sum", || bl.sum(&[0], false));
    c.err("sum_to_shape bad", "sum_to_shape", || a.sum_to_shape(&[4]));
    c.err("sum_to_shape rank", "sum_to_shape", || {
        a.sum_to_shape(&[1, 2, 3])
    });

    let b = f(&[2, 4]);
    c.err("cat empty list", "cat", || Tensor::cat(&[], 0));
    c.err("cat shapes", "cat", || Tensor::cat(&[&a, &b], 0));
    c.err("cat ranks", "cat", || Tensor::cat(&[&a, &f(&[3])], 0));
    c.err("cat axis", "cat", || Tensor::cat(&[&a, &a], 2));
    c.err("cat neg axis", "cat", || Tensor::cat(&[&a, &a], -3));
    c.err("cat dtypes", "cat", || Tensor::cat(&[&a, &bl], 0));
    c.err("stack empty", "stack", || Tensor::stack(&[], 0));
    c.err("stack shapes", "stack", || Tensor::stack(&[&a, &b], 0));
    c.err("stack axis", "stack", || Tensor::stack(&[&a, &a], 3));
    c.err("stack neg axis", "stack", || Tensor::stack(&[&a, &a], -4));
    c.err("split sum", "split", || a.split(&[1, 1], 1));
    c.err("split axis", "split", || a.split(&[1, 1], 2));
    c.err("chunk 0", "chunk", || a.chunk(0, 0));
    c.err("chunk axis", "chunk", || a.chunk(2, -3));
    let idx = i64s(&[0, 5], &[1, 2]);
    c.err("gather index oob", "gather", || a.gather(1, &idx));
    c.err("gather negative", "gather", || {
        a.gather(1, &i64s(&[-1, 0], &[1, 2]))
    });
    c.err("gather f32 index", "gather", || a.gather(1, &f(&[1, 2])));
    c.err("gather rank", "gather", || a.gather(0, &i64s(&[0], &[1])));
    c.err("gather axis", "gather", || {
        a.gather(2, &i64s(&[0, 0], &[1, 2]))
    });
    c.err("gather index too big dim", "gather", || {
        a.gather(1, &i64s(&[0; 8], &[4, 2]))
    });
    c.err("scatter oob", "scatter", || a.scatter(1, &idx, &f(&[1, 2])));
    c.err("scatter src small", "scatter", || {
        a.scatter(1, &i64s(&[0; 6], &[2, 3]), &f(&[1, 1]))
    });
    c.err("scatter dtype", "scatter", || {
        a.scatter(1, &i64s(&[0, 0], &[1, 2]), &bools(&[1, 2]))
    });
    c.err("scatter_add negative", "scatter_add", || {
        a.scatter_add(0, &i64s(&[-3, 0], &[1, 2]), &f(&[1, 2]))
    });
    c.err("index_select oob", "index_select", || {
        a.index_select(0, &i64s(&[2], &[1]))
    });
    c.err("index_select neg", "index_select", || {
        a.index_select(0, &i64s(&[-1], &[1]))
    });
    c.err("index_select 2d idx", "index_select", || {
        a.index_select(0, &i64s(&[0, 1], &[1, 2]))
    });
    c.err("index_select f32", "index_select", || {
        a.index_select(0, &f(&[1]))
    });
    c.err("index_select axis", "index_select", || {
        a.index_select(2, &i64s(&[0], &[1]))
    });
    c.err("pad too many", "pad", || {
        a.pad(&[(1, 1), (1, 1), (1, 1)], PadMode::Constant(0.0))
    });
    c.err("pad reflect big", "pad", || {
        a.pad(&[(3, 0)], PadMode::Reflect)
    });
    c.err("pad reflect eq size", "pad", || {
        a.pad(&[(0, 3)], PadMode::Reflect)
    });
    c.err("pad replicate empty", "pad", || {
        f(&[2, 0]).pad(&[(1, 1)], PadMode::Replicate)
    });
    c.err("pad reflect empty", "pad", || {
        f(&[2, 0]).pad(&[(1, 1)], PadMode::Reflect)
    });
    c.err("pad huge", "pad", || {
        a.pad(&[(usize::MAX, 1)], PadMode::Constant(0.0))
    });
    c.err("flip axis", "flip", || a.flip(&[2]));
    c.err("flip dup", "flip", || a.flip(&[1, -1]));
    c.err("repeat fewer", "repeat", || a.repeat(&[2]));
    c.err("repeat overflow", "repeat", || a.repeat(&[usize::MAX, 2]));
    c.err("tile overflow", "repeat", || a.tile(&[usize::MAX / 2, 3]));
    c.err("one_hot f32", "one_hot", || a.one_hot(3));
    c.err("one_hot oob", "one_hot", || i64s(&[0, 3], &[2]).one_hot(3));
    c.err("one_hot negative", "one_hot", || {
        i64s(&[-1], &[1]).one_hot(3)
    });
    c.err("one_hot 0 classes", "one_hot", || {
        i64s(&[0], &[1]).one_hot(0)
    });
    c.finish();
}

#[test]
fn invalid_matmul_conv() {
    let mut c = Cases(Vec::new(), 0);
    let a = f(&[2, 3]);
    c.err("matmul inner", "matmul", || a.matmul(&f(&[4, 2])));
    c.err("matmul scalar", "matmul", || Tensor::scalar(1.0).matmul(&a));
    c.err("matmul batch", "matmul", || {
        f(&[2, 2, 3]).matmul(&f(&[3, 3, 4]))
    });
    c.err("matmul i64", "matmul", || {
        i64s(&[1; 6], &[2, 3]).matmul(&f(&[3, 2]))
    });
    c.err("matmul nc inner", "matmul", || nc(2, 3).matmul(&nc(2, 3)));
    c.err("linear in features", "linear", || {
        a.linear(&f(&[4, 2]), None)
    });
    c.err("linear weight rank", "linear", || a.linear(&f(&[3]), None));
    c.err("linear bias", "linear", || {
        a.linear(&f(&[4, 3]), Some(&f(&[3])))
    });
    c.err("linear_relu bias", "linear_relu", || {
        a.linear_relu(&f(&[4, 3]), Some(&f(&[2, 4])))
    });

    let x = f(&[1, 4, 5, 5]);
    let w = f(&[2, 4, 3, 3]);
    let o = ConvOpts::new();
    c.err("conv2d rank", "conv2d", || {
        f(&[4, 5, 5]).conv2d(&w, None, &o)
    });
    c.err("conv2d weight rank", "conv2d", || {
        x.conv2d(&f(&[2, 4, 3]), None, &o)
    });
    c.err("conv2d channels", "conv2d", || {
        x.conv2d(&f(&[2, 3, 3, 3]), None, &o)
    });
    c.err("conv2d groups 0", "conv2d", || {
        x.conv2d(&w, None, &o.clone().groups(0))
    });
    c.err("conv2d groups !| cin", "conv2d", || {
        x.conv2d(&f(&[3, 1, 3, 3]), None, &ConvOpts::new().groups(3))
    });
    c.err("conv2d groups !| cout", "conv2d", || {
        x.conv2d(&f(&[3, 2, 3, 3]), None, &ConvOpts::new().groups(2))
    });
    c.err("conv2d stride 0", "conv2d", || {
        x.conv2d(&w, None, &ConvOpts::new().stride(&[0]))
    });
    c.err("conv2d dilation 0", "conv2d", || {
        x.conv2d(&w, None, &ConvOpts::new().dilation(&[0]))
    });
    c.err("conv2d stride len", "conv2d", || {
        x.conv2d(&w, None, &ConvOpts::new().stride(&[1, 1, 1]))
    });
    c.err("conv2d pad len", "conv2d", || {
        x.conv2d(
            &w,
            None,
            &ConvOpts::new().padding(Padding::Explicit(vec![(1, 1); 3])),
        )
    });
    c.err("conv2d kernel too big", "conv2d", || {
        x.conv2d(&f(&[2, 4, 7, 7]), None, &o)
    });
    c.err("conv2d dilated kernel too big", "conv2d", || {
        x.conv2d(&w, None, &ConvOpts::new().dilation(&[3]))
    });
    c.err("conv2d zero kernel", "conv2d", || {
        x.conv2d(&f(&[2, 4, 0, 3]), None, &o)
    });
    c.err("conv2d zero cin", "conv2d", || {
        f(&[1, 0, 5, 5]).conv2d(&f(&[2, 0, 3, 3]), None, &o)
    });
    c.err("conv2d bias shape", "conv2d", || {
        x.conv2d(&w, Some(&f(&[3])), &o)
    });
    c.err("conv2d i64 input", "conv2d", || {
        i64s(&[0; 100], &[1, 4, 5, 5]).conv2d(&w, None, &o)
    });
    c.err("conv2d bool weight", "conv2d", || {
        x.conv2d(&bools(&[2, 4, 3, 3]), None, &o)
    });
    c.err("conv2d huge pad", "conv2d", || {
        x.conv2d(&w, None, &ConvOpts::new().pad(usize::MAX / 2))
    });
    c.err("conv2d huge dilation", "conv2d", || {
        x.conv2d(&w, None, &ConvOpts::new().dilation(&[usize::MAX / 2]))
    });
    c.err("conv2d_relu channels", "conv2d_relu", || {
        x.conv2d_relu(&f(&[2, 3, 3, 3]), None, &o)
    });
    c.err("conv1d rank", "conv1d", || x.conv1d(&w, None, &o));
    c.err("conv3d rank", "conv3d", || x.conv3d(&w, None, &o));
    let t = ConvTransposeOpts::new();
    let wt = f(&[4, 2, 3, 3]);
    c.err("convT rank", "conv_transpose2d", || {
        f(&[4, 5, 5]).conv_transpose2d(&wt, None, &t)
    });
    c.err("convT channels", "conv_transpose2d", || {
        x.conv_transpose2d(&f(&[3, 2, 3, 3]), None, &t)
    });
    c.err("convT groups 0", "conv_transpose2d", || {
        x.conv_transpose2d(&wt, None, &t.clone().groups(0))
    });
    c.err("convT groups", "conv_transpose2d", || {
        x.conv_transpose2d(&wt, None, &t.clone().groups(3))
    });
    c.err("convT stride 0", "conv_transpose2d", || {
        x.conv_transpose2d(&wt, None, &t.clone().stride(&[0]))
    });
    c.err("convT dilation 0", "conv_transpose2d", || {
        x.conv_transpose2d(&wt, None, &t.clone().dilation(&[0]))
    });
    c.err("convT out pad >= stride", "conv_transpose2d", || {
        x.conv_transpose2d(&wt, None, &t.clone().stride(&[2]).output_padding(&[2]))
    });
    c.err("convT pad too large", "conv_transpose2d", || {
        x.conv_transpose2d(&wt, None, &t.clone().pad(20))
    });
    c.err("convT pad huge", "conv_transpose2d", || {
        x.conv_transpose2d(&wt, None, &t.clone().pad(usize::MAX / 2))
    });
    c.err("convT stride huge", "conv_transpose2d", || {
        x.conv_transpose2d(&wt, None, &t.clone().stride(&[usize::MAX / 2]))
    });
    c.err("convT opt len", "conv_transpose2d", || {
        x.conv_transpose2d(&wt, None, &t.clone().padding(&[1, 1, 1]))
    });
    c.err("convT bias", "conv_transpose2d", || {
        x.conv_transpose2d(&wt, Some(&f(&[4])), &t)
    });
    c.err("convT1d rank", "conv_transpose1d", || {
        x.conv_transpose1d(&wt, None, &t)
    });
    c.err("convT3d rank", "conv_transpose3d", || {
        x.conv_transpose3d(&wt, None, &t)
    });
    c.finish();
}

#[test]
fn invalid_pool_resize_norm_loss() {
    let mut c = Cases(Vec::new(), 0);
    let x = f(&[1, 2, 5, 5]);
    let p = PoolOpts::new(&[2]);
    c.err("max_pool2d rank", "max_pool2d", || {
        f(&[5, 5]).max_pool2d(&p)
    });
    c.err("max_pool2d kernel 0", "max_pool2d", || {
        x.max_pool2d(&PoolOpts::new(&[0]))
    });
    c.err("max_pool2d kernel empty", "max_pool2d", || {
        x.max_pool2d(&PoolOpts::new(&[]))
    });
    c.err("max_pool2d stride 0", "max_pool2d", || {
        x.max_pool2d(&p.clone().stride(&[0]))
    });
    c.err("max_pool2d dilation 0", "max_pool2d", || {
        x.max_pool2d(&p.clone().dilation(&[0]))
    });
    c.err("max_pool2d pad > k/2", "max_pool2d", || {
        x.max_pool2d(&p.clone().padding(&[2]))
    });
    c.err("max_pool2d kernel > input", "max_pool2d", || {
        x.max_pool2d(&PoolOpts::new(&[6]))
    });
    c.err("max_pool2d opt len", "max_pool2d", || {
        x.max_pool2d(&PoolOpts::new(&[2, 2, 2]))
    });
    c.err("max_pool2d huge kernel", "max_pool2d", || {
        x.max_pool2d(&PoolOpts::new(&[usize::MAX]))
    });
    c.err("max_pool2d huge dilation", "max_pool2d", || {
        x.max_pool2d(&p.clone().dilation(&[usize::MAX]))
    });
    c.err("max_pool2d i64", "max_pool2d", || {
        i64s(&[0; 50], &[1, 2, 5, 5]).max_pool2d(&p)
    });
    c.err("max_pool2d zero spatial", "max_pool2d", || {
        f(&[1, 2, 0, 5]).max_pool2d(&p)
    });
    c.err("max_pool1d rank", "max_pool1d", || x.max_pool1d(&p));
    c.err("max_pool2d_with_indices stride 0", "max_pool2d", || {
        x.max_pool2d_with_indices(&p.clone().stride(&[0]))
    });
    c.err("avg_pool2d dilation", "avg_pool2d", || {
        x.avg_pool2d(&p.clone().dilation(&[2]))
    });
    c.err("avg_pool2d stride 0", "avg_pool2d", || {
        x.avg_pool2d(&p.clone().stride(&[0]))
    });
    c.err("avg_pool2d pad", "avg_pool2d", || {
        x.avg_pool2d(&p.clone().padding(&[3]))
    });
    c.err("avg_pool1d rank", "avg_pool1d", || x.avg_pool1d(&p));
    c.err("avg_pool3d kernel > input", "avg_pool3d", || {
        f(&[1, 1, 2, 2, 2]).avg_pool3d(&PoolOpts::new(&[3]))
    });
    c.err("adaptive_avg 0 out", "adaptive_avg_pool2d", || {
        x.adaptive_avg_pool2d(&[0, 2])
    });
    c.err("adaptive_avg len", "adaptive_avg_pool2d", || {
        x.adaptive_avg_pool2d(&[1, 2, 3])
    });
    c.err("adaptive_avg empty in", "adaptive_avg_pool2d", || {
        f(&[1, 2, 0, 3]).adaptive_avg_pool2d(&[2, 2])
    });
    c.err("adaptive_avg1d rank", "adaptive_avg_pool1d", || {
        x.adaptive_avg_pool1d(&[2])
    });
    c.err("adaptive_avg3d rank", "adaptive_avg_pool3d", || {
        x.adaptive_avg_pool3d(&[2])
    });
    c.err("adaptive_max 0 out", "adaptive_max_pool2d", || {
        x.adaptive_max_pool2d(&[0])
    });
    c.err("adaptive_max empty in", "adaptive_max_pool2d", || {
        f(&[1, 2, 3, 0]).adaptive_max_pool2d(&[2])
    });
    c.err("adaptive_max1d rank", "adaptive_max_pool1d", || {
        x.adaptive_max_pool1d(&[2])
    });
    c.err("adaptive_max3d rank", "adaptive_max_pool3d", || {
        x.adaptive_max_pool3d(&[2])
    });
    c.err("adaptive_max_wi len", "adaptive_max_pool2d", || {
        x.adaptive_max_pool2d_with_indices(&[1, 1, 1])
    });
    c.err("global_avg rank", "global_avg_pool2d", || {
        f(&[2, 5]).global_avg_pool2d()
    });
    c.err("global_max empty", "global_max_pool2d", || {
        f(&[1, 2, 0, 0]).global_max_pool2d()
    });
    c.err("global_max i64", "global_max_pool2d", || {
        i64s(&[0; 4], &[1, 1, 2, 2]).global_max_pool2d()
    });
    let y = f(&[1, 2, 2, 2]);
    let idx = i64s(&[0, 1, 2, 3, 0, 1, 2, 3], &[1, 2, 2, 2]);
    c.err("max_unpool f32 idx", "max_unpool2d", || {
        y.max_unpool2d(&y, &[4, 4])
    });
    c.err("max_unpool idx shape", "max_unpool2d", || {
        y.max_unpool2d(&i64s(&[0; 4], &[1, 1, 2, 2]), &[4, 4])
    });
    c.err("max_unpool idx oob", "max_unpool2d", || {
        y.max_unpool2d(&idx, &[1, 2])
    });
    c.err("max_unpool idx neg", "max_unpool2d", || {
        y.max_unpool2d(&i64s(&[-1, 1, 2, 3, 0, 1, 2, 3], &[1, 2, 2, 2]), &[4, 4])
    });
    c.err("max_unpool size len", "max_unpool2d", || {
        y.max_unpool2d(&idx, &[4])
    });
    c.err("max_unpool1d rank", "max_unpool1d", || {
        y.max_unpool1d(&idx, &[4])
    });
    c.err("max_unpool huge size", "max_unpool2d", || {
        y.max_unpool2d(&idx, &[usize::MAX, 2])
    });

    c.err("upsample_nearest2d rank", "upsample_nearest2d", || {
        f(&[2, 5]).upsample_nearest2d(&[4, 4])
    });
    c.err("upsample_nearest2d size len", "upsample_nearest2d", || {
        x.upsample_nearest2d(&[4, 4, 4])
    });
    c.err("upsample_nearest2d size 0", "upsample_nearest2d", || {
        x.upsample_nearest2d(&[0, 4])
    });
    c.err("upsample_nearest2d empty in", "upsample_nearest2d", || {
        f(&[1, 1, 0, 2]).upsample_nearest2d(&[4, 4])
    });
    c.err("upsample_nearest2d_scale 0", "upsample_nearest2d", || {
        x.upsample_nearest2d_scale(0)
    });
    c.err(
        "upsample_nearest2d_scale huge",
        "upsample_nearest2d",
        || x.upsample_nearest2d_scale(usize::MAX),
    );
    c.err("upsample_nearest1d rank", "upsample_nearest1d", || {
        x.upsample_nearest1d(&[4])
    });
    c.err("upsample_linear1d rank", "upsample_linear1d", || {
        x.upsample_linear1d(&[4], false)
    });
    c.err("upsample_bilinear2d size 0", "upsample_bilinear2d", || {
        x.upsample_bilinear2d(&[3, 0], true)
    });
    c.err("upsample_bilinear2d_scale 0", "upsample_bilinear2d", || {
        x.upsample_bilinear2d_scale(0, false)
    });
    c.err("upsample_bicubic2d i64", "upsample_bicubic2d", || {
        i64s(&[0; 4], &[1, 1, 2, 2]).upsample_bicubic2d(&[4, 4], false)
    });
    c.err("resize rank", "upsample", || {
        f(&[5]).resize(&[4], ResizeMode::Nearest)
    });
    c.err("resize size len", "upsample", || {
        x.resize(
            &[4],
            ResizeMode::Bilinear {
                align_corners: false,
            },
        )
    });

    let rm = Tensor::zeros(&[2]);
    let rv = Tensor::ones(&[2]);
    c.err("batch_norm rank1", "batch_norm", || {
        f(&[2]).batch_norm(&rm, &rv, None, None, true, 0.1, 1e-5)
    });
    c.err("batch_norm channels", "batch_norm", || {
        f(&[2, 3]).batch_norm(&rm, &rv, None, None, true, 0.1, 1e-5)
    });
    c.err("batch_norm weight", "batch_norm", || {
        x.batch_norm(&rm, &rv, Some(&f(&[3])), None, true, 0.1, 1e-5)
    });
    c.err("batch_norm one value", "batch_norm", || {
        f(&[1, 2]).batch_norm(&rm, &rv, None, None, true, 0.1, 1e-5)
    });
    c.err("batch_norm eps<0", "batch_norm", || {
        x.batch_norm(&rm, &rv, None, None, true, 0.1, -1.0)
    });
    c.err("batch_norm eps nan", "batch_norm", || {
        x.batch_norm(&rm, &rv, None, None, false, 0.1, f32::NAN)
    });
    c.err("batch_norm momentum nan", "batch_norm", || {
        x.batch_norm(&rm, &rv, None, None, true, f32::NAN, 1e-5)
    });
    c.err("batch_norm i64 running", "batch_norm", || {
        x.batch_norm(&i64s(&[0, 0], &[2]), &rv, None, None, false, 0.1, 1e-5)
    });
    c.err("layer_norm shape", "layer_norm", || {
        x.layer_norm(&[4], None, None, 1e-5)
    });
    c.err("layer_norm too long", "layer_norm", || {
        f(&[5]).layer_norm(&[1, 5], None, None, 1e-5)
    });
    c.err("layer_norm empty shape", "layer_norm", || {
        x.layer_norm(&[], None, None, 1e-5)
    });
    c.err("layer_norm weight", "layer_norm", || {
        x.layer_norm(&[5], Some(&f(&[4])), None, 1e-5)
    });
    c.err("layer_norm eps nan", "layer_norm", || {
        x.layer_norm(&[5], None, None, f32::NAN)
    });
    c.err("layer_norm eps<0", "layer_norm", || {
        x.layer_norm(&[5], None, None, -1.0)
    });
    c.err("group_norm 0", "group_norm", || {
        x.group_norm(0, None, None, 1e-5)
    });
    c.err("group_norm !| C", "group_norm", || {
        x.group_norm(3, None, None, 1e-5)
    });
    c.err("group_norm rank", "group_norm", || {
        f(&[4]).group_norm(1, None, None, 1e-5)
    });
    c.err("group_norm bias", "group_norm", || {
        x.group_norm(1, None, Some(&f(&[3])), 1e-5)
    });
    c.err("group_norm eps<0", "group_norm", || {
        x.group_norm(1, None, None, -1.0)
    });
    c.err("instance_norm 1 value", "instance_norm", || {
        f(&[1, 2, 1]).instance_norm(None, None, 1e-5)
    });
    c.err("instance_norm weight", "instance_norm", || {
        x.instance_norm(Some(&f(&[5])), None, 1e-5)
    });
    c.err("instance_norm eps nan", "instance_norm", || {
        x.instance_norm(None, None, f32::NAN)
    });

    let logits = f(&[3, 4]);
    let tg = i64s(&[0, 1, 2], &[3]);
    let ce = CrossEntropyOpts::default();
    c.err("ce target oob", "cross_entropy", || {
        logits.cross_entropy(&i64s(&[0, 4, 1], &[3]), &ce)
    });
    c.err("ce target neg", "cross_entropy", || {
        logits.cross_entropy(&i64s(&[0, -1, 1], &[3]), &ce)
    });
    c.err("ce target shape", "cross_entropy", || {
        logits.cross_entropy(&i64s(&[0, 1], &[2]), &ce)
    });
    c.err("ce target f32", "cross_entropy", || {
        logits.cross_entropy(&f(&[3]), &ce)
    });
    c.err("ce rank0", "cross_entropy", || {
        Tensor::scalar(1.0).cross_entropy(&tg, &ce)
    });
    c.err("ce zero classes", "cross_entropy", || {
        f(&[3, 0]).cross_entropy(&tg, &ce)
    });
    c.err("ce smoothing nan", "cross_entropy", || {
        logits.cross_entropy(
            &tg,
            &CrossEntropyOpts {
                label_smoothing: f32::NAN,
                ..Default::default()
            },
        )
    });
    c.err("ce smoothing >1", "cross_entropy", || {
        logits.cross_entropy(
            &tg,
            &CrossEntropyOpts {
                label_smoothing: 1.5,
                ..Default::default()
            },
        )
    });
    c.err("ce class weights len", "cross_entropy", || {
        logits.cross_entropy(
            &tg,
            &CrossEntropyOpts {
                class_weights: Some(f(&[3])),
                ..Default::default()
            },
        )
    });
    c.err("ce sample weights shape", "cross_entropy", || {
        logits.cross_entropy(
            &tg,
            &CrossEntropyOpts {
                sample_weights: Some(f(&[4])),
                ..Default::default()
            },
        )
    });
    c.err("nll target oob", "nll_loss", || {
        logits.nll_loss(&i64s(&[0, 9, 1], &[3]), &ce)
    });
    c.err("nll i64 input", "nll_loss", || {
        i64s(&[0; 12], &[3, 4]).nll_loss(&tg, &ce)
    });
    c.err("ce_dense shape", "cross_entropy_dense", || {
        logits.cross_entropy_dense(&f(&[3, 3]), 0.0, Reduction::Mean)
    });
    c.err("ce_dense smoothing", "cross_entropy_dense", || {
        logits.cross_entropy_dense(&logits, -0.5, Reduction::Mean)
    });
    c.err("ce_dense rank0", "cross_entropy_dense", || {
        Tensor::scalar(1.0).cross_entropy_dense(&Tensor::scalar(1.0), 0.0, Reduction::Mean)
    });
    c.err(
        "bce_logits shape",
        "binary_cross_entropy_with_logits",
        || logits.binary_cross_entropy_with_logits(&f(&[4, 3]), None, None, Reduction::Mean),
    );
    c.err(
        "bce_logits pos_weight",
        "binary_cross_entropy_with_logits",
        || logits.binary_cross_entropy_with_logits(&logits, None, Some(&f(&[3])), Reduction::Mean),
    );
    c.err(
        "bce_logits weight",
        "binary_cross_entropy_with_logits",
        || {
            logits.binary_cross_entropy_with_logits(
                &logits,
                Some(&f(&[2, 4])),
                None,
                Reduction::Mean,
            )
        },
    );
    c.err(
        "bce_logits bool target",
        "binary_cross_entropy_with_logits",
        || logits.binary_cross_entropy_with_logits(&bools(&[3, 4]), None, None, Reduction::Mean),
    );
    c.err("bce p>1", "binary_cross_entropy", || {
        Tensor::full(&[3], 1.5f32).binary_cross_entropy(&Tensor::zeros(&[3]), None, Reduction::Mean)
    });
    c.err("bce p nan", "binary_cross_entropy", || {
        Tensor::full(&[3], f32::NAN).binary_cross_entropy(
            &Tensor::zeros(&[3]),
            None,
            Reduction::Mean,
        )
    });
    c.err("bce shape", "binary_cross_entropy", || {
        Tensor::zeros(&[3]).binary_cross_entropy(&Tensor::zeros(&[4]), None, Reduction::Mean)
    });
    c.err("bce i64", "binary_cross_entropy", || {
        i64s(&[0, 1], &[2]).binary_cross_entropy(&i64s(&[0, 1], &[2]), None, Reduction::Mean)
    });
    c.err("mse shape", "mse_loss", || {
        logits.mse_loss(&f(&[4, 3]), Reduction::Mean)
    });
    c.err("mse dtype", "mse_loss", || {
        logits.mse_loss(&i64s(&[0; 12], &[3, 4]), Reduction::Mean)
    });
    c.err("l1 shape", "l1_loss", || {
        logits.l1_loss(&f(&[12]), Reduction::Sum)
    });
    c.err("huber delta 0", "huber_loss", || {
        logits.huber_loss(&logits, 0.0, Reduction::Mean)
    });
    c.err("huber delta nan", "huber_loss", || {
        logits.huber_loss(&logits, f32::NAN, Reduction::Mean)
    });
    c.err("huber delta neg", "huber_loss", || {
        logits.huber_loss(&logits, -1.0, Reduction::Mean)
    });
    c.err("huber shape", "huber_loss", || {
        logits.huber_loss(&f(&[3]), 1.0, Reduction::Mean)
    });
    c.finish();
}

#[test]
fn non_f32_dtypes_are_errors() {
    let mut c = Cases(Vec::new(), 0);
    for dt in [
        DType::F16,
        DType::BF16,
        DType::I32,
        DType::U8,
        DType::I64,
        DType::Bool,
    ] {
        let x = f(&[1, 2, 4, 4]).to_dtype(dt).unwrap();
        let w = f(&[2, 2, 3, 3]);
        let name = |op: &str| format!("{op} {dt:?}");
        c.err(&name("conv2d"), "conv2d", || {
            x.conv2d(&w, None, &ConvOpts::new())
        });
        c.err(&name("conv2d weight"), "conv2d", || {
            f(&[1, 2, 4, 4]).conv2d(&w.to_dtype(dt)?, None, &ConvOpts::new())
        });
        c.err(&name("avg_pool2d"), "avg_pool2d", || {
            x.avg_pool2d(&PoolOpts::new(&[2]))
        });
        c.err(&name("adaptive_avg"), "adaptive_avg_pool2d", || {
            x.adaptive_avg_pool2d(&[1])
        });
        c.err(&name("bilinear"), "upsample_bilinear2d", || {
            x.upsample_bilinear2d(&[8, 8], false)
        });
        c.err(&name("softmax"), "softmax", || x.softmax(1));
        c.err(&name("layer_norm"), "layer_norm", || {
            x.layer_norm(&[4], None, None, 1e-5)
        });
        c.err(&name("group_norm"), "group_norm", || {
            x.group_norm(1, None, None, 1e-5)
        });
        c.err(&name("matmul"), "matmul", || x.matmul(&f(&[4, 4])));
        c.err(&name("mse"), "mse_loss", || {
            x.mse_loss(&f(&[1, 2, 4, 4]), Reduction::Mean)
        });
        c.err(&name("dropout"), "dropout", || {
            x.dropout(0.5, true, &mut Rng::new(0))
        });
        c.err(&name("sigmoid"), "sigmoid", || x.sigmoid());
    }
    c.finish();
}

#[test]
fn invalid_autograd() {
    let mut c = Cases(Vec::new(), 0);
    let x = f(&[2, 3]).requires_grad_(true);
    c.err("backward non-scalar", "backward", || {
        x.mul_scalar(2.0).unwrap().backward()
    });
    c.err("backward_with shape", "backward", || {
        x.mul_scalar(2.0).unwrap().backward_with(&f(&[3]))
    });
    c.err("set_grad shape", "grad", || x.set_grad(Some(f(&[3]))));
    c.finish();
}

// ---------------------------------------------------------------------------------------------
// Fuzz: random shapes (including 0- and 1-sized dims) and options; never a panic.

struct Fuzz {
    rng: Rng,
    failures: Vec<String>,
    calls: usize,
    oks: usize,
}

impl Fuzz {
    fn n(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.rng.below((hi - lo + 1) as u64) as usize
    }
    fn dim(&mut self) -> usize {
        // 0 and 1 are deliberately frequent.
        match self.n(0, 9) {
            0 => 0,
            1 | 2 => 1,
            _ => self.n(2, 7),
        }
    }
    fn shape(&mut self, rank: usize) -> Vec<usize> {
        (0..rank).map(|_| self.dim()).collect()
    }
    fn opt(&mut self, len_max: usize, lo: usize, hi: usize) -> Vec<usize> {
        let l = self.n(0, len_max);
        (0..l).map(|_| self.n(lo, hi)).collect()
    }
    fn run(&mut self, name: String, body: impl FnOnce() -> Result<Option<String>>) {
        self.calls += 1;
        match catch_unwind(AssertUnwindSafe(body)) {
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.failures.push(format!("{name}: PANIC: {msg}"));
            }
            Ok(Ok(Some(bad))) => self.failures.push(format!("{name}: {bad}")),
            Ok(Ok(None)) => self.oks += 1,
            Ok(Err(_)) => {}
        }
    }
}

fn rand_t(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// Checks the output shape and finiteness; `None` when fine.
fn verdict(y: &Tensor, want: Option<&[usize]>, finite: bool) -> Option<String> {
    if let Some(w) = want {
        if y.shape() != w {
            return Some(format!("shape {:?}, expected {:?}", y.shape(), w));
        }
    }
    if finite && y.dtype() == DType::F32 {
        let v = y.to_vec::<f32>().unwrap();
        if v.iter().any(|x| x.is_nan()) {
            return Some(format!("NaN in output of shape {:?}", y.shape()));
        }
    }
    None
}

/// PyTorch's conv/pool output length (`pooling_output_shape`); `None` when below 1.
fn out_len(i: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> Option<usize> {
    let (i, k, s, p, d) = (i as i64, k as i64, s as i64, p as i64, d as i64);
    let num = i + 2 * p - d * (k - 1) - 1 + if ceil { s - 1 } else { 0 };
    let mut o = num.div_euclid(s) + 1;
    if ceil && (o - 1) * s >= i + p {
        o -= 1;
    }
    (o >= 1).then_some(o as usize)
}

fn push(v: &mut Vec<Tensor>, r: Result<Tensor>) {
    if let Ok(y) = r {
        v.push(y);
    }
}

/// Backpropagates `sum(y)` to the leaves and checks each gradient's shape.
fn back(y: &Tensor, leaves: &[&Tensor], finite: bool) -> Result<Option<String>> {
    let grads = ferrovision_tensor::grad(&y.sum_all()?, leaves)?;
    for (g, l) in grads.iter().zip(leaves) {
        if let Some(g) = g {
            if g.shape() != l.shape() {
                return Ok(Some(format!(
                    "gradient shape {:?} for a leaf of shape {:?}",
                    g.shape(),
                    l.shape()
                )));
            }
            if finite && g.to_vec::<f32>()?.iter().any(|v| v.is_nan()) {
                return Ok(Some(format!(
                    "NaN gradient for a leaf of shape {:?}",
                    l.shape()
                )));
            }
        }
    }
    Ok(None)
}

fn pick(v: &[usize], i: usize, default: usize) -> usize {
    match v.len() {
        0 => default,
        1 => v[0],
        _ => v.get(i).copied().unwrap_or(default),
    }
}

#[test]
fn fuzz_no_panics() {
    let mut z = Fuzz {
        rng: Rng::new(0x5eed),
        failures: Vec::new(),
        calls: 0,
        oks: 0,
    };
    for iter in 0..2000 {
        let sp = z.n(1, 3);
        let (n, cin) = (z.n(0, 2), z.dim());
        let groups = z.n(0, 3);
        let cout = z.dim() * groups.max(1);
        let mut xs = vec![n, cin];
        xs.extend(z.shape(sp));
        let ks: Vec<usize> = (0..sp).map(|_| z.n(0, 4)).collect();
        let stride = z.opt(sp, 0, 3);
        let dil = z.opt(sp, 0, 2);
        let padv = z.opt(sp, 0, 2);
        let mut ws = vec![cout, cin / groups.max(1)];
        ws.extend(&ks);
        // The leaf `base` requires grad; `x` is either it or a non-contiguous view of it.
        let (base, x) = if z.n(0, 1) == 1 {
            let rev: Vec<usize> = xs.iter().rev().copied().collect();
            let perm: Vec<usize> = (0..xs.len()).rev().collect();
            let base = rand_t(&rev, &mut z.rng).requires_grad_(true);
            let x = base.permute(&perm).unwrap();
            (base, x)
        } else {
            let base = rand_t(&xs, &mut z.rng).requires_grad_(true);
            (base.clone(), base)
        };
        let w = rand_t(&ws, &mut z.rng).requires_grad_(true);
        let bias = rand_t(&[cout], &mut z.rng);
        let use_bias = z.n(0, 1) == 1;
        // conv
        let o = ConvOpts {
            stride: stride.clone(),
            padding: match z.n(0, 2) {
                0 => Padding::Valid,
                1 => Padding::Same,
                _ => Padding::Explicit(padv.iter().map(|&p| (p, p)).collect()),
            },
            dilation: dil.clone(),
            groups,
        };
        let want = {
            let mut s = vec![n, cout];
            let mut ok = groups > 0 && cin.is_multiple_of(groups) && cout.is_multiple_of(groups);
            for i in 0..sp {
                let (st, d) = (pick(&stride, i, 1), pick(&dil, i, 1));
                let p = match &o.padding {
                    Padding::Valid => 0,
                    Padding::Same => (d * ks[i].saturating_sub(1)) / 2,
                    Padding::Explicit(v) => pick(&v.iter().map(|p| p.0).collect::<Vec<_>>(), i, 0),
                };
                match (
                    st > 0 && d > 0 && ks[i] > 0,
                    out_len(xs[2 + i], ks[i], st.max(1), p, d, false),
                ) {
                    (true, Some(l)) if !matches!(o.padding, Padding::Same) => s.push(l),
                    // TensorFlow SAME: ceil(in / stride).
                    (true, Some(_)) => s.push(xs[2 + i].div_ceil(st)),
                    _ => ok = false,
                }
            }
            ok.then_some(s)
        };
        let name = format!("#{iter} conv{sp}d x{xs:?} w{ws:?} {o:?}");
        let (xc, wc, bc) = (x.clone(), w.clone(), bias.clone());
        z.run(name, || {
            let b = use_bias.then_some(&bc);
            let y = match sp {
                1 => xc.conv1d(&wc, b, &o),
                2 => xc.conv2d(&wc, b, &o),
                _ => xc.conv3d(&wc, b, &o),
            }?;
            // Same padding with even kernels is asymmetric; only check the shape where known.
            Ok(verdict(&y, want.as_deref(), true).or(back(&y, &[&base, &wc], true)?))
        });
        // transposed conv
        let mut wts = vec![cin, cout / groups.max(1)];
        wts.extend(&ks);
        let wt = rand_t(&wts, &mut z.rng).requires_grad_(true);
        let opad = z.opt(sp, 0, 2);
        let t = ConvTransposeOpts {
            stride: stride.clone(),
            padding: padv.clone(),
            output_padding: opad.clone(),
            dilation: dil.clone(),
            groups,
        };
        let name = format!("#{iter} conv_transpose{sp}d x{xs:?} w{wts:?} {t:?}");
        let (xc, bc, xs, stride, dil) = (
            x.clone(),
            bias.clone(),
            xs.clone(),
            stride.clone(),
            dil.clone(),
        );
        z.run(name, || {
            let b = use_bias.then_some(&bc);
            let y = match sp {
                1 => xc.conv_transpose1d(&wt, b, &t),
                2 => xc.conv_transpose2d(&wt, b, &t),
                _ => xc.conv_transpose3d(&wt, b, &t),
            }?;
            let mut s = vec![xs[0], cout];
            for i in 0..sp {
                let (st, p, op, d) = (
                    pick(&stride, i, 1),
                    pick(&padv, i, 0),
                    pick(&opad, i, 0),
                    pick(&dil, i, 1),
                );
                let full = (xs[2 + i] as i64 - 1) * st as i64
                    + d as i64 * (ks[i] as i64 - 1)
                    + op as i64
                    + 1
                    - 2 * p as i64;
                if full < 0 {
                    return Ok(Some(format!("Ok with negative output length {full}")));
                }
                s.push(full as usize);
            }
            Ok(verdict(&y, Some(&s), true).or(back(&y, &[&base, &wt], true)?))
        });
        // pooling
        let pk: Vec<usize> = z.opt(sp, 0, 3);
        let ppad = z.opt(sp, 0, 2);
        let ceil = z.n(0, 1) == 1;
        let popts = PoolOpts {
            kernel: pk.clone(),
            stride: stride.clone(),
            padding: ppad.clone(),
            dilation: dil.clone(),
            ceil_mode: ceil,
            count_include_pad: z.n(0, 1) == 1,
        };
        for kind in 0..2 {
            let name = format!(
                "#{iter} {}pool{sp}d x{xs:?} {popts:?}",
                ["max", "avg"][kind]
            );
            let (xc, po, xs) = (x.clone(), popts.clone(), xs.clone());
            z.run(name, || {
                let y = match (kind, sp) {
                    (0, 1) => xc.max_pool1d(&po),
                    (0, 2) => xc.max_pool2d(&po),
                    (0, _) => xc.max_pool3d(&po),
                    (_, 1) => xc.avg_pool1d(&po),
                    (_, 2) => xc.avg_pool2d(&po),
                    _ => xc.avg_pool3d(&po),
                }?;
                let mut s = vec![xs[0], xs[1]];
                for i in 0..sp {
                    let k = pick(&po.kernel, i, 0);
                    let st = pick(&po.stride, i, k);
                    let d = if kind == 0 {
                        pick(&po.dilation, i, 1)
                    } else {
                        1
                    };
                    match out_len(
                        xs[2 + i],
                        k,
                        st.max(1),
                        pick(&po.padding, i, 0),
                        d,
                        po.ceil_mode,
                    ) {
                        Some(l) => s.push(l),
                        None => return Ok(Some("Ok for an output size below 1".into())),
                    }
                }
                // Max pooling of finite input with padding may only produce -inf, never NaN.
                Ok(verdict(&y, Some(&s), true).or(back(&y, &[&base], true)?))
            });
        }
        // adaptive pools and resize
        let osz = z.opt(sp, 0, 4);
        let name = format!("#{iter} adaptive/resize {sp}d x{xs:?} size {osz:?}");
        let (xc, xs) = (x.clone(), xs.clone());
        z.run(name, || {
            let a = match sp {
                1 => xc.adaptive_avg_pool1d(&osz),
                2 => xc.adaptive_avg_pool2d(&osz),
                _ => xc.adaptive_avg_pool3d(&osz),
            };
            let m = match sp {
                1 => xc.adaptive_max_pool1d(&osz),
                2 => xc.adaptive_max_pool2d(&osz),
                _ => xc.adaptive_max_pool3d(&osz),
            };
            let r = match sp {
                1 => xc.upsample_linear1d(&osz, false),
                2 => xc.upsample_bicubic2d(&osz, true),
                _ => xc.adaptive_avg_pool3d(&osz),
            };
            let want: Option<Vec<usize>> = (!osz.is_empty()).then(|| {
                let mut s = vec![xs[0], xs[1]];
                s.extend((0..sp).map(|i| pick(&osz, i, 0)));
                s
            });
            for y in [a, m, r].into_iter().flatten() {
                if let Some(bad) = verdict(&y, want.as_deref(), true).or(back(&y, &[&base], true)?)
                {
                    return Ok(Some(bad));
                }
            }
            Ok(None)
        });
        // norms
        let eps = [1e-5, 0.0, 1.0][z.n(0, 2)];
        let g = z.n(0, 3);
        let name = format!("#{iter} norms x{xs:?} groups {g} eps {eps}");
        let xc = x.clone();
        z.run(name, || {
            let c = xs[1];
            let outs = [
                xc.batch_norm(
                    &Tensor::zeros(&[c]),
                    &Tensor::ones(&[c]),
                    None,
                    None,
                    true,
                    0.1,
                    eps,
                ),
                xc.group_norm(g, None, None, eps),
                xc.instance_norm(None, None, eps),
                xc.layer_norm(&xs[2..], None, None, eps),
            ];
            for y in outs.into_iter().flatten() {
                // eps = 0 with a constant group legitimately gives NaN (0/0).
                if let Some(bad) =
                    verdict(&y, Some(&xs), eps > 0.0).or(back(&y, &[&base], eps > 0.0)?)
                {
                    return Ok(Some(bad));
                }
            }
            Ok(None)
        });
        // losses
        let (b, k) = (z.dim(), z.dim());
        let logits = rand_t(&[b, k], &mut z.rng).requires_grad_(true);
        let tv: Vec<i64> = (0..b).map(|_| z.n(0, k + 1) as i64 - 1).collect();
        let smooth = [0.0, 0.1, 1.0][z.n(0, 2)];
        let ign = [None, Some(-1), Some(0)][z.n(0, 2)];
        let name = format!(
            "#{iter} losses logits [{b}, {k}] targets {tv:?} smoothing {smooth} ignore {ign:?}"
        );
        z.run(name, || {
            let tg = Tensor::from_vec(tv, &[b])?;
            let opts = CrossEntropyOpts {
                ignore_index: ign,
                label_smoothing: smooth,
                reduction: Reduction::Sum,
                ..Default::default()
            };
            let ce = logits.cross_entropy(&tg, &opts);
            let nll = logits.nll_loss(&tg, &opts);
            let dense = logits.cross_entropy_dense(&logits.softmax(-1)?, smooth, Reduction::Sum);
            let p = logits.sigmoid()?;
            let bce = p.binary_cross_entropy(&p, None, Reduction::Mean);
            let bcel = logits.binary_cross_entropy_with_logits(&p, None, None, Reduction::None);
            let mse = logits.mse_loss(&p, Reduction::Sum);
            let hub = logits.huber_loss(&p, 0.5, Reduction::None);
            for y in [ce, nll, dense, bcel, mse, hub].into_iter().flatten() {
                if let Some(bad) = verdict(&y, None, true).or(back(&y, &[&logits], true)?) {
                    return Ok(Some(bad));
                }
            }
            // The mean over zero elements is NaN in PyTorch too; only check it for shape.
            let _ = bce;
            Ok(None)
        });
        // manipulation, reductions and matmul
        let rank = z.n(0, 3);
        let s = z.shape(rank);
        let (tb, t) = if rank >= 2 && z.n(0, 1) == 1 {
            let mut s2 = s.clone();
            s2.swap(0, rank - 1);
            let tb = rand_t(&s2, &mut z.rng).requires_grad_(true);
            let t = tb.transpose(0, -1).unwrap();
            (tb, t)
        } else {
            let tb = rand_t(&s, &mut z.rng).requires_grad_(true);
            (tb.clone(), tb)
        };
        let ax = z.n(0, 8) as isize - 4;
        let ax2 = z.n(0, 8) as isize - 4;
        let reps: Vec<usize> = (0..z.n(0, rank + 1)).map(|_| z.n(0, 2)).collect();
        let pads: Vec<(usize, usize)> = (0..z.n(0, rank)).map(|_| (z.n(0, 2), z.n(0, 2))).collect();
        let mode = [PadMode::Constant(1.0), PadMode::Reflect, PadMode::Replicate][z.n(0, 2)];
        let nchunk = z.n(0, 3);
        let idx_len = z.n(0, 3);
        let idx: Vec<i64> = (0..idx_len).map(|_| z.n(0, 6) as i64 - 1).collect();
        let (m, kk, nn) = (z.dim(), z.dim(), z.dim());
        let kk2 = if z.n(0, 4) == 0 { z.dim() } else { kk };
        let a = rand_t(&[m, kk], &mut z.rng);
        let bm = rand_t(&[kk2, nn], &mut z.rng);
        let name = format!(
            "#{iter} manip/reduce t{s:?} axis {ax}/{ax2} reps {reps:?} pads {pads:?} {mode:?} chunk {nchunk} idx {idx:?} matmul [{m},{kk}]x[{kk2},{nn}]"
        );
        z.run(name, || {
            let mut oks: Vec<Tensor> = Vec::new();
            push(&mut oks, t.sum(&[ax], true));
            push(&mut oks, t.mean(&[ax, ax2], false));
            push(&mut oks, t.max(&[ax], false));
            push(&mut oks, t.min(&[ax2], true));
            push(&mut oks, t.argmax(ax, false));
            push(&mut oks, t.argmin(ax, true));
            push(&mut oks, t.prod(&[ax], false));
            push(&mut oks, t.var(&[ax], 1, false));
            push(&mut oks, t.std(&[ax], 0, true));
            push(&mut oks, t.logsumexp(&[ax], false));
            push(&mut oks, t.norm(NormOrd::L1, &[ax], false));
            push(&mut oks, t.softmax(ax));
            push(&mut oks, t.log_softmax(ax));
            push(&mut oks, t.flip(&[ax, ax2]));
            push(&mut oks, t.repeat(&reps));
            push(&mut oks, t.tile(&reps));
            push(&mut oks, t.pad(&pads, mode));
            push(&mut oks, t.transpose(ax, ax2));
            push(&mut oks, t.flatten(ax.min(ax2), ax.max(ax2)));
            push(&mut oks, t.squeeze(ax));
            push(&mut oks, t.unsqueeze(ax));
            push(&mut oks, t.narrow(ax, 1, 1));
            push(&mut oks, t.slice(ax, 1, 5, 2));
            push(&mut oks, Tensor::cat(&[&t, &t], ax));
            push(&mut oks, Tensor::stack(&[&t, &t], ax2));
            if let Ok(v) = t.chunk(nchunk, ax) {
                oks.extend(v);
            }
            if let Ok(v) = t.split(&[1, 1], ax) {
                oks.extend(v);
            }
            let it = Tensor::from_vec(idx.clone(), &[idx.len()])?;
            push(&mut oks, t.index_select(ax, &it));
            if rank == 1 {
                push(&mut oks, t.gather(0, &it));
                push(
                    &mut oks,
                    t.scatter_add(0, &it, &t.narrow(0, 0, idx.len().min(t.shape()[0]))?),
                );
            }
            push(&mut oks, it.one_hot(5));
            push(&mut oks, a.matmul(&bm));
            push(&mut oks, a.linear(&bm.t()?, None));
            push(&mut oks, a.t()?.contiguous()?.t()?.matmul(&bm));
            for y in &oks {
                if let Some(bad) = verdict(y, None, false) {
                    return Ok(Some(bad));
                }
                if y.numel() != y.shape().iter().product::<usize>() {
                    return Ok(Some("numel mismatch".into()));
                }
                // Reading the data back must work (exercises strides/offset bookkeeping).
                let _ = y.contiguous()?.to_f64_vec()?;
            }
            // One backward pass through everything differentiable (the graph is freed after
            // a pass). logsumexp of empty rows and var with too few values give inf/NaN, so only
            // the gradient's shape is checked.
            let mut total = Tensor::scalar(0.0);
            for y in oks
                .iter()
                .filter(|y| y.dtype() == DType::F32 && y.requires_grad())
            {
                total = total.add(&y.sum_all()?)?;
            }
            if total.requires_grad() {
                match back(&total, &[&tb], false) {
                    Ok(None) => {}
                    Ok(Some(bad)) => return Ok(Some(bad)),
                    Err(e) => return Ok(Some(format!("backward failed: {e}"))),
                }
            }
            if kk == kk2 {
                let y = a.matmul(&bm)?;
                if let Some(bad) = verdict(&y, Some(&[m, nn]), true) {
                    return Ok(Some(format!("matmul: {bad}")));
                }
            }
            Ok(None)
        });
    }
    assert!(
        z.failures.is_empty(),
        "{} of {} fuzz calls failed ({} ok):\n{}",
        z.failures.len(),
        z.calls,
        z.oks,
        z.failures.join("\n")
    );
    eprintln!("fuzz: {} calls, {} fully ok", z.calls, z.oks);
    assert!(z.oks > 100, "fuzz produced too few valid calls: {}", z.oks);
}
