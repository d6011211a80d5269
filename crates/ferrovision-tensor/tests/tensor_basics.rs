//! Behaviour of the `Tensor` type itself: construction and its errors, typed data access, views
//! sharing storage, `contiguous`, `item`, fills, dtype conversions and printing.

use ferrovision_tensor::{DType, Error, Tensor};

fn f(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

fn iota(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|i| i as f32).collect::<Vec<_>>(), shape).unwrap()
}

// ----- construction -----

#[test]
fn from_vec_checks_the_length() {
    let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    assert_eq!(t.shape(), &[2, 3]);
    assert_eq!((t.rank(), t.numel(), t.dtype()), (2, 6, DType::F32));
    let e = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[2, 2]).unwrap_err();
    assert_eq!(
        e,
        Error::DataLength {
            op: "from_vec",
            len: 3,
            shape: vec![2, 2],
            expected: 4
        }
    );
    let msg = e.to_string();
    assert!(
        msg.starts_with("from_vec:") && msg.contains("[2, 2]") && msg.contains('3'),
        "{msg}"
    );
    assert!(Tensor::from_vec(vec![1i64; 5], &[6]).is_err());
    assert!(Tensor::from_slice(&[true, false], &[3]).is_err());
    // 0-d takes exactly one value; a zero-size shape takes none.
    assert_eq!(Tensor::from_vec(vec![7i64], &[]).unwrap().rank(), 0);
    assert!(Tensor::from_vec(Vec::<f32>::new(), &[]).is_err());
    assert_eq!(
        Tensor::from_vec(Vec::<u8>::new(), &[0, 4]).unwrap().numel(),
        0
    );
    assert!(Tensor::from_vec(vec![1u8], &[0]).is_err());
}

#[test]
fn every_dtype_round_trips_through_vectors() {
    let a = Tensor::from_slice(&[1i64, -2, 3], &[3]).unwrap();
    assert_eq!(
        (a.dtype(), a.to_vec::<i64>().unwrap()),
        (DType::I64, vec![1, -2, 3])
    );
    let b = Tensor::from_slice(&[1i32, -2], &[2]).unwrap();
    assert_eq!(b.dtype(), DType::I32);
    let c = Tensor::from_slice(&[0u8, 255], &[2]).unwrap();
    assert_eq!(c.to_vec::<u8>().unwrap(), vec![0, 255]);
    let d = Tensor::from_slice(&[true, false], &[2]).unwrap();
    assert_eq!(d.dtype(), DType::Bool);
    let h = Tensor::from_slice(&[half::f16::from_f32(1.5)], &[1]).unwrap();
    assert_eq!(h.dtype(), DType::F16);
    let bh = Tensor::from_slice(&[half::bf16::from_f32(-1.5)], &[1]).unwrap();
    assert_eq!(bh.dtype(), DType::BF16);
    assert_eq!(bh.to_f64_vec().unwrap(), vec![-1.5]);
    assert_eq!(d.to_f64_vec().unwrap(), vec![1.0, 0.0]);
    for (dt, size) in [
        (DType::F32, 4),
        (DType::F16, 2),
        (DType::BF16, 2),
        (DType::I64, 8),
        (DType::I32, 4),
        (DType::U8, 1),
        (DType::Bool, 1),
    ] {
        assert_eq!(dt.size_of(), size);
    }
    assert!(DType::BF16.is_float() && !DType::I64.is_float() && !DType::Bool.is_int());
    assert!(DType::U8.is_int());
}

#[test]
fn to_vec_with_the_wrong_type_is_a_dtype_error() {
    let t = iota(&[2]);
    let e = t.to_vec::<i64>().unwrap_err();
    assert!(
        matches!(
            e,
            Error::DTypeMismatch {
                op: "to_vec",
                got: DType::F32,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("I64"), "{e}");
    let i = Tensor::from_slice(&[1i64], &[1]).unwrap();
    assert!(i.to_vec::<f32>().is_err());
    assert!(i.to_vec::<i32>().is_err());
    assert!(matches!(
        i.update_with_grad_(&Tensor::ones(&[1]), "my_op", |w, _| w.len())
            .unwrap_err(),
        Error::DTypeMismatch { op: "my_op", .. }
    ));
    // Float ops name themselves when given integers.
    let e = i.exp().unwrap_err();
    assert!(e.to_string().starts_with("exp:"), "{e}");
}

// ----- views and storage -----

#[test]
fn views_share_storage() {
    let x = iota(&[2, 3, 4]);
    let views = [
        x.reshape(&[6, 4]).unwrap(),
        x.permute(&[2, 0, 1]).unwrap(),
        x.transpose(0, 2).unwrap(),
        x.narrow(1, 1, 2).unwrap(),
        x.slice(2, 0, 4, 2).unwrap(),
        x.unsqueeze(0).unwrap(),
        x.flatten(0, 1).unwrap(),
        x.detach(),
        x.narrow(0, 1, 1).unwrap().squeeze(0).unwrap(),
    ];
    for v in &views {
        assert!(v.same_storage(&x), "{:?}", v.shape());
        assert_ne!(v.id(), x.id());
    }
    let e = Tensor::ones(&[3, 1]).expand(&[3, 5]).unwrap();
    assert_eq!(e.strides(), &[1, 0]);
    assert_eq!(f(&e), vec![1.0; 15]);
    // In-place writes through one handle are seen by its views.
    let base = iota(&[2, 2]);
    let view = base.reshape(&[4]).unwrap();
    base.assign_from_slice_(&[0., 1., 2., 30.]).unwrap();
    assert_eq!(f(&view), vec![0., 1., 2., 30.]);
    assert!(base.t().unwrap().assign_from_slice_(&[0.0; 4]).is_err());
    // Copies do not share.
    assert!(!x.flip(&[0]).unwrap().same_storage(&x));
    assert!(!iota(&[2]).same_storage(&iota(&[2])));
}

#[test]
fn contiguous_copies_only_strided_views() {
    let x = iota(&[2, 3]);
    assert!(x.is_contiguous());
    let same = x.contiguous().unwrap();
    assert!(same.same_storage(&x));
    let p = x.t().unwrap();
    assert!(!p.is_contiguous());
    assert_eq!(p.strides(), &[1, 3]);
    assert_eq!(f(&p), vec![0., 3., 1., 4., 2., 5.]);
    let c = p.contiguous().unwrap();
    assert!(c.is_contiguous() && !c.same_storage(&x));
    assert_eq!(c.strides(), &[2, 1]);
    assert_eq!(f(&c), vec![0., 3., 1., 4., 2., 5.]);
    // A contiguous window at an offset is compacted into its own storage.
    let w = iota(&[4, 2]).narrow(0, 1, 2).unwrap();
    assert!(w.is_contiguous());
    let wc = w.contiguous().unwrap();
    assert_eq!(f(&wc), vec![2., 3., 4., 5.]);
    // Integer and bool views too.
    let m = Tensor::from_slice(&[true, false, false, true, true, false], &[2, 3]).unwrap();
    let mt = m.t().unwrap().contiguous().unwrap();
    assert_eq!(
        mt.to_vec::<bool>().unwrap(),
        vec![true, true, false, true, false, false]
    );
    // contiguous passes gradients through.
    let w = iota(&[2, 3]).requires_grad_(true);
    w.t()
        .unwrap()
        .contiguous()
        .unwrap()
        .mul_scalar(2.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(f(&w.grad().unwrap()), vec![2.0; 6]);
}

#[test]
fn shape_accessors() {
    let x = iota(&[2, 3, 4]);
    assert_eq!(x.dims(), &[2, 3, 4]);
    assert_eq!(x.dim(-1).unwrap(), 4);
    assert_eq!(x.dim(0).unwrap(), 2);
    assert!(matches!(
        x.dim(3).unwrap_err(),
        Error::AxisOutOfRange {
            op: "dim",
            axis: 3,
            rank: 3
        }
    ));
    assert_eq!(x.strides(), &[12, 4, 1]);
    assert_eq!(Tensor::scalar(1.0).rank(), 0);
    assert_eq!(Tensor::scalar(1.0).numel(), 1);
    assert_eq!(Tensor::zeros(&[3, 0]).numel(), 0);
}

// ----- item -----

#[test]
fn item_reads_one_element() {
    assert_eq!(Tensor::scalar(2.5).item().unwrap(), 2.5);
    assert_eq!(Tensor::full(&[1, 1, 1], 7i64).item().unwrap(), 7.0);
    assert_eq!(
        Tensor::from_slice(&[true], &[1]).unwrap().item().unwrap(),
        1.0
    );
    assert_eq!(iota(&[3]).narrow(0, 2, 1).unwrap().item().unwrap(), 2.0);
    let e = iota(&[2]).item().unwrap_err();
    assert!(matches!(e, Error::BadShape { op: "item", .. }), "{e:?}");
    assert!(Tensor::zeros(&[0]).item().is_err());
    let s = iota(&[3]).sum_all().unwrap();
    assert_eq!(s.item().unwrap(), 3.0);
}

// ----- fills -----

#[test]
fn full_zeros_ones() {
    assert_eq!(f(&Tensor::zeros(&[2, 2])), vec![0.0; 4]);
    assert_eq!(f(&Tensor::ones(&[3])), vec![1.0; 3]);
    let big = Tensor::zeros(&[100, 100]); // from the buffer pool
    assert!(f(&big).iter().all(|&v| v == 0.0));
    assert_eq!(f(&Tensor::full(&[2], -1.5f32)), vec![-1.5, -1.5]);
    let fi = Tensor::full(&[2, 2], 9i64);
    assert_eq!(
        (fi.dtype(), fi.to_vec::<i64>().unwrap()),
        (DType::I64, vec![9; 4])
    );
    assert_eq!(
        Tensor::full(&[3], true).to_vec::<bool>().unwrap(),
        vec![true; 3]
    );
    assert_eq!(Tensor::full(&[1], 3u8).dtype(), DType::U8);
    assert_eq!(Tensor::full(&[], 4.0f32).shape(), &[] as &[usize]);
    let x = iota(&[2, 3]).t().unwrap();
    assert_eq!(x.zeros_like().shape(), &[3, 2]);
    assert_eq!(f(&x.ones_like()), vec![1.0; 6]);
    for dt in [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
        DType::U8,
        DType::Bool,
    ] {
        let z = Tensor::zeros_dtype(&[2, 3], dt);
        assert_eq!((z.dtype(), z.shape()), (dt, &[2usize, 3][..]));
        assert_eq!(z.to_f64_vec().unwrap(), vec![0.0; 6]);
    }
}

// ----- dtype conversions -----

#[test]
fn dtype_conversions() {
    let x = Tensor::from_slice(&[2.7f32, -2.7, 0.0, 0.5, -0.0, 300.0], &[6]).unwrap();
    // Floats to ints truncate toward zero.
    assert_eq!(
        x.to_dtype(DType::I64).unwrap().to_vec::<i64>().unwrap(),
        vec![2, -2, 0, 0, 0, 300]
    );
    assert_eq!(
        x.to_dtype(DType::I32).unwrap().to_vec::<i32>().unwrap(),
        vec![2, -2, 0, 0, 0, 300]
    );
    // u8 saturates like `as`.
    assert_eq!(
        x.to_dtype(DType::U8).unwrap().to_vec::<u8>().unwrap(),
        vec![2, 0, 0, 0, 0, 255]
    );
    // Bool: nonzero is true.
    assert_eq!(
        x.to_dtype(DType::Bool).unwrap().to_vec::<bool>().unwrap(),
        vec![true, true, false, true, false, true]
    );
    let m = Tensor::from_slice(&[true, false], &[2]).unwrap();
    assert_eq!(f(&m.to_dtype(DType::F32).unwrap()), vec![1.0, 0.0]);
    assert_eq!(
        m.to_dtype(DType::I64).unwrap().to_vec::<i64>().unwrap(),
        vec![1, 0]
    );
    let i = Tensor::from_slice(&[-3i64, 7], &[2]).unwrap();
    assert_eq!(f(&i.to_dtype(DType::F32).unwrap()), vec![-3.0, 7.0]);
    assert_eq!(
        i.to_dtype(DType::Bool).unwrap().to_vec::<bool>().unwrap(),
        vec![true, true]
    );
    // Same dtype is the same tensor; strided views convert in logical order.
    assert!(x.to_dtype(DType::F32).unwrap().same_storage(&x));
    let t = iota(&[2, 3]).t().unwrap();
    assert_eq!(
        t.to_dtype(DType::I64).unwrap().to_vec::<i64>().unwrap(),
        vec![0, 3, 1, 4, 2, 5]
    );
    let h = t.to_dtype(DType::F16).unwrap();
    assert_eq!(h.shape(), &[3, 2]);
    assert!(h.is_contiguous());
}

// ----- printing -----

#[test]
fn display_formats() {
    let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    assert_eq!(x.to_string(), "[[1.0000, 2.0000],\n [3.0000, 4.0000]]");
    assert_eq!(
        Tensor::from_slice(&[1i64, -20, 300], &[3])
            .unwrap()
            .to_string(),
        "[1, -20, 300]"
    );
    assert_eq!(
        Tensor::from_slice(&[true, false], &[2])
            .unwrap()
            .to_string(),
        "[true, false]"
    );
    assert_eq!(Tensor::scalar(3.5).to_string(), "3.5000");
    assert_eq!(Tensor::full(&[], 4i64).to_string(), "4");
    assert_eq!(Tensor::zeros(&[0, 3]).to_string(), "[] (shape [0, 3])");
    // Long dimensions are elided in the middle.
    let v = iota(&[8]);
    assert_eq!(
        v.to_string(),
        "[0.0000, 1.0000, 2.0000, ..., 5.0000, 6.0000, 7.0000]"
    );
    assert_eq!(
        iota(&[7]).to_string(),
        "[0.0000, 1.0000, 2.0000, 3.0000, 4.0000, 5.0000, 6.0000]"
    );
    let big = iota(&[20, 30]).to_string();
    assert_eq!(big.lines().count(), 7);
    assert!(big.starts_with("[[0.0000, 1.0000, 2.0000, ..., 27.0000, 28.0000, 29.0000],"));
    assert!(big.ends_with("597.0000, 598.0000, 599.0000]]"), "{big}");
    let three = iota(&[2, 1, 2]).to_string();
    assert_eq!(three, "[[[0.0000, 1.0000]],\n [[2.0000, 3.0000]]]");
    // A strided view prints in logical order.
    assert_eq!(
        iota(&[2, 2]).t().unwrap().to_string(),
        "[[0.0000, 2.0000],\n [1.0000, 3.0000]]"
    );
    // Half precision prints as float.
    assert_eq!(
        iota(&[2]).to_dtype(DType::F16).unwrap().to_string(),
        "[0.0000, 1.0000]"
    );
}

#[test]
fn debug_shows_shape_dtype_and_grad() {
    let x = iota(&[2]);
    assert_eq!(
        format!("{x:?}"),
        "Tensor(shape=[2], dtype=F32, device=Cpu)\n[0.0000, 1.0000]"
    );
    let w = x.requires_grad_(true);
    assert!(format!("{w:?}").starts_with("Tensor(shape=[2], dtype=F32, device=Cpu, requires_grad)"));
    let b = Tensor::from_slice(&[false], &[1, 1]).unwrap();
    assert_eq!(
        format!("{b:?}"),
        "Tensor(shape=[1, 1], dtype=Bool, device=Cpu)\n[[false]]"
    );
}

#[test]
fn overflowing_shape_is_an_error() {
    let e = Tensor::from_vec(Vec::<f32>::new(), &[1 << 63, 2])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("from_vec") && e.contains("overflows"), "{e}");
}

// ----- in-place updates -----

#[test]
fn in_place_updates_check_their_arguments() {
    let w = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap();
    let g = Tensor::from_vec(vec![0.5f32, 0.5, 0.5], &[3]).unwrap();
    let seen = w
        .update_with_grad_(&g, "step", |w, g| {
            for (w, g) in w.iter_mut().zip(g) {
                *w -= g;
            }
            w.len()
        })
        .unwrap();
    assert_eq!(seen, 3);
    assert_eq!(f(&w), vec![0.5, 1.5, 2.5]);
    // Wrong size, aliasing and a wrong-length assignment are errors, not panics or deadlocks.
    assert!(w
        .update_with_grad_(&Tensor::ones(&[2]), "step", |_, _| ())
        .is_err());
    let alias = w.reshape(&[3]).unwrap();
    assert!(w.update_with_grad_(&alias, "step", |_, _| ()).is_err());
    assert!(w.assign_from_slice_(&[1.0]).is_err());
    // Sum of squares in f64, over strided views too.
    let m = Tensor::from_vec((1..=10).map(|v| v as f32).collect(), &[2, 5]).unwrap();
    assert_eq!(m.sum_squares_f64().unwrap(), 385.0);
    assert_eq!(m.t().unwrap().sum_squares_f64().unwrap(), 385.0);
}
