//! Manipulation ops: cat/stack/split/chunk, gather/scatter/index_select, pad, flip, repeat/tile,
//! one_hot. Values on every dtype, typed errors, gradient checks (with non-contiguous inputs),
//! and the parallel paths of big tensors against naive loops.

mod common;
use common::uniform;
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::ops::manip::PadMode;
use ferrovision_tensor::{DType, Error, Result, Tensor};

fn t32(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape).unwrap()
}

fn ti(v: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape).unwrap()
}

fn iota(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|i| i as f32).collect::<Vec<_>>(), shape).unwrap()
}

fn iota_i64(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n as i64).collect::<Vec<_>>(), shape).unwrap()
}

fn f(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

fn i(t: &Tensor) -> Vec<i64> {
    t.to_vec::<i64>().unwrap()
}

fn check(func: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    GradCheck::default().run(func, inputs).unwrap();
}

fn unravel(mut k: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = k % shape[d];
        k /= shape[d];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &n)| acc * n + i)
}

fn assert_index_error(e: Error, op: &str, index: i64) {
    match e {
        Error::IndexOutOfRange {
            op: o, index: got, ..
        } => {
            assert_eq!((o, got), (op, index), "{e:?}")
        }
        other => panic!("expected IndexOutOfRange from {op}, got {other:?}"),
    }
}

// ----- cat / stack -----

#[test]
fn cat_values_on_every_axis() {
    let a = iota(&[2, 2, 3]);
    let b = iota(&[2, 1, 3]).add_scalar(100.0).unwrap();
    let c = Tensor::cat(&[&a, &b], 1).unwrap();
    assert_eq!(c.shape(), &[2, 3, 3]);
    assert_eq!(
        f(&c),
        vec![0., 1., 2., 3., 4., 5., 100., 101., 102., 6., 7., 8., 9., 10., 11., 103., 104., 105.]
    );
    let d = Tensor::cat(&[&a, &a], 0).unwrap();
    assert_eq!(d.shape(), &[4, 2, 3]);
    assert_eq!(f(&d)[12..], f(&a)[..]);
    let e = Tensor::cat(&[&a, &a.mul_scalar(-1.0).unwrap()], -1).unwrap();
    assert_eq!(e.shape(), &[2, 2, 6]);
    assert_eq!(f(&e)[..6], [0., 1., 2., -0., -1., -2.]);
    // A single tensor is a copy.
    let s = Tensor::cat(&[&a], 0).unwrap();
    assert_eq!(f(&s), f(&a));
    assert!(!s.same_storage(&a));
}

#[test]
fn cat_integer_bool_and_half_dtypes() {
    let a = ti(&[1, 2], &[1, 2]);
    let b = ti(&[3, 4, 5, 6], &[2, 2]);
    let c = Tensor::cat(&[&a, &b], 0).unwrap();
    assert_eq!(c.dtype(), DType::I64);
    assert_eq!(i(&c), vec![1, 2, 3, 4, 5, 6]);
    let m1 = Tensor::from_vec(vec![true, false], &[2, 1]).unwrap();
    let m2 = Tensor::from_vec(vec![false, true], &[2, 1]).unwrap();
    let m = Tensor::cat(&[&m1, &m2], 1).unwrap();
    assert_eq!(m.to_vec::<bool>().unwrap(), vec![true, false, false, true]);
    let u = Tensor::from_vec(vec![7u8, 8], &[2]).unwrap();
    assert_eq!(
        Tensor::cat(&[&u, &u], 0).unwrap().to_vec::<u8>().unwrap(),
        vec![7, 8, 7, 8]
    );
    let h = iota(&[2, 2]).to_dtype(DType::F16).unwrap();
    let hc = Tensor::cat(&[&h, &h], 1).unwrap();
    assert_eq!(hc.dtype(), DType::F16);
    assert_eq!(
        f(&hc.to_dtype(DType::F32).unwrap()),
        vec![0., 1., 0., 1., 2., 3., 2., 3.]
    );
}

#[test]
fn cat_non_contiguous_and_repeated_inputs() {
    let a = iota(&[3, 2]);
    let at = a.t().unwrap(); // [2, 3], strided
    let b = iota(&[2, 3]);
    let c = Tensor::cat(&[&at, &b, &at], 1).unwrap();
    assert_eq!(
        f(&c),
        vec![0., 2., 4., 0., 1., 2., 0., 2., 4., 1., 3., 5., 3., 4., 5., 1., 3., 5.]
    );
    let s = Tensor::stack(&[&at, &at], 0).unwrap();
    assert_eq!(f(&s), [f(&at), f(&at)].concat());
}

#[test]
fn cat_errors_name_the_op() {
    let a = Tensor::zeros(&[2, 3]);
    let b = Tensor::zeros(&[3, 3]);
    let e = Tensor::cat(&[&a, &b], 1).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "cat", .. }), "{e}");
    assert!(e.to_string().contains("[2, 3]") && e.to_string().contains("[3, 3]"));
    assert!(Tensor::cat(&[&a, &b], 0).is_ok());
    assert!(matches!(
        Tensor::cat(&[], 0).unwrap_err(),
        Error::InvalidArgument { op: "cat", .. }
    ));
    let ai = Tensor::zeros_dtype(&[2, 3], DType::I64);
    assert!(matches!(
        Tensor::cat(&[&a, &ai], 0).unwrap_err(),
        Error::DTypeMismatch { op: "cat", .. }
    ));
    assert!(matches!(
        Tensor::cat(&[&a, &a], 2).unwrap_err(),
        Error::AxisOutOfRange { op: "cat", .. }
    ));
    let s = Tensor::scalar(1.0);
    assert!(Tensor::cat(&[&s, &s], 0).is_err());
    let r3 = Tensor::zeros(&[2, 3, 1]);
    assert!(matches!(
        Tensor::cat(&[&a, &r3], 0).unwrap_err(),
        Error::ShapeMismatch { op: "cat", .. }
    ));
}

#[test]
fn stack_values_and_errors() {
    let a = ti(&[1, 2, 3], &[3]);
    let b = ti(&[4, 5, 6], &[3]);
    let s0 = Tensor::stack(&[&a, &b], 0).unwrap();
    assert_eq!(s0.shape(), &[2, 3]);
    assert_eq!(i(&s0), vec![1, 2, 3, 4, 5, 6]);
    let s1 = Tensor::stack(&[&a, &b], 1).unwrap();
    assert_eq!(s1.shape(), &[3, 2]);
    assert_eq!(i(&s1), vec![1, 4, 2, 5, 3, 6]);
    let s_neg = Tensor::stack(&[&a, &b], -1).unwrap();
    assert_eq!(i(&s_neg), i(&s1));
    // Scalars stack into a vector.
    let x = Tensor::scalar(1.0);
    let y = Tensor::scalar(2.0);
    assert_eq!(f(&Tensor::stack(&[&x, &y], 0).unwrap()), vec![1.0, 2.0]);
    let bm = Tensor::from_vec(vec![true, false], &[2]).unwrap();
    let st = Tensor::stack(&[&bm, &bm, &bm], 1).unwrap();
    assert_eq!(st.shape(), &[2, 3]);
    assert_eq!(
        st.to_vec::<bool>().unwrap(),
        vec![true, true, true, false, false, false]
    );
    let c = ti(&[1, 2], &[2]);
    assert!(matches!(
        Tensor::stack(&[&a, &c], 0).unwrap_err(),
        Error::ShapeMismatch { op: "stack", .. }
    ));
    assert!(matches!(
        Tensor::stack(&[&a, &b], 2).unwrap_err(),
        Error::AxisOutOfRange { op: "stack", .. }
    ));
    assert!(Tensor::stack(&[], 0).is_err());
}

#[test]
fn cat_and_stack_gradients() {
    let a = uniform(&[2, 3, 4], -1.0, 1.0, 1);
    let b = uniform(&[2, 1, 4], -1.0, 1.0, 2);
    let c = uniform(&[4, 2, 3], -1.0, 1.0, 3);
    check(|x| Tensor::cat(&[&x[0], &x[1], &x[0]], 1), &[a.clone(), b]);
    check(
        |x| Tensor::cat(&[&x[0], &x[1].permute(&[1, 2, 0])?], 2),
        &[a.clone(), c.clone()],
    );
    check(
        |x| Tensor::cat(&[&x[0], &x[0]], 0)?.exp(),
        std::slice::from_ref(&a),
    );
    check(
        |x| Tensor::stack(&[&x[0], &x[1]], 1),
        &[a.clone(), a.clone()],
    );
    check(
        |x| Tensor::stack(&[&x[0].t()?, &x[1]], 0),
        &[
            uniform(&[3, 2], -1.0, 1.0, 4),
            uniform(&[2, 3], -1.0, 1.0, 5),
        ],
    );
    check(|x| Tensor::stack(&[&x[0], &x[0]], -1), &[a]);
    // Only one input requires grad.
    let w = uniform(&[2, 2], -1.0, 1.0, 6).requires_grad_(true);
    let k = Tensor::ones(&[2, 2]);
    let y = Tensor::cat(&[&k, &w], 0).unwrap();
    y.mul_scalar(3.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(f(&w.grad().unwrap()), vec![3.0; 4]);
}

#[test]
fn integer_outputs_are_not_differentiable() {
    let a = iota_i64(&[2, 2]).requires_grad_(true);
    let y = Tensor::cat(&[&a, &a], 0).unwrap();
    assert_eq!(y.grad_fn_name(), Some("cat"));
    let labels = iota_i64(&[4]);
    assert!(!labels.flip(&[0]).unwrap().requires_grad());
}

// ----- split / chunk -----

#[test]
fn split_views_and_sizes() {
    let x = iota(&[5, 2]);
    let parts = x.split(&[2, 0, 3], 0).unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].shape(), &[2, 2]);
    assert_eq!(parts[1].shape(), &[0, 2]);
    assert_eq!(f(&parts[2]), vec![4., 5., 6., 7., 8., 9.]);
    assert!(parts.iter().all(|p| p.same_storage(&x)));
    let cols = x.split(&[1, 1], -1).unwrap();
    assert_eq!(f(&cols[1]), vec![1., 3., 5., 7., 9.]);
    let e = x.split(&[2, 2], 0).unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument { op: "split", .. }),
        "{e}"
    );
    assert!(x.split(&[5], 2).is_err());
    let b = Tensor::from_vec(vec![true, false, true], &[3]).unwrap();
    let bs = b.split(&[1, 2], 0).unwrap();
    assert_eq!(bs[1].to_vec::<bool>().unwrap(), vec![false, true]);
}

#[test]
fn chunk_follows_torch() {
    let sizes = |n: usize, k: usize| -> Vec<usize> {
        iota(&[n])
            .chunk(k, 0)
            .unwrap()
            .iter()
            .map(|t| t.shape()[0])
            .collect()
    };
    assert_eq!(sizes(5, 3), vec![2, 2, 1]);
    assert_eq!(sizes(6, 3), vec![2, 2, 2]);
    assert_eq!(sizes(6, 4), vec![2, 2, 2]); // torch.chunk returns 3 chunks here
    assert_eq!(sizes(2, 5), vec![1, 1]);
    assert_eq!(sizes(0, 3), vec![0, 0, 0]);
    assert_eq!(sizes(7, 1), vec![7]);
    let x = iota(&[2, 5]);
    let c = x.chunk(2, 1).unwrap();
    assert_eq!(f(&c[1]), vec![3., 4., 8., 9.]);
    assert!(x.chunk(0, 0).is_err());
}

#[test]
fn split_gradients() {
    let x = uniform(&[4, 5], -1.0, 1.0, 8);
    check(
        |xs| {
            let p = xs[0].split(&[1, 3], 0)?;
            Tensor::cat(&[&p[1].mul_scalar(2.0)?, &p[0].exp()?], 0)
        },
        std::slice::from_ref(&x),
    );
    check(
        |xs| {
            let p = xs[0].t()?.chunk(2, 0)?;
            p[0].narrow(0, 0, 2)?.mul(&p[1])
        },
        &[x],
    );
}

// ----- gather / scatter / index_select -----

#[test]
fn gather_matches_torch_examples() {
    // torch.gather(torch.tensor([[1, 2], [3, 4]]), 1, torch.tensor([[0, 0], [1, 0]]))
    let t = t32(&[1., 2., 3., 4.], &[2, 2]);
    let idx = ti(&[0, 0, 1, 0], &[2, 2]);
    assert_eq!(f(&t.gather(1, &idx).unwrap()), vec![1., 1., 4., 3.]);
    assert_eq!(f(&t.gather(0, &idx).unwrap()), vec![1., 2., 3., 2.]);
    // An index smaller than the input outside the axis.
    let x = iota(&[3, 4]);
    let idx = ti(&[3, 0, 2, 2], &[2, 2]);
    assert_eq!(f(&x.gather(-1, &idx).unwrap()), vec![3., 0., 6., 6.]);
    let idx0 = ti(&[2, 0, 1], &[1, 3]);
    assert_eq!(f(&x.gather(0, &idx0).unwrap()), vec![8., 1., 6.]);
    // Strided input, integer dtype, i32 index.
    let xi = iota_i64(&[4, 3]).t().unwrap(); // [3, 4]
    let idx32 = Tensor::from_vec(vec![3i32, 1, 0], &[3, 1]).unwrap();
    assert_eq!(i(&xi.gather(1, &idx32).unwrap()), vec![9, 4, 2]);
    // Empty index.
    let e = x
        .gather(1, &Tensor::zeros_dtype(&[3, 0], DType::I64))
        .unwrap();
    assert_eq!(e.shape(), &[3, 0]);
}

#[test]
fn gather_errors() {
    let x = iota(&[3, 4]);
    assert_index_error(x.gather(1, &ti(&[4], &[1, 1])).unwrap_err(), "gather", 4);
    assert_index_error(
        x.gather(0, &ti(&[0, -1], &[1, 2])).unwrap_err(),
        "gather",
        -1,
    );
    assert!(matches!(
        x.gather(1, &ti(&[0], &[1])).unwrap_err(),
        Error::ShapeMismatch { op: "gather", .. }
    ));
    assert!(matches!(
        x.gather(1, &ti(&[0; 8], &[4, 2])).unwrap_err(),
        Error::ShapeMismatch { op: "gather", .. }
    ));
    assert!(matches!(
        x.gather(1, &Tensor::zeros(&[1, 1])).unwrap_err(),
        Error::DTypeMismatch { op: "gather", .. }
    ));
    assert!(matches!(
        x.gather(2, &ti(&[0], &[1, 1])).unwrap_err(),
        Error::AxisOutOfRange { op: "gather", .. }
    ));
}

#[test]
fn scatter_and_scatter_add_match_torch() {
    // torch.zeros(3, 5).scatter(0, torch.tensor([[0, 1, 2, 0]]), torch.arange(1, 11).reshape(2, 5))
    let src = iota(&[2, 5]).add_scalar(1.0).unwrap();
    let idx = ti(&[0, 1, 2, 0], &[1, 4]);
    let out = Tensor::zeros(&[3, 5]).scatter(0, &idx, &src).unwrap();
    assert_eq!(
        f(&out),
        vec![1., 0., 0., 4., 0., 0., 2., 0., 0., 0., 0., 0., 3., 0., 0.]
    );
    // Along axis 1: torch.full((2, 4), 2.).scatter(1, [[2], [3]], 1.23)
    let full = Tensor::full(&[2, 4], 2.0f32);
    let out = full
        .scatter(1, &ti(&[2, 3], &[2, 1]), &Tensor::full(&[2, 1], 1.23f32))
        .unwrap();
    assert_eq!(f(&out), vec![2., 2., 1.23, 2., 2., 2., 2., 1.23]);
    // scatter_add with duplicates: torch.ones(3, 2).scatter_add(0, [[0, 1], [0, 0]], [[1, 2], [3, 4]])
    let sa = Tensor::ones(&[3, 2])
        .scatter_add(
            0,
            &ti(&[0, 1, 0, 0], &[2, 2]),
            &t32(&[1., 2., 3., 4.], &[2, 2]),
        )
        .unwrap();
    assert_eq!(f(&sa), vec![5., 5., 1., 3., 1., 1.]);
    // Duplicates in scatter: the last write wins.
    let dup = Tensor::zeros(&[3])
        .scatter(0, &ti(&[1, 1, 1], &[3]), &t32(&[5., 6., 7.], &[3]))
        .unwrap();
    assert_eq!(f(&dup), vec![0., 7., 0.]);
    // Integer dtypes (e.g. label maps) and a strided src.
    let lab = Tensor::zeros_dtype(&[2, 3], DType::I64);
    let src_i = iota_i64(&[3, 2]).t().unwrap(); // [[0,2,4],[1,3,5]]
    let out = lab.scatter(1, &ti(&[2, 0, 1, 1], &[2, 2]), &src_i).unwrap();
    assert_eq!(i(&out), vec![2, 0, 0, 0, 3, 0]);
    let cnt = Tensor::zeros_dtype(&[4], DType::I64)
        .scatter_add(0, &ti(&[3, 3, 0], &[3]), &ti(&[1, 1, 1], &[3]))
        .unwrap();
    assert_eq!(i(&cnt), vec![1, 0, 0, 2]);
    let bm = Tensor::zeros_dtype(&[4], DType::Bool)
        .scatter(
            0,
            &ti(&[2], &[1]),
            &Tensor::from_vec(vec![true], &[1]).unwrap(),
        )
        .unwrap();
    assert_eq!(
        bm.to_vec::<bool>().unwrap(),
        vec![false, false, true, false]
    );
}

#[test]
fn scatter_errors() {
    let x = Tensor::zeros(&[3, 4]);
    let src = Tensor::ones(&[2, 4]);
    assert_index_error(
        x.scatter(0, &ti(&[3], &[1, 1]), &src).unwrap_err(),
        "scatter",
        3,
    );
    assert_index_error(
        x.scatter_add(1, &ti(&[-2], &[1, 1]), &src).unwrap_err(),
        "scatter_add",
        -2,
    );
    // src smaller than the index.
    assert!(matches!(
        x.scatter(0, &ti(&[0; 6], &[2, 3]), &Tensor::ones(&[1, 4]))
            .unwrap_err(),
        Error::ShapeMismatch { op: "scatter", .. }
    ));
    assert!(matches!(
        x.scatter(
            0,
            &ti(&[0; 2], &[1, 2]),
            &Tensor::ones_like(&x).to_dtype(DType::I64).unwrap()
        )
        .unwrap_err(),
        Error::DTypeMismatch { op: "scatter", .. }
    ));
}

#[test]
fn gather_scatter_gradients() {
    let x = uniform(&[3, 4, 2], -1.0, 1.0, 10);
    // Repeated indices accumulate in the gradient.
    let idx = ti(&[0, 2, 2, 1, 0, 0, 1, 1, 2, 2, 0, 1], &[2, 3, 2]);
    check(|xs| xs[0].gather(0, &idx), std::slice::from_ref(&x));
    let idx1 = ti(&[3, 3, 0, 1, 2, 0], &[3, 1, 2]);
    check(|xs| xs[0].gather(1, &idx1), std::slice::from_ref(&x));
    // Non-contiguous input.
    check(
        |xs| {
            xs[0]
                .permute(&[2, 0, 1])?
                .gather(2, &ti(&[1, 0, 3, 3, 2, 1], &[2, 3, 1]))
        },
        std::slice::from_ref(&x),
    );
    // 1-D.
    let v = uniform(&[5], -1.0, 1.0, 15);
    let idx_1d = ti(&[4, 0, 4, 2], &[4]);
    assert_eq!(
        f(&v.gather(0, &idx_1d).unwrap()),
        [4, 0, 4, 2].map(|k| f(&v)[k]).to_vec()
    );
    check(|xs| xs[0].gather(0, &idx_1d), std::slice::from_ref(&v));
    check(
        |xs| xs[0].scatter(0, &idx_1d, &xs[1]),
        &[v.clone(), uniform(&[6], -1.0, 1.0, 16)],
    );
    check(
        |xs| xs[0].scatter_add(0, &idx_1d, &xs[1]),
        &[v, uniform(&[4], -1.0, 1.0, 17)],
    );
    // scatter_add: src larger than the index; duplicates.
    let base = uniform(&[3, 4], -1.0, 1.0, 11);
    let src = uniform(&[2, 5], -1.0, 1.0, 12);
    let sidx = ti(&[0, 2, 2, 1, 0, 0, 1, 1], &[2, 4]);
    check(
        |xs| xs[0].scatter_add(0, &sidx, &xs[1]),
        &[base.clone(), src.clone()],
    );
    check(
        |xs| {
            xs[0]
                .t()?
                .scatter_add(1, &ti(&[1, 1, 0, 2], &[2, 2]), &xs[1].t()?)
        },
        &[base.clone(), uniform(&[3, 2], -1.0, 1.0, 13)],
    );
    // scatter with distinct targets, and with duplicates (only the winner gets a gradient).
    let uidx = ti(&[2, 0, 1, 0, 1, 2, 0, 2], &[2, 4]);
    check(
        |xs| xs[0].scatter(0, &uidx, &xs[1]),
        &[base.clone(), src.clone()],
    );
    check(
        |xs| xs[0].scatter(0, &sidx, &xs[1]),
        &[base.clone(), src.clone()],
    );
    let b = base.requires_grad_(true);
    let s = t32(&[1., 2., 3.], &[3, 1]).requires_grad_(true);
    let y = b.scatter(0, &ti(&[1, 1, 2], &[3, 1]), &s).unwrap();
    let w = iota(&[3, 4]).add_scalar(1.0).unwrap();
    y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(f(&s.grad().unwrap()), vec![0., 5., 9.]);
    assert_eq!(
        f(&b.grad().unwrap()),
        vec![1., 2., 3., 4., 0., 6., 7., 8., 0., 10., 11., 12.]
    );
}

#[test]
fn index_select_values_and_gradient() {
    let x = iota(&[3, 4]);
    let idx = ti(&[2, 0, 2], &[3]);
    let y = x.index_select(0, &idx).unwrap();
    assert_eq!(y.shape(), &[3, 4]);
    assert_eq!(
        f(&y),
        vec![8., 9., 10., 11., 0., 1., 2., 3., 8., 9., 10., 11.]
    );
    let yc = x.index_select(-1, &ti(&[3, 1], &[2])).unwrap();
    assert_eq!(f(&yc), vec![3., 1., 7., 5., 11., 9.]);
    // Labels / masks.
    let lab = Tensor::from_vec(vec![5u8, 6, 7], &[3]).unwrap();
    assert_eq!(
        lab.index_select(0, &ti(&[2, 2, 0], &[3]))
            .unwrap()
            .to_vec::<u8>()
            .unwrap(),
        vec![7, 7, 5]
    );
    let m = Tensor::from_vec(vec![true, false], &[2, 1]).unwrap();
    assert_eq!(
        m.index_select(0, &ti(&[1, 0], &[2]))
            .unwrap()
            .to_vec::<bool>()
            .unwrap(),
        vec![false, true]
    );
    // Empty selection.
    assert_eq!(x.index_select(0, &ti(&[], &[0])).unwrap().shape(), &[0, 4]);
    // Gradient is index_add.
    let w = x.requires_grad_(true);
    w.index_select(0, &idx)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(
        f(&w.grad().unwrap()),
        vec![1., 1., 1., 1., 0., 0., 0., 0., 2., 2., 2., 2.]
    );
    let x = uniform(&[4, 3, 2], -1.0, 1.0, 14);
    check(
        |xs| xs[0].index_select(1, &ti(&[2, 2, 0, 1], &[4])),
        std::slice::from_ref(&x),
    );
    check(
        |xs| {
            xs[0]
                .permute(&[2, 1, 0])?
                .index_select(2, &ti(&[3, 0, 3], &[3]))
        },
        &[x],
    );
}

#[test]
fn index_select_errors() {
    let x = iota(&[3, 4]);
    assert_index_error(
        x.index_select(1, &ti(&[0, 4], &[2])).unwrap_err(),
        "index_select",
        4,
    );
    assert_index_error(
        x.index_select(0, &ti(&[-1], &[1])).unwrap_err(),
        "index_select",
        -1,
    );
    assert!(matches!(
        x.index_select(0, &ti(&[0, 1], &[1, 2])).unwrap_err(),
        Error::BadShape {
            op: "index_select",
            ..
        }
    ));
    assert!(matches!(
        x.index_select(0, &t32(&[0.0], &[1])).unwrap_err(),
        Error::DTypeMismatch {
            op: "index_select",
            ..
        }
    ));
}

// ----- pad -----

#[test]
fn pad_matches_torch() {
    let x = iota(&[1, 1, 3, 3]);
    let r = x.pad(&[(1, 1), (1, 1)], PadMode::Reflect).unwrap();
    assert_eq!(r.shape(), &[1, 1, 5, 5]);
    #[rustfmt::skip]
    assert_eq!(f(&r), vec![
        4., 3., 4., 5., 4.,
        1., 0., 1., 2., 1.,
        4., 3., 4., 5., 4.,
        7., 6., 7., 8., 7.,
        4., 3., 4., 5., 4.,
    ]);
    let p = x.pad(&[(1, 1), (1, 1)], PadMode::Replicate).unwrap();
    #[rustfmt::skip]
    assert_eq!(f(&p), vec![
        0., 0., 1., 2., 2.,
        0., 0., 1., 2., 2.,
        3., 3., 4., 5., 5.,
        6., 6., 7., 8., 8.,
        6., 6., 7., 8., 8.,
    ]);
    let c = x.pad(&[(0, 1), (2, 0)], PadMode::Constant(-1.0)).unwrap();
    assert_eq!(c.shape(), &[1, 1, 4, 5]);
    #[rustfmt::skip]
    assert_eq!(f(&c), vec![
        -1., -1., 0., 1., 2.,
        -1., -1., 3., 4., 5.,
        -1., -1., 6., 7., 8.,
        -1., -1., -1., -1., -1.,
    ]);
    // 1-D reflect with the largest allowed pads: F.pad(arange(4), (3, 3), 'reflect')
    let v = iota(&[4]).pad(&[(3, 3)], PadMode::Reflect).unwrap();
    assert_eq!(f(&v), vec![3., 2., 1., 0., 1., 2., 3., 2., 1., 0.]);
    // Padding only the last dim; padding a leading dim too.
    let w = iota(&[2, 2]).pad(&[(1, 0)], PadMode::Replicate).unwrap();
    assert_eq!(f(&w), vec![0., 0., 1., 2., 2., 3.]);
    let z = iota(&[2, 1])
        .pad(&[(1, 0), (0, 1)], PadMode::Constant(0.0))
        .unwrap();
    assert_eq!(f(&z), vec![0., 0., 0., 0., 1., 0.]);
    // Zero pads copy.
    assert_eq!(f(&x.pad(&[], PadMode::Reflect).unwrap()), f(&x));
}

#[test]
fn pad_integer_bool_and_strided() {
    let m = Tensor::from_vec(vec![true, false], &[1, 2]).unwrap();
    let p = m.pad(&[(1, 0), (0, 1)], PadMode::Constant(1.0)).unwrap();
    assert_eq!(
        p.to_vec::<bool>().unwrap(),
        vec![true, true, true, true, false, true]
    );
    let lab = Tensor::from_vec(vec![1u8, 2, 3], &[3]).unwrap();
    assert_eq!(
        lab.pad(&[(2, 1)], PadMode::Constant(255.0))
            .unwrap()
            .to_vec::<u8>()
            .unwrap(),
        vec![255, 255, 1, 2, 3, 255]
    );
    assert_eq!(
        lab.pad(&[(2, 1)], PadMode::Reflect)
            .unwrap()
            .to_vec::<u8>()
            .unwrap(),
        vec![3, 2, 1, 2, 3, 2]
    );
    let xi = iota_i64(&[3, 2]).t().unwrap(); // [[0,2,4],[1,3,5]]
    assert_eq!(
        i(&xi.pad(&[(0, 0), (1, 1)], PadMode::Replicate).unwrap()),
        vec![0, 0, 2, 4, 4, 1, 1, 3, 5, 5]
    );
}

#[test]
fn pad_errors() {
    let x = iota(&[1, 2, 3]);
    let e = x.pad(&[(2, 0), (0, 0)], PadMode::Reflect).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { op: "pad", .. }), "{e}");
    assert!(e.to_string().contains("reflect"), "{e}");
    assert!(x.pad(&[(0, 3)], PadMode::Reflect).is_err());
    assert!(x.pad(&[(0, 2)], PadMode::Reflect).is_ok());
    assert!(matches!(
        x.pad(&[(0, 0); 4], PadMode::Constant(0.0)).unwrap_err(),
        Error::BadShape { op: "pad", .. }
    ));
    let empty = Tensor::zeros(&[2, 0]);
    assert!(empty.pad(&[(1, 1)], PadMode::Replicate).is_err());
    assert_eq!(
        empty
            .pad(&[(1, 1)], PadMode::Constant(3.0))
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        vec![3.0; 4]
    );
}

#[test]
fn pad_gradients() {
    let x = uniform(&[2, 3, 4], -1.0, 1.0, 20);
    for mode in [PadMode::Constant(0.5), PadMode::Reflect, PadMode::Replicate] {
        check(
            |xs| xs[0].pad(&[(2, 1), (3, 2)], mode),
            std::slice::from_ref(&x),
        );
        check(|xs| xs[0].pad(&[(0, 2)], mode), std::slice::from_ref(&x));
        check(
            |xs| xs[0].pad(&[(1, 0), (2, 2), (1, 3)], mode),
            std::slice::from_ref(&x),
        );
        check(
            |xs| xs[0].permute(&[0, 2, 1])?.pad(&[(1, 2), (2, 0)], mode),
            std::slice::from_ref(&x),
        );
    }
}

// ----- flip / repeat / tile / one_hot -----

#[test]
fn flip_values_and_gradient() {
    let x = iota(&[2, 3]);
    assert_eq!(f(&x.flip(&[0]).unwrap()), vec![3., 4., 5., 0., 1., 2.]);
    assert_eq!(f(&x.flip(&[-1]).unwrap()), vec![2., 1., 0., 5., 4., 3.]);
    assert_eq!(f(&x.flip(&[0, 1]).unwrap()), vec![5., 4., 3., 2., 1., 0.]);
    assert_eq!(f(&x.flip(&[]).unwrap()), f(&x));
    assert_eq!(
        f(&x.t().unwrap().flip(&[1]).unwrap()),
        vec![3., 0., 4., 1., 5., 2.]
    );
    let m = Tensor::from_vec(vec![true, false, false], &[3]).unwrap();
    assert_eq!(
        m.flip(&[0]).unwrap().to_vec::<bool>().unwrap(),
        vec![false, false, true]
    );
    assert!(matches!(
        x.flip(&[1, -1]).unwrap_err(),
        Error::InvalidArgument { op: "flip", .. }
    ));
    assert!(x.flip(&[2]).is_err());
    let x = uniform(&[2, 3, 4], -1.0, 1.0, 30);
    check(|xs| xs[0].flip(&[2]), std::slice::from_ref(&x));
    check(|xs| xs[0].flip(&[0, 1]), std::slice::from_ref(&x));
    check(|xs| xs[0].permute(&[2, 0, 1])?.flip(&[0, 2]), &[x]);
}

#[test]
fn repeat_and_tile_follow_torch() {
    let x = t32(&[1., 2., 3.], &[3]);
    let r = x.repeat(&[4, 2]).unwrap();
    assert_eq!(r.shape(), &[4, 6]);
    assert_eq!(
        f(&r)[..12],
        [1., 2., 3., 1., 2., 3., 1., 2., 3., 1., 2., 3.]
    );
    assert_eq!(x.repeat(&[4, 2, 1]).unwrap().shape(), &[4, 2, 3]);
    let m = iota(&[2, 2]);
    assert_eq!(
        f(&m.repeat(&[2, 1]).unwrap()),
        vec![0., 1., 2., 3., 0., 1., 2., 3.]
    );
    assert_eq!(
        f(&m.repeat(&[1, 2]).unwrap()),
        vec![0., 1., 0., 1., 2., 3., 2., 3.]
    );
    assert_eq!(m.repeat(&[0, 3]).unwrap().shape(), &[0, 6]);
    assert!(matches!(
        m.repeat(&[2]).unwrap_err(),
        Error::InvalidArgument { op: "repeat", .. }
    ));
    // tile pads reps with leading ones.
    assert_eq!(f(&m.tile(&[2]).unwrap()), f(&m.repeat(&[1, 2]).unwrap()));
    assert_eq!(m.tile(&[2, 1, 1]).unwrap().shape(), &[2, 2, 2]);
    let lab = iota_i64(&[2]);
    assert_eq!(i(&lab.repeat(&[3]).unwrap()), vec![0, 1, 0, 1, 0, 1]);
    let s = Tensor::scalar(7.0).repeat(&[2, 2]).unwrap();
    assert_eq!(f(&s), vec![7.0; 4]);
    let x = uniform(&[2, 3], -1.0, 1.0, 31);
    check(|xs| xs[0].repeat(&[2, 3]), std::slice::from_ref(&x));
    check(|xs| xs[0].repeat(&[2, 1, 2]), std::slice::from_ref(&x));
    check(|xs| xs[0].t()?.repeat(&[1, 2]), std::slice::from_ref(&x));
    check(|xs| xs[0].tile(&[3]), &[x]);
}

#[test]
fn one_hot_encodes_labels() {
    let lab = ti(&[2, 0, 1, 2], &[2, 2]);
    let o = lab.one_hot(3).unwrap();
    assert_eq!(o.shape(), &[2, 2, 3]);
    assert_eq!(o.dtype(), DType::F32);
    assert_eq!(f(&o), vec![0., 0., 1., 1., 0., 0., 0., 1., 0., 0., 0., 1.]);
    assert_index_error(lab.one_hot(2).unwrap_err(), "one_hot", 2);
    assert_index_error(ti(&[-1], &[1]).one_hot(3).unwrap_err(), "one_hot", -1);
    assert!(t32(&[1.0], &[1]).one_hot(3).is_err());
    assert!(lab.one_hot(0).is_err());
    let u = Tensor::from_vec(vec![1u8], &[]).unwrap();
    assert_eq!(f(&u.one_hot(2).unwrap()), vec![0., 1.]);
}

// ----- big tensors (parallel paths) against naive loops -----

#[test]
fn big_cat_stack_flip_pad_match_naive() {
    let a = uniform(&[3, 200, 150], -1.0, 1.0, 40);
    let b = uniform(&[3, 100, 150], -1.0, 1.0, 41);
    let c = Tensor::cat(&[&a, &b], 1).unwrap();
    let (va, vb, vc) = (f(&a), f(&b), f(&c));
    for n in 0..3 {
        assert_eq!(
            vc[n * 300 * 150..n * 300 * 150 + 200 * 150],
            va[n * 200 * 150..(n + 1) * 200 * 150]
        );
        assert_eq!(
            vc[n * 300 * 150 + 200 * 150..(n + 1) * 300 * 150],
            vb[n * 100 * 150..(n + 1) * 100 * 150]
        );
    }
    let s = Tensor::stack(&[&a, &a], 0).unwrap();
    assert_eq!(f(&s), [va.clone(), va.clone()].concat());

    // flip of a strided view on two axes
    let shape = [3, 150, 200];
    let at = a.permute(&[0, 2, 1]).unwrap();
    let fl = at.flip(&[1, 2]).unwrap();
    let vt = f(&at);
    let vf = f(&fl);
    for k in (0..vf.len()).step_by(7) {
        let mut idx = unravel(k, &shape);
        idx[1] = shape[1] - 1 - idx[1];
        idx[2] = shape[2] - 1 - idx[2];
        assert_eq!(vf[k], vt[ravel(&idx, &shape)]);
    }

    // reflect pad of a big batch
    let x = uniform(&[4, 3, 64, 80], -1.0, 1.0, 42);
    let p = x.pad(&[(3, 2), (5, 4)], PadMode::Reflect).unwrap();
    let (vx, vp) = (f(&x), f(&p));
    let ps = [4, 3, 69, 89];
    let refl = |i: isize, n: isize| -> usize {
        (if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        }) as usize
    };
    for k in (0..vp.len()).step_by(5) {
        let o = unravel(k, &ps);
        let h = refl(o[2] as isize - 3, 64);
        let w = refl(o[3] as isize - 5, 80);
        assert_eq!(vp[k], vx[ravel(&[o[0], o[1], h, w], &[4, 3, 64, 80])]);
    }
    // and its gradient against the naive adjoint
    let xg = x.requires_grad_(true);
    let g = uniform(&ps, -1.0, 1.0, 43);
    xg.pad(&[(3, 2), (5, 4)], PadMode::Reflect)
        .unwrap()
        .backward_with(&g)
        .unwrap();
    let vg = f(&g);
    let mut want = vec![0.0f32; vx.len()];
    for (k, &gv) in vg.iter().enumerate() {
        let o = unravel(k, &ps);
        let h = refl(o[2] as isize - 3, 64);
        let w = refl(o[3] as isize - 5, 80);
        want[ravel(&[o[0], o[1], h, w], &[4, 3, 64, 80])] += gv;
    }
    common::assert_close(&f(&xg.grad().unwrap()), &want, 1e-5, 1e-5);
}

#[test]
fn big_gather_scatter_index_select_match_naive() {
    let shape = [64, 40, 50];
    let x = uniform(&shape, -1.0, 1.0, 50);
    let vx = f(&x);
    let mut rng = ferrovision_tensor::rng::Rng::new(51);
    let ishape = [60, 40, 50];
    let n: usize = ishape.iter().product();
    let idx_axis1: Vec<i64> = (0..n).map(|_| rng.below(40) as i64).collect();
    let idx = ti(&idx_axis1, &ishape);
    let gthr = x.gather(1, &idx).unwrap();
    let vg = f(&gthr);
    for k in (0..n).step_by(3) {
        let mut p = unravel(k, &ishape);
        p[1] = idx_axis1[k] as usize;
        assert_eq!(vg[k], vx[ravel(&p, &shape)]);
    }
    // gather backward == naive scatter-add of the cotangent
    let xr = x.detach().requires_grad_(true);
    let cot = uniform(&ishape, -1.0, 1.0, 52);
    xr.gather(1, &idx).unwrap().backward_with(&cot).unwrap();
    let vcot = f(&cot);
    let mut want = vec![0.0f32; vx.len()];
    for (k, &c) in vcot.iter().enumerate() {
        let mut p = unravel(k, &ishape);
        p[1] = idx_axis1[k] as usize;
        want[ravel(&p, &shape)] += c;
    }
    common::assert_close(&f(&xr.grad().unwrap()), &want, 1e-5, 1e-5);

    // scatter_add along axis 0 (sequential path) and axis 1 (parallel path)
    for axis in [0usize, 1] {
        let size = shape[axis] as u64;
        let ivals: Vec<i64> = (0..n).map(|_| rng.below(size) as i64).collect();
        let index = ti(&ivals, &ishape);
        let src = uniform(&[64, 40, 50], -1.0, 1.0, 53);
        let vs = f(&src);
        let out = x.scatter_add(axis as isize, &index, &src).unwrap();
        let mut want = vx.clone();
        for (k, &v) in ivals.iter().enumerate() {
            let p = unravel(k, &ishape);
            let mut q = p.clone();
            q[axis] = v as usize;
            want[ravel(&q, &shape)] += vs[ravel(&p, &shape)];
        }
        common::assert_close(&f(&out), &want, 1e-5, 1e-5);
    }

    // index_select of rows, then its index_add gradient
    let sel: Vec<i64> = (0..100).map(|_| rng.below(64) as i64).collect();
    let xs = x.detach().requires_grad_(true);
    let y = xs.index_select(0, &ti(&sel, &[100])).unwrap();
    let vy = f(&y);
    let row = 40 * 50;
    for (r, &s) in sel.iter().enumerate() {
        assert_eq!(
            vy[r * row..(r + 1) * row],
            vx[s as usize * row..(s as usize + 1) * row]
        );
    }
    y.sum_all().unwrap().backward().unwrap();
    let gx = f(&xs.grad().unwrap());
    for r in 0..64 {
        let count = sel.iter().filter(|&&s| s as usize == r).count() as f32;
        assert_eq!(gx[r * row], count);
        assert_eq!(gx[(r + 1) * row - 1], count);
    }
}

#[test]
fn big_repeat_and_integer_copies() {
    let x = iota_i64(&[50, 70]);
    let r = x.repeat(&[3, 2, 4]).unwrap();
    assert_eq!(r.shape(), &[3, 100, 280]);
    let vr = i(&r);
    for k in (0..vr.len()).step_by(11) {
        let o = unravel(k, &[3, 100, 280]);
        assert_eq!(vr[k], ((o[1] % 50) * 70 + o[2] % 70) as i64);
    }
    // Long single rows (1-D) are split across threads too.
    let v = iota_i64(&[100_000]);
    let fl = i(&v.flip(&[0]).unwrap());
    assert!(fl.iter().enumerate().all(|(k, &x)| x == 99_999 - k as i64));
    let pd = i(&v.pad(&[(3, 2)], PadMode::Reflect).unwrap());
    assert_eq!(pd.len(), 100_005);
    assert_eq!(pd[..5], [3, 2, 1, 0, 1]);
    assert_eq!(pd[100_001..], [99_998, 99_999, 99_998, 99_997]);
    let odd = v.slice(0, 1, 100_000, 2).unwrap();
    let oc = i(&Tensor::cat(&[&odd, &odd], 0).unwrap());
    assert!(oc
        .iter()
        .enumerate()
        .all(|(k, &x)| x == 2 * (k % 50_000) as i64 + 1));
    let m = Tensor::from_vec(
        (0..200_000).map(|k| k % 3 == 0).collect::<Vec<_>>(),
        &[400, 500],
    )
    .unwrap();
    let mp = m.pad(&[(1, 1), (2, 2)], PadMode::Constant(0.0)).unwrap();
    let vm = mp.to_vec::<bool>().unwrap();
    assert_eq!(mp.shape(), &[402, 504]);
    assert!(!vm[0] && vm[504 + 2]);
    assert_eq!(
        vm.iter().filter(|&&b| b).count(),
        (0..200_000).filter(|k| k % 3 == 0).count()
    );
}

/// Timings of the copy kernels on typical CNN sizes (run with
/// `cargo test --release --test manip -- --ignored --nocapture`).
#[test]
#[ignore]
fn perf_manip() {
    use std::time::Instant;
    fn time(name: &str, bytes: usize, mut f: impl FnMut()) {
        // FV_PERF=<substring> runs only the matching cases (for profiling one kernel).
        if std::env::var("FV_PERF").is_ok_and(|only| !name.contains(&only)) {
            return;
        }
        f();
        // The best of several runs: the machine is shared, so the minimum is the stable number.
        let s = (0..10)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        println!(
            "{name:<44} {:>8.3} ms  {:>6.1} GB/s (read+write)",
            s * 1e3,
            bytes as f64 / s / 1e9
        );
    }
    let x = uniform(&[32, 64, 56, 56], -1.0, 1.0, 1);
    let n = x.numel();
    let b4 = 4 * n;
    time("baseline add_scalar [32,64,56,56]", 2 * b4, || {
        x.add_scalar(0.0).unwrap();
    });
    time("cat axis 1 two [32,64,56,56]", 4 * b4, || {
        Tensor::cat(&[&x, &x], 1).unwrap();
    });
    time("stack axis 0 two [32,64,56,56]", 4 * b4, || {
        Tensor::stack(&[&x, &x], 0).unwrap();
    });
    let p = [(1, 1), (1, 1)];
    let out = 32 * 64 * 58 * 58 * 4;
    time("pad constant 1 [32,64,56,56]", b4 + out, || {
        x.pad(&p, PadMode::Constant(0.0)).unwrap();
    });
    time("pad reflect 1 [32,64,56,56]", b4 + out, || {
        x.pad(&p, PadMode::Reflect).unwrap();
    });
    let g = uniform(&[32, 64, 58, 58], -1.0, 1.0, 2);
    time("pad reflect backward [32,64,58,58]", b4 + out, || {
        let xr = x.detach().requires_grad_(true);
        xr.pad(&p, PadMode::Reflect)
            .unwrap()
            .backward_with(&g)
            .unwrap();
    });
    time("flip W [32,64,56,56]", 2 * b4, || {
        x.flip(&[-1]).unwrap();
    });
    time("flip H [32,64,56,56]", 2 * b4, || {
        x.flip(&[-2]).unwrap();
    });
    let xt = x.permute(&[0, 2, 3, 1]).unwrap();
    time("cat of NHWC views axis 3 (strided inputs)", 4 * b4, || {
        Tensor::cat(&[&xt, &xt], 3).unwrap();
    });
    let sel = Tensor::randperm(32, &mut ferrovision_tensor::rng::Rng::new(0));
    time("index_select axis 0 (batch shuffle)", 2 * b4, || {
        x.index_select(0, &sel).unwrap();
    });
    time("repeat [1,2,1,1]", 3 * b4, || {
        x.repeat(&[1, 2, 1, 1]).unwrap();
    });
    let idx = Tensor::randint(
        &[32, 64, 56, 56],
        0,
        56,
        &mut ferrovision_tensor::rng::Rng::new(1),
    )
    .unwrap();
    time("gather axis 3 [32,64,56,56] (i64 index)", 4 * b4, || {
        x.gather(3, &idx).unwrap();
    });
    time("scatter_add axis 3 [32,64,56,56]", 5 * b4, || {
        x.scatter_add(3, &idx, &x).unwrap();
    });
    time("scatter axis 3 [32,64,56,56]", 5 * b4, || {
        x.scatter(3, &idx, &x).unwrap();
    });
    let y = uniform(&[32, 64, 56, 56], -1.0, 1.0, 1);
    time("scatter_add axis 3 src != self", 5 * b4, || {
        x.scatter_add(3, &idx, &y).unwrap();
    });
    time("copy via cat of one", 2 * b4, || {
        Tensor::cat(&[&x], 0).unwrap();
    });
}
