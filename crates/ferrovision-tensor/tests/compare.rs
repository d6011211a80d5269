//! Comparisons, logical ops, `where_`, `masked_fill`, `isnan`/`isfinite`: exact values over
//! dtypes and broadcasting, gradients of `where_`/`masked_fill`, and error messages.

mod common;
use common::uniform;
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::{DType, Error, Tensor};

fn bools(t: &Tensor) -> Vec<bool> {
    assert_eq!(t.dtype(), DType::Bool);
    t.to_vec::<bool>().unwrap()
}

fn b(v: &[u8]) -> Vec<bool> {
    v.iter().map(|&x| x != 0).collect()
}

#[test]
fn tensor_tensor_f32_with_broadcasting() {
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let r = Tensor::from_vec(vec![2.0f32, 5.0], &[2, 1]).unwrap();
    assert_eq!(bools(&a.eq(&r).unwrap()), b(&[0, 1, 0, 0, 1, 0]));
    assert_eq!(bools(&a.ne(&r).unwrap()), b(&[1, 0, 1, 1, 0, 1]));
    assert_eq!(bools(&a.lt(&r).unwrap()), b(&[1, 0, 0, 1, 0, 0]));
    assert_eq!(bools(&a.le(&r).unwrap()), b(&[1, 1, 0, 1, 1, 0]));
    assert_eq!(bools(&a.gt(&r).unwrap()), b(&[0, 0, 1, 0, 0, 1]));
    assert_eq!(bools(&a.ge(&r).unwrap()), b(&[0, 1, 1, 0, 1, 1]));
    // Row vector against column vector.
    let row = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap();
    let col = Tensor::from_vec(vec![2.0f32, 3.0], &[2, 1]).unwrap();
    let g = row.gt(&col).unwrap();
    assert_eq!(g.shape(), &[2, 3]);
    assert_eq!(bools(&g), b(&[0, 0, 1, 0, 0, 0]));
    // Non-contiguous operand.
    let t = a.t().unwrap(); // [3, 2] = [[1,4],[2,5],[3,6]]
    let th = Tensor::from_vec(vec![3.5f32], &[1]).unwrap();
    assert_eq!(bools(&t.lt(&th).unwrap()), b(&[1, 0, 1, 0, 1, 0]));
}

#[test]
fn nan_comparisons() {
    let a = Tensor::from_vec(vec![f32::NAN, 1.0], &[2]).unwrap();
    let n = Tensor::from_vec(vec![f32::NAN, f32::NAN], &[2]).unwrap();
    assert_eq!(bools(&a.eq(&n).unwrap()), b(&[0, 0]));
    assert_eq!(bools(&a.ne(&n).unwrap()), b(&[1, 1]));
    assert_eq!(bools(&a.le(&a).unwrap()), b(&[0, 1]));
    assert_eq!(bools(&a.eq_scalar(f64::NAN).unwrap()), b(&[0, 0]));
    assert_eq!(bools(&a.ne_scalar(1.0).unwrap()), b(&[1, 0]));
}

#[test]
fn integer_dtypes() {
    let i = Tensor::from_vec(vec![1i64, -5, 7, 3], &[4]).unwrap();
    let j = Tensor::from_vec(vec![3i64], &[1]).unwrap();
    assert_eq!(bools(&i.lt(&j).unwrap()), b(&[1, 1, 0, 0]));
    assert_eq!(bools(&i.eq(&j).unwrap()), b(&[0, 0, 0, 1]));
    let i32t = Tensor::from_vec(vec![1i32, 2, 3], &[3]).unwrap();
    assert_eq!(bools(&i32t.ge(&i32t).unwrap()), b(&[1, 1, 1]));
    let u = Tensor::from_vec(vec![0u8, 128, 255], &[3]).unwrap();
    assert_eq!(bools(&u.gt_scalar(127.0).unwrap()), b(&[0, 1, 1]));
    assert_eq!(bools(&u.eq_scalar(255.0).unwrap()), b(&[0, 0, 1]));
    // Mixed dtypes compare as f64.
    let f = Tensor::from_vec(vec![1.0f32, -5.5, 7.0, 2.5], &[4]).unwrap();
    assert_eq!(bools(&i.eq(&f).unwrap()), b(&[1, 0, 1, 0]));
    assert_eq!(bools(&i.gt(&f).unwrap()), b(&[0, 1, 0, 1]));
    // Integer vs fractional scalar; exact i64 beyond 2^53.
    assert_eq!(bools(&i.lt_scalar(2.5).unwrap()), b(&[1, 1, 0, 0]));
    assert_eq!(bools(&i.le_scalar(-5.0).unwrap()), b(&[0, 1, 0, 0]));
    let big = Tensor::from_vec(vec![(1i64 << 60) + 1, 1 << 60], &[2]).unwrap();
    assert_eq!(
        bools(&big.eq_scalar((1u64 << 60) as f64).unwrap()),
        b(&[0, 1])
    );
    // Bool tensors compare too.
    let m = Tensor::from_vec(vec![true, false], &[2]).unwrap();
    assert_eq!(bools(&m.eq(&m).unwrap()), b(&[1, 1]));
    assert_eq!(bools(&m.gt_scalar(0.5).unwrap()), b(&[1, 0]));
}

#[test]
fn scalar_comparisons_round_to_the_tensor_dtype() {
    // 0.1 rounds to f32 first (as in PyTorch): 0.1f32 == 0.1 is true there.
    let x = Tensor::from_vec(vec![0.1f32, 0.2, -1.0], &[3]).unwrap();
    assert_eq!(bools(&x.eq_scalar(0.1).unwrap()), b(&[1, 0, 0]));
    assert_eq!(bools(&x.gt_scalar(0.1).unwrap()), b(&[0, 1, 0]));
    assert_eq!(bools(&x.ge_scalar(0.1).unwrap()), b(&[1, 1, 0]));
    assert_eq!(bools(&x.lt_scalar(0.0).unwrap()), b(&[0, 0, 1]));
    assert_eq!(bools(&x.le_scalar(0.2).unwrap()), b(&[1, 1, 1]));
    assert_eq!(bools(&x.ne_scalar(-1.0).unwrap()), b(&[1, 1, 0]));
    let h = x.to_dtype(DType::F16).unwrap();
    assert_eq!(bools(&h.eq_scalar(0.1).unwrap()), b(&[1, 0, 0]));
    // Large inputs (parallel path).
    let big = uniform(&[200_000], -1.0, 1.0, 3);
    let other = uniform(&[200_000], -1.0, 1.0, 4);
    let got = bools(&big.lt(&other).unwrap());
    let (bv, ov) = (big.to_vec::<f32>().unwrap(), other.to_vec::<f32>().unwrap());
    assert_eq!(
        got,
        bv.iter().zip(&ov).map(|(a, b)| a < b).collect::<Vec<_>>()
    );
    let w = big
        .lt(&other)
        .unwrap()
        .where_(&big, &other)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(
        w,
        bv.iter()
            .zip(&ov)
            .map(|(a, b)| a.min(*b))
            .collect::<Vec<_>>()
    );
    let got = bools(&big.gt_scalar(0.25).unwrap());
    let want: Vec<bool> = big
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v > 0.25)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn logical_ops() {
    let p = Tensor::from_vec(vec![true, true, false, false], &[4]).unwrap();
    let q = Tensor::from_vec(vec![true, false, true, false], &[4]).unwrap();
    assert_eq!(bools(&p.logical_and(&q).unwrap()), b(&[1, 0, 0, 0]));
    assert_eq!(bools(&p.logical_or(&q).unwrap()), b(&[1, 1, 1, 0]));
    assert_eq!(bools(&p.logical_xor(&q).unwrap()), b(&[0, 1, 1, 0]));
    assert_eq!(bools(&p.logical_not().unwrap()), b(&[0, 0, 1, 1]));
    // Broadcasting and non-Bool inputs (non-zero is true, NaN is true).
    let col = Tensor::from_vec(vec![true, false], &[2, 1]).unwrap();
    let r = col.logical_and(&p).unwrap();
    assert_eq!(r.shape(), &[2, 4]);
    assert_eq!(bools(&r), b(&[1, 1, 0, 0, 0, 0, 0, 0]));
    let f = Tensor::from_vec(vec![0.0f32, 2.0, f32::NAN, -0.0], &[4]).unwrap();
    assert_eq!(bools(&f.logical_not().unwrap()), b(&[1, 0, 0, 1]));
    let i = Tensor::from_vec(vec![0i64, 3, 0, 1], &[4]).unwrap();
    assert_eq!(bools(&f.logical_or(&i).unwrap()), b(&[0, 1, 1, 1]));
}

#[test]
fn where_values_and_dtypes() {
    let c = Tensor::from_vec(vec![true, false, true], &[3]).unwrap();
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let z = Tensor::scalar(-1.0);
    let w = c.where_(&a, &z).unwrap();
    assert_eq!(w.shape(), &[2, 3]);
    assert_eq!(
        w.to_vec::<f32>().unwrap(),
        vec![1.0, -1.0, 3.0, 4.0, -1.0, 6.0]
    );
    // Condition broadcast along rows, branches along columns.
    let cc = Tensor::from_vec(vec![false, true], &[2, 1]).unwrap();
    let x = Tensor::from_vec(vec![10i64, 20, 30], &[3]).unwrap();
    let y = Tensor::from_vec(vec![0i64], &[1]).unwrap();
    let wi = cc.where_(&x, &y).unwrap();
    assert_eq!(wi.dtype(), DType::I64);
    assert_eq!(wi.to_vec::<i64>().unwrap(), vec![0, 0, 0, 10, 20, 30]);
    // A condition from a comparison, on a transposed operand.
    let t = a.t().unwrap();
    let m = t.gt_scalar(3.0).unwrap();
    let r = m.where_(&t, &t.neg().unwrap()).unwrap();
    assert_eq!(
        r.to_vec::<f32>().unwrap(),
        vec![-1.0, 4.0, -2.0, 5.0, -3.0, 6.0]
    );
    // Errors: non-Bool condition, mismatched branch dtypes, shapes.
    assert!(matches!(
        a.where_(&a, &a),
        Err(Error::DTypeMismatch { op: "where", .. })
    ));
    assert!(matches!(
        c.where_(&a, &x),
        Err(Error::DTypeMismatch { op: "where", .. })
    ));
    let e = c.where_(&Tensor::zeros(&[4]), &z).unwrap_err().to_string();
    assert!(e.starts_with("where:"), "{e}");
}

#[test]
fn where_gradients() {
    let cond = uniform(&[3, 1, 5], -1.0, 1.0, 5).gt_scalar(0.0).unwrap();
    let a = uniform(&[3, 4, 5], -1.0, 1.0, 6);
    let bb = uniform(&[4, 1], -1.0, 1.0, 7);
    let c2 = cond.clone();
    GradCheck::default()
        .run(move |t| c2.where_(&t[0], &t[1]), &[a.clone(), bb.clone()])
        .unwrap();
    let c3 = cond.clone();
    GradCheck::default()
        .run(
            move |t| c3.where_(&t[0].permute(&[0, 1, 2])?.exp()?, &t[1].t()?.t()?),
            &[a, bb],
        )
        .unwrap();
    // Exact split: each element of the output sends its gradient to exactly one branch.
    let c = Tensor::from_vec(vec![true, false, true, false], &[4]).unwrap();
    let x = Tensor::ones(&[4]).requires_grad_(true);
    let y = Tensor::scalar(0.0).requires_grad_(true);
    c.where_(&x, &y)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(
        x.grad().unwrap().to_vec::<f32>().unwrap(),
        vec![1.0, 0.0, 1.0, 0.0]
    );
    assert_eq!(y.grad().unwrap().to_vec::<f32>().unwrap(), vec![2.0]);
}

#[test]
fn masked_fill_values_and_gradients() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let m = Tensor::from_vec(vec![false, true, false], &[3]).unwrap();
    let y = x.masked_fill(&m, f32::NEG_INFINITY).unwrap();
    assert_eq!(
        y.to_vec::<f32>().unwrap(),
        vec![1.0, f32::NEG_INFINITY, 3.0, 4.0, f32::NEG_INFINITY, 6.0]
    );
    let i = Tensor::from_vec(vec![1i64, 2, 3], &[3]).unwrap();
    assert_eq!(
        i.masked_fill(&m, 9.0).unwrap().to_vec::<i64>().unwrap(),
        vec![1, 9, 3]
    );
    // Gradient: zero where filled; with broadcasting of the input.
    let mask = uniform(&[3, 4], -1.0, 1.0, 8).gt_scalar(0.2).unwrap();
    let mk = mask.clone();
    GradCheck::default()
        .run(
            move |t| t[0].masked_fill(&mk, 0.5),
            &[uniform(&[3, 4], -1.0, 1.0, 9)],
        )
        .unwrap();
    let mk = mask.clone();
    GradCheck::default()
        .run(
            move |t| t[0].t()?.masked_fill(&mk.t()?, -2.0),
            &[uniform(&[3, 4], -1.0, 1.0, 10)],
        )
        .unwrap();
    let mk = mask.clone();
    GradCheck::default()
        .run(
            move |t| t[0].masked_fill(&mk, 1.0),
            &[uniform(&[4], -1.0, 1.0, 11)],
        )
        .unwrap();
    let xr = Tensor::ones(&[3]).requires_grad_(true);
    xr.masked_fill(&m, 0.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(
        xr.grad().unwrap().to_vec::<f32>().unwrap(),
        vec![1.0, 0.0, 1.0]
    );
    assert!(matches!(
        x.masked_fill(&x, 0.0),
        Err(Error::DTypeMismatch {
            op: "masked_fill",
            ..
        })
    ));
}

#[test]
fn isnan_isfinite() {
    let x = Tensor::from_vec(
        vec![1.0f32, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0],
        &[5],
    )
    .unwrap();
    assert_eq!(bools(&x.isnan().unwrap()), b(&[0, 1, 0, 0, 0]));
    assert_eq!(bools(&x.isfinite().unwrap()), b(&[1, 0, 0, 0, 1]));
    let h = x.to_dtype(DType::BF16).unwrap();
    assert_eq!(bools(&h.isnan().unwrap()), b(&[0, 1, 0, 0, 0]));
    let i = Tensor::from_vec(vec![1i32, 2], &[2]).unwrap();
    assert_eq!(bools(&i.isnan().unwrap()), b(&[0, 0]));
    assert_eq!(bools(&i.isfinite().unwrap()), b(&[1, 1]));
    let t = x.reshape(&[5, 1]).unwrap().t().unwrap();
    assert_eq!(t.isnan().unwrap().shape(), &[1, 5]);
}

#[test]
fn shape_mismatch_names_the_op() {
    let a = Tensor::zeros(&[2, 3]);
    let c = Tensor::zeros(&[4]);
    for (op, r) in [
        ("eq", a.eq(&c)),
        ("ne", a.ne(&c)),
        ("lt", a.lt(&c)),
        ("le", a.le(&c)),
        ("gt", a.gt(&c)),
        ("ge", a.ge(&c)),
        ("logical_and", a.logical_and(&c)),
    ] {
        match r {
            Err(Error::ShapeMismatch {
                op: got, lhs, rhs, ..
            }) => {
                assert_eq!(got, op);
                assert_eq!((lhs, rhs), (vec![2, 3], vec![4]));
            }
            other => panic!("{op}: expected ShapeMismatch, got {other:?}"),
        }
        let msg = match op {
            "eq" => a.eq(&c).unwrap_err().to_string(),
            _ => continue,
        };
        assert!(msg.starts_with("eq: shapes [2, 3] and [4]"), "{msg}");
    }
}
