//! Dropout and spatial dropout: mask statistics, scaling, reproducibility (per seed and across
//! thread counts), whole-channel drops, edge values of `p`, and gradients.
// `&[x.clone()]` reads better than `std::slice::from_ref(&x)` in gradient-check calls.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;
use common::uniform;
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::rng::{manual_seed, Rng};
use ferrovision_tensor::Tensor;

#[test]
fn fraction_dropped_and_scaling() {
    let n = 400_000;
    let x = Tensor::ones(&[n]);
    for p in [0.1f32, 0.5, 0.8] {
        let y = x
            .dropout(p, true, &mut Rng::new(3))
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let scale = 1.0 / (1.0 - p);
        let zeros = y.iter().filter(|&&v| v == 0.0).count();
        assert!(y.iter().all(|&v| v == 0.0 || v == scale));
        let frac = zeros as f64 / n as f64;
        assert!((frac - p as f64).abs() < 0.005, "p {p}: dropped {frac}");
        // Inverted scaling keeps the mean.
        let mean = y.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.02, "p {p}: mean {mean}");
    }
}

#[test]
fn values_are_scaled_inputs() {
    let x = uniform(&[7, 11], -3.0, 3.0, 1);
    let y = x.dropout(0.3, true, &mut Rng::new(5)).unwrap();
    assert_eq!(y.shape(), &[7, 11]);
    for (a, b) in x
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .zip(y.to_vec::<f32>().unwrap())
    {
        assert!(b == 0.0 || b == a * (1.0 / 0.7f32), "{a} -> {b}");
    }
}

#[test]
fn reproducible_per_seed_and_thread_count() {
    // Big enough for several independently seeded chunks (and the parallel path).
    let x = uniform(&[300_001], -1.0, 1.0, 2);
    let a = x.dropout(0.5, true, &mut Rng::new(42)).unwrap();
    let b = x.dropout(0.5, true, &mut Rng::new(42)).unwrap();
    let c = x.dropout(0.5, true, &mut Rng::new(43)).unwrap();
    let (av, bv, cv) = (
        a.to_vec::<f32>().unwrap(),
        b.to_vec::<f32>().unwrap(),
        c.to_vec::<f32>().unwrap(),
    );
    assert_eq!(av, bv);
    assert_ne!(av, cv);
    // One thread gives the same mask as the global pool.
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| x.dropout(0.5, true, &mut Rng::new(42)).unwrap());
    assert_eq!(single.to_vec::<f32>().unwrap(), av);
    // Consecutive calls on one generator draw different masks.
    let mut rng = Rng::new(7);
    let m1 = x
        .dropout(0.5, true, &mut rng)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let m2 = x
        .dropout(0.5, true, &mut rng)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_ne!(m1, m2);
}

#[test]
fn global_generator() {
    let x = Tensor::ones(&[1000]);
    manual_seed(11);
    let a = x
        .dropout_global(0.5, true)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let a2 = x
        .dropout_global(0.5, true)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    manual_seed(11);
    let b = x
        .dropout_global(0.5, true)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, a2);
    let x4 = Tensor::ones(&[4, 8, 2, 2]);
    manual_seed(12);
    let s = x4.spatial_dropout_global(0.5, true).unwrap();
    manual_seed(12);
    let s2 = x4.spatial_dropout_global(0.5, true).unwrap();
    assert_eq!(s.to_vec::<f32>().unwrap(), s2.to_vec::<f32>().unwrap());
}

#[test]
fn edge_probabilities_and_modes() {
    let x = uniform(&[3, 4], -1.0, 1.0, 3);
    let mut rng = Rng::new(1);
    // Identity in inference or with p = 0.
    for (p, training) in [(0.5, false), (0.0, true), (1.0, false)] {
        let y = x.dropout(p, training, &mut rng).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
        let y = x.spatial_dropout(p, training, &mut rng).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
    }
    // p = 1 drops everything, with a zero gradient.
    let xv = x.clone().requires_grad_(true);
    let y = xv.dropout(1.0, true, &mut rng).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![0.0; 12]);
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(xv.grad().unwrap().to_vec::<f32>().unwrap(), vec![0.0; 12]);
    let y = x.spatial_dropout(1.0, true, &mut rng).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![0.0; 12]);
    // Invalid p, even in inference.
    for p in [-0.1f32, 1.5, f32::NAN] {
        for training in [true, false] {
            let e = x.dropout(p, training, &mut rng).unwrap_err().to_string();
            assert!(
                e.contains("dropout") && e.contains("between 0 and 1"),
                "{e}"
            );
            assert!(x.spatial_dropout(p, training, &mut rng).is_err());
        }
    }
    let e = Tensor::ones(&[5])
        .spatial_dropout(0.5, true, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("spatial_dropout") && e.contains("[N, C, ...]"),
        "{e}"
    );
}

#[test]
fn backward_uses_the_mask() {
    let x = Tensor::ones(&[50_000]).requires_grad_(true);
    let y = x.dropout(0.25, true, &mut Rng::new(9)).unwrap();
    y.sum_all().unwrap().backward().unwrap();
    // With x = 1, y = mask · scale, which is exactly the gradient.
    assert_eq!(
        x.grad().unwrap().to_vec::<f32>().unwrap(),
        y.to_vec::<f32>().unwrap()
    );
    // Finite differences with a fixed mask (same seed on every call).
    let x = uniform(&[6, 7], -1.0, 1.0, 4);
    GradCheck::default()
        .run(|t| t[0].dropout(0.4, true, &mut Rng::new(5)), &[x.clone()])
        .unwrap();
    let x4 = uniform(&[3, 4, 2, 3], -1.0, 1.0, 5);
    GradCheck::default()
        .run(
            |t| t[0].spatial_dropout(0.4, true, &mut Rng::new(6)),
            &[x4.clone()],
        )
        .unwrap();
    // Non-contiguous input.
    GradCheck::default()
        .run(
            |t| {
                t[0].permute(&[1, 0, 3, 2])?
                    .spatial_dropout(0.5, true, &mut Rng::new(7))
            },
            &[x4],
        )
        .unwrap();
}

#[test]
fn spatial_dropout_drops_whole_channels() {
    let (n, c, h, w) = (40, 50, 3, 4);
    let x = uniform(&[n, c, h, w], 0.5, 1.5, 6);
    let y = x
        .spatial_dropout(0.3, true, &mut Rng::new(8))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let xv = x.to_vec::<f32>().unwrap();
    let mut dropped = 0;
    for seg in 0..n * c {
        let ys = &y[seg * h * w..(seg + 1) * h * w];
        let xs = &xv[seg * h * w..(seg + 1) * h * w];
        if ys.iter().all(|&v| v == 0.0) {
            dropped += 1;
        } else {
            for (a, b) in xs.iter().zip(ys) {
                assert_eq!(*b, a * (1.0 / 0.7f32));
            }
        }
    }
    let frac = dropped as f64 / (n * c) as f64;
    assert!((frac - 0.3).abs() < 0.03, "dropped {frac}");
    // Rank 2: every element is its own channel.
    let y2 = Tensor::ones(&[100, 100])
        .spatial_dropout(0.5, true, &mut Rng::new(1))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let z = y2.iter().filter(|&&v| v == 0.0).count();
    assert!((z as f64 / 1e4 - 0.5).abs() < 0.03);
}
