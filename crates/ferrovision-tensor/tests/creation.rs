//! Creation ops: ranges, eye, seeded random tensors (statistics and reproducibility), half
//! precision round trips and how created tensors print.

use ferrovision_tensor::rng::Rng;
use ferrovision_tensor::{DType, Error, Tensor};

fn f(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

fn is_invalid(e: Error, op: &str) -> bool {
    matches!(e, Error::InvalidArgument { op: o, .. } if o == op)
}

// ----- ranges -----

#[test]
fn arange_matches_torch() {
    assert_eq!(
        f(&Tensor::arange(0.0, 5.0, 1.0).unwrap()),
        vec![0., 1., 2., 3., 4.]
    );
    assert_eq!(
        f(&Tensor::arange(1.0, 2.5, 0.5).unwrap()),
        vec![1.0, 1.5, 2.0]
    );
    assert_eq!(
        f(&Tensor::arange(5.0, 0.0, -2.0).unwrap()),
        vec![5., 3., 1.]
    );
    // torch.arange(0, 0.3, 0.1) has 3 elements (the length comes from the decimal values).
    let t = Tensor::arange(0.0, 0.3, 0.1).unwrap();
    assert_eq!(t.shape(), &[3]);
    assert_eq!(f(&t), vec![0.0, 0.1, 0.2]);
    assert_eq!(Tensor::arange(0.0, 1.0, 0.1).unwrap().numel(), 10);
    assert_eq!(Tensor::arange(-1.0, 1.0, 0.3).unwrap().numel(), 7);
    let e = Tensor::arange(2.0, 2.0, 1.0).unwrap();
    assert_eq!(e.shape(), &[0]);
    assert_eq!(e.dtype(), DType::F32);
    assert!(is_invalid(
        Tensor::arange(0.0, 1.0, 0.0).unwrap_err(),
        "arange"
    ));
    assert!(is_invalid(
        Tensor::arange(0.0, 1.0, -1.0).unwrap_err(),
        "arange"
    ));
    assert!(Tensor::arange(0.0, f32::NAN, 1.0).is_err());
    assert!(Tensor::arange(0.0, f32::INFINITY, 1.0).is_err());
    assert!(Tensor::arange(0.0, 1e30, 1e-30).is_err());
}

#[test]
fn arange_i64_values_and_errors() {
    let ints = |t: Tensor| t.to_vec::<i64>().unwrap();
    assert_eq!(
        ints(Tensor::arange_i64(0, 10, 3).unwrap()),
        vec![0, 3, 6, 9]
    );
    assert_eq!(
        ints(Tensor::arange_i64(10, 0, -3).unwrap()),
        vec![10, 7, 4, 1]
    );
    assert_eq!(
        ints(Tensor::arange_i64(-3, 0, 1).unwrap()),
        vec![-3, -2, -1]
    );
    assert_eq!(Tensor::arange_i64(-5, -5, 1).unwrap().shape(), &[0]);
    assert_eq!(Tensor::arange_i64(0, 5, 1).unwrap().dtype(), DType::I64);
    assert_eq!(
        ints(Tensor::arange_i64(i64::MIN, i64::MIN + 3, 2).unwrap()),
        vec![i64::MIN, i64::MIN + 2]
    );
    assert_eq!(
        ints(Tensor::arange_i64(i64::MAX - 1, i64::MAX, 5).unwrap()),
        vec![i64::MAX - 1]
    );
    assert!(is_invalid(
        Tensor::arange_i64(0, 3, 0).unwrap_err(),
        "arange_i64"
    ));
    assert!(is_invalid(
        Tensor::arange_i64(3, 0, 1).unwrap_err(),
        "arange_i64"
    ));
    assert!(Tensor::arange_i64(i64::MIN, i64::MAX, 1).is_err()); // absurdly long
}

#[test]
fn linspace_matches_torch() {
    assert_eq!(
        f(&Tensor::linspace(0.0, 1.0, 5).unwrap()),
        vec![0.0, 0.25, 0.5, 0.75, 1.0]
    );
    assert_eq!(
        f(&Tensor::linspace(-10.0, 10.0, 5).unwrap()),
        vec![-10.0, -5.0, 0.0, 5.0, 10.0]
    );
    assert_eq!(f(&Tensor::linspace(3.0, 10.0, 1).unwrap()), vec![3.0]);
    assert_eq!(Tensor::linspace(0.0, 1.0, 0).unwrap().shape(), &[0]);
    // Both ends are exact, the middle is symmetric, descending works.
    let t = f(&Tensor::linspace(0.1, 0.7, 7).unwrap());
    assert_eq!((t[0], t[6]), (0.1, 0.7));
    for (k, v) in t.iter().enumerate() {
        assert!((v - (0.1 + 0.1 * k as f32)).abs() < 1e-6, "{t:?}");
    }
    assert_eq!(
        f(&Tensor::linspace(2.0, -2.0, 3).unwrap()),
        vec![2.0, 0.0, -2.0]
    );
    assert!(Tensor::linspace(0.0, f32::NAN, 3).is_err());
}

#[test]
fn eye_is_identity() {
    let e = Tensor::eye(3);
    assert_eq!(e.shape(), &[3, 3]);
    assert_eq!(f(&e), vec![1., 0., 0., 0., 1., 0., 0., 0., 1.]);
    assert_eq!(Tensor::eye(0).shape(), &[0, 0]);
    assert_eq!(f(&Tensor::eye(1)), vec![1.0]);
}

// ----- random -----

#[test]
fn rand_is_uniform_in_unit_interval() {
    let mut rng = Rng::new(1);
    let t = Tensor::rand(&[200, 500], &mut rng);
    assert_eq!((t.shape(), t.dtype()), (&[200usize, 500][..], DType::F32));
    let v = f(&t);
    assert!(v.iter().all(|&x| (0.0..1.0).contains(&x)));
    let (m, s) = mean_std(&v);
    assert!((m - 0.5).abs() < 0.005, "{m}");
    assert!((s - (1.0f64 / 12.0).sqrt()).abs() < 0.005, "{s}");
    // Every tenth of the interval gets about a tenth of the samples.
    let mut bins = [0usize; 10];
    for &x in &v {
        bins[(x * 10.0) as usize] += 1;
    }
    assert!(
        bins.iter().all(|&b| (9_500..10_500).contains(&b)),
        "{bins:?}"
    );
}

#[test]
fn rand_uniform_bounds_and_errors() {
    let mut rng = Rng::new(2);
    let v = f(&Tensor::rand_uniform(&[100_000], -3.0, 5.0, &mut rng).unwrap());
    assert!(v.iter().all(|&x| (-3.0..5.0).contains(&x)));
    let (m, s) = mean_std(&v);
    assert!((m - 1.0).abs() < 0.05, "{m}");
    assert!((s - 8.0 / 12f64.sqrt()).abs() < 0.05, "{s}");
    // A width of one ulp still stays below hi.
    let hi = 1.0 + f32::EPSILON;
    let v = f(&Tensor::rand_uniform(&[1000], 1.0, hi, &mut rng).unwrap());
    assert!(v.iter().all(|&x| x == 1.0));
    let same = f(&Tensor::rand_uniform(&[4], 2.5, 2.5, &mut rng).unwrap());
    assert_eq!(same, vec![2.5; 4]);
    assert!(is_invalid(
        Tensor::rand_uniform(&[2], 1.0, 0.0, &mut rng).unwrap_err(),
        "rand_uniform"
    ));
    assert!(Tensor::rand_uniform(&[2], 0.0, f32::NAN, &mut rng).is_err());
    assert!(Tensor::rand_uniform(&[2], -f32::MAX, f32::MAX, &mut rng).is_err());
}

#[test]
fn randn_mean_and_std() {
    let mut rng = Rng::new(3);
    let v = f(&Tensor::randn(&[100_000], 2.0, 3.0, &mut rng).unwrap());
    let (m, s) = mean_std(&v);
    assert!((m - 2.0).abs() < 0.04, "{m}");
    assert!((s - 3.0).abs() < 0.04, "{s}");
    // About 68.3% within one std, 95.4% within two.
    let within = |k: f32| v.iter().filter(|&&x| (x - 2.0).abs() < 3.0 * k).count() as f64 / 1e5;
    assert!((within(1.0) - 0.6827).abs() < 0.01);
    assert!((within(2.0) - 0.9545).abs() < 0.005);
    // Odd sizes (Box-Muller makes pairs) and std 0.
    assert_eq!(
        Tensor::randn(&[3, 3], 0.0, 1.0, &mut rng).unwrap().numel(),
        9
    );
    assert_eq!(
        f(&Tensor::randn(&[3], 1.5, 0.0, &mut rng).unwrap()),
        vec![1.5; 3]
    );
    assert!(is_invalid(
        Tensor::randn(&[2], 0.0, -1.0, &mut rng).unwrap_err(),
        "randn"
    ));
}

#[test]
fn truncated_normal_stays_within_two_std() {
    let mut rng = Rng::new(4);
    let (mean, std) = (-1.0f32, 0.5f32);
    let v = f(&Tensor::truncated_normal(&[100_000], mean, std, &mut rng).unwrap());
    assert!(v
        .iter()
        .all(|&x| x >= mean - 2.0 * std && x <= mean + 2.0 * std));
    let (m, s) = mean_std(&v);
    assert!((m - mean as f64).abs() < 0.01, "{m}");
    // Standard deviation of a standard normal truncated to [-2, 2]: 0.8796.
    assert!((s - 0.8796 * std as f64).abs() < 0.01, "{s}");
    // Values near the bounds do occur (it is not clipped to a narrower range).
    assert!(v.iter().any(|&x| x > mean + 1.9 * std));
    assert!(v.iter().any(|&x| x < mean - 1.9 * std));
    assert!(Tensor::truncated_normal(&[2], 0.0, -0.1, &mut rng).is_err());
}

#[test]
fn bernoulli_frequency() {
    let mut rng = Rng::new(5);
    let v = f(&Tensor::bernoulli(&[100_000], 0.3, &mut rng).unwrap());
    assert!(v.iter().all(|&x| x == 0.0 || x == 1.0));
    let freq = v.iter().sum::<f32>() as f64 / 1e5;
    assert!((freq - 0.3).abs() < 0.006, "{freq}");
    assert!(f(&Tensor::bernoulli(&[100], 0.0, &mut rng).unwrap())
        .iter()
        .all(|&x| x == 0.0));
    assert!(f(&Tensor::bernoulli(&[100], 1.0, &mut rng).unwrap())
        .iter()
        .all(|&x| x == 1.0));
    assert!(is_invalid(
        Tensor::bernoulli(&[2], 1.5, &mut rng).unwrap_err(),
        "bernoulli"
    ));
    assert!(Tensor::bernoulli(&[2], f32::NAN, &mut rng).is_err());
}

#[test]
fn randperm_is_a_uniform_permutation() {
    let mut rng = Rng::new(6);
    let p = Tensor::randperm(1000, &mut rng);
    assert_eq!((p.shape(), p.dtype()), (&[1000usize][..], DType::I64));
    let mut v = p.to_vec::<i64>().unwrap();
    assert_ne!(v, (0..1000).collect::<Vec<i64>>());
    v.sort_unstable();
    assert_eq!(v, (0..1000).collect::<Vec<i64>>());
    assert_eq!(Tensor::randperm(0, &mut rng).shape(), &[0]);
    assert_eq!(
        Tensor::randperm(1, &mut rng).to_vec::<i64>().unwrap(),
        vec![0]
    );
    // All 6 orders of 3 elements are about equally likely.
    let mut counts = std::collections::HashMap::new();
    for _ in 0..6000 {
        *counts
            .entry(Tensor::randperm(3, &mut rng).to_vec::<i64>().unwrap())
            .or_insert(0usize) += 1;
    }
    assert_eq!(counts.len(), 6);
    assert!(
        counts.values().all(|&c| (850..1150).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn randint_range_and_errors() {
    let mut rng = Rng::new(7);
    let t = Tensor::randint(&[50, 200], -3, 4, &mut rng).unwrap();
    assert_eq!(t.dtype(), DType::I64);
    let v = t.to_vec::<i64>().unwrap();
    assert!(v.iter().all(|&x| (-3..4).contains(&x)));
    for k in -3..4 {
        let c = v.iter().filter(|&&x| x == k).count();
        assert!((1_300..1_560).contains(&c), "{k}: {c}");
    }
    let wide = Tensor::randint(&[8], i64::MIN, i64::MAX, &mut rng).unwrap();
    assert_eq!(wide.numel(), 8);
    assert_eq!(
        Tensor::randint(&[3], 9, 10, &mut rng)
            .unwrap()
            .to_vec::<i64>()
            .unwrap(),
        vec![9; 3]
    );
    assert!(is_invalid(
        Tensor::randint(&[2], 5, 5, &mut rng).unwrap_err(),
        "randint"
    ));
}

#[test]
fn same_seed_same_tensor_different_seeds_differ() {
    type Gen = fn(&mut Rng) -> Tensor;
    let gens: [Gen; 7] = [
        |r| Tensor::rand(&[64], r),
        |r| Tensor::rand_uniform(&[64], -1.0, 1.0, r).unwrap(),
        |r| Tensor::randn(&[64], 0.0, 1.0, r).unwrap(),
        |r| Tensor::truncated_normal(&[64], 0.0, 1.0, r).unwrap(),
        |r| Tensor::bernoulli(&[64], 0.5, r).unwrap(),
        |r| Tensor::randperm(64, r),
        |r| Tensor::randint(&[64], 0, 1000, r).unwrap(),
    ];
    for (k, g) in gens.iter().enumerate() {
        let a = g(&mut Rng::new(42)).to_f64_vec().unwrap();
        let b = g(&mut Rng::new(42)).to_f64_vec().unwrap();
        let c = g(&mut Rng::new(43)).to_f64_vec().unwrap();
        assert_eq!(a, b, "generator {k}");
        assert_ne!(a, c, "generator {k}");
        // Consecutive draws from one generator differ too.
        let mut r = Rng::new(42);
        let first = g(&mut r).to_f64_vec().unwrap();
        assert_ne!(first, g(&mut r).to_f64_vec().unwrap(), "generator {k}");
    }
}

// ----- half precision and printing -----

#[test]
fn half_precision_round_trips() {
    let exact = vec![0.0f32, -0.0, 1.0, -2.5, 0.125, 1024.0, 65504.0];
    let t = Tensor::from_vec(exact.clone(), &[7]).unwrap();
    for d in [DType::F16, DType::BF16] {
        let h = t.to_dtype(d).unwrap();
        assert_eq!(h.dtype(), d);
        let back = h.to_dtype(DType::F32).unwrap();
        if d == DType::F16 {
            assert_eq!(f(&back), exact);
        }
    }
    assert_eq!(
        t.to_dtype(DType::F16)
            .unwrap()
            .to_vec::<half::f16>()
            .unwrap()[3],
        half::f16::from_f32(-2.5)
    );
    let mut rng = Rng::new(9);
    let x = Tensor::randn(&[1000], 0.0, 10.0, &mut rng).unwrap();
    let xv = f(&x);
    for (d, rel) in [(DType::F16, 1.0 / 1024.0), (DType::BF16, 1.0 / 128.0)] {
        let back = f(&x.to_dtype(d).unwrap().to_dtype(DType::F32).unwrap());
        for (a, b) in xv.iter().zip(&back) {
            assert!((a - b).abs() <= a.abs() * rel + 1e-6, "{d:?}: {a} vs {b}");
        }
    }
    // Range: f16 overflows to infinity above 65504, bf16 keeps the f32 exponent range.
    let big = Tensor::from_vec(vec![1e5f32, 1e30], &[2]).unwrap();
    let h = f(&big
        .to_dtype(DType::F16)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap());
    assert!(h[0].is_infinite() && h[1].is_infinite());
    let b = f(&big
        .to_dtype(DType::BF16)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap());
    assert!((b[1] / 1e30 - 1.0).abs() < 1e-2);
    // The conversion is differentiable (identity gradient).
    let w = Tensor::from_vec(vec![1.0f32, 2.0], &[2])
        .unwrap()
        .requires_grad_(true);
    w.to_dtype(DType::F16)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .mul_scalar(3.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(f(&w.grad().unwrap()), vec![3.0, 3.0]);
}

#[test]
fn created_tensors_print() {
    assert_eq!(
        Tensor::arange(0.0, 3.0, 1.0).unwrap().to_string(),
        "[0.0000, 1.0000, 2.0000]"
    );
    assert_eq!(
        Tensor::arange(0.0, 100.0, 1.0).unwrap().to_string(),
        "[0.0000, 1.0000, 2.0000, ..., 97.0000, 98.0000, 99.0000]"
    );
    assert_eq!(
        Tensor::arange_i64(0, 3, 1).unwrap().to_string(),
        "[0, 1, 2]"
    );
    assert_eq!(
        Tensor::eye(2).to_string(),
        "[[1.0000, 0.0000],\n [0.0000, 1.0000]]"
    );
    let big = Tensor::eye(10).to_string();
    assert_eq!(big.lines().count(), 7, "{big}");
    assert!(
        big.lines().nth(3).unwrap().trim_start().starts_with("...,"),
        "{big}"
    );
    let dbg = format!("{:?}", Tensor::randperm(4, &mut Rng::new(0)));
    assert!(
        dbg.starts_with("Tensor(shape=[4], dtype=I64, device=Cpu)\n["),
        "{dbg}"
    );
}
