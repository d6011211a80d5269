//! matmul / linear / linear_relu: values against a naive reference (all rank cases, broadcast
//! batches, strided operands) and finite-difference gradient checks.

mod common;
use common::{assert_close, uniform};
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::{DType, Result, Tensor};

fn check(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    GradCheck::default().run(f, inputs).unwrap();
}

/// torch.matmul computed with plain loops.
fn ref_matmul(a: &Tensor, b: &Tensor) -> (Vec<f32>, Vec<usize>) {
    let (av, bv) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    let mut ash = a.shape().to_vec();
    let mut bsh = b.shape().to_vec();
    let (a1, b1) = (ash.len() == 1, bsh.len() == 1);
    if a1 {
        ash.insert(0, 1);
    }
    if b1 {
        bsh.push(1);
    }
    let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let n = bsh[bsh.len() - 1];
    let (abatch, bbatch) = (&ash[..ash.len() - 2], &bsh[..bsh.len() - 2]);
    let bl = abatch.len().max(bbatch.len());
    let padded = |s: &[usize]| -> Vec<usize> {
        let mut v = vec![1; bl - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (pa, pb) = (padded(abatch), padded(bbatch));
    let batch: Vec<usize> = pa.iter().zip(&pb).map(|(&x, &y)| x.max(y)).collect();
    let nb: usize = batch.iter().product();
    let mut out = vec![0.0f32; nb * m * n];
    for bi in 0..nb {
        // Multi-index of the batch entry, then each operand's own (broadcast) entry.
        let mut rem = bi;
        let mut idx = vec![0; bl];
        for d in (0..bl).rev() {
            idx[d] = rem % batch[d];
            rem /= batch[d];
        }
        let lin = |shape: &[usize]| {
            idx.iter()
                .zip(shape)
                .fold(0, |acc, (&i, &s)| acc * s + if s == 1 { 0 } else { i })
        };
        let (ao, bo) = (lin(&pa) * m * k, lin(&pb) * k * n);
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    s += av[ao + i * k + p] as f64 * bv[bo + p * n + j] as f64;
                }
                out[bi * m * n + i * n + j] = s as f32;
            }
        }
    }
    let mut shape = batch;
    if !a1 {
        shape.push(m);
    }
    if !b1 {
        shape.push(n);
    }
    (out, shape)
}

const CASES: &[(&[usize], &[usize])] = &[
    (&[5], &[5]),
    (&[4], &[4, 3]),
    (&[3, 4], &[4]),
    (&[3, 4], &[4, 2]),
    (&[2, 3, 4], &[4, 5]),
    (&[3, 4], &[2, 4, 5]),
    (&[4], &[2, 4, 3]),
    (&[2, 3, 4], &[4]),
    (&[2, 1, 3, 4], &[3, 4, 2]),
    (&[1, 3, 4], &[2, 4, 2]),
    (&[2, 3, 1, 4], &[1, 4, 3]),
    (&[3, 0], &[0, 2]),
];

#[test]
fn matmul_matches_reference() {
    for (i, &(sa, sb)) in CASES.iter().enumerate() {
        let a = uniform(sa, -1.0, 1.0, 10 + i as u64);
        let b = uniform(sb, -1.0, 1.0, 50 + i as u64);
        let y = a.matmul(&b).unwrap();
        let (want, shape) = ref_matmul(&a, &b);
        assert_eq!(y.shape(), shape.as_slice(), "{sa:?}·{sb:?}");
        assert_close(&y.to_vec::<f32>().unwrap(), &want, 1e-5, 1e-5);
    }
}

#[test]
fn matmul_strided_operands_match_reference() {
    // Transposed, permuted-batch, sliced and expanded operands are read in place.
    let a = uniform(&[4, 3], -1.0, 1.0, 1);
    let b = uniform(&[5, 4], -1.0, 1.0, 2);
    let at = a.t().unwrap();
    let bt = b.t().unwrap();
    let y = at.matmul(&bt).unwrap();
    let (want, _) = ref_matmul(&at.contiguous().unwrap(), &bt.contiguous().unwrap());
    assert_close(&y.to_vec::<f32>().unwrap(), &want, 1e-5, 1e-5);

    // Batch dims that do not merge with rows: [3, 2, 4] viewed from [2, 3, 4].
    let x = uniform(&[2, 3, 4], -1.0, 1.0, 3)
        .permute(&[1, 0, 2])
        .unwrap();
    let w = uniform(&[4, 6], -1.0, 1.0, 4);
    let y = x.matmul(&w).unwrap();
    let (want, shape) = ref_matmul(&x.contiguous().unwrap(), &w);
    assert_eq!(y.shape(), shape.as_slice());
    assert_close(&y.to_vec::<f32>().unwrap(), &want, 1e-5, 1e-5);

    // Expanded (stride 0) batch and a stepped slice.
    let e = uniform(&[1, 3, 4], -1.0, 1.0, 5)
        .expand(&[5, 3, 4])
        .unwrap();
    let s = uniform(&[5, 8, 2], -1.0, 1.0, 6).slice(1, 0, 8, 2).unwrap();
    let y = e.matmul(&s).unwrap();
    let (want, _) = ref_matmul(&e.contiguous().unwrap(), &s.contiguous().unwrap());
    assert_close(&y.to_vec::<f32>().unwrap(), &want, 1e-5, 1e-5);
}

#[test]
fn matmul_gradients_all_rank_cases() {
    for (i, &(sa, sb)) in CASES.iter().enumerate() {
        let a = uniform(sa, -1.0, 1.0, 100 + i as u64);
        let b = uniform(sb, -1.0, 1.0, 200 + i as u64);
        check(|x| x[0].matmul(&x[1]), &[a, b]);
    }
}

#[test]
fn matmul_gradients_strided_inputs() {
    let a = uniform(&[4, 3], -1.0, 1.0, 7);
    let b = uniform(&[5, 4], -1.0, 1.0, 8);
    // (aᵀ·bᵀ) with both operands transposed views.
    check(|x| x[0].t()?.matmul(&x[1].t()?), &[a.clone(), b.clone()]);
    // Permuted batch on the left, shared right operand.
    let x3 = uniform(&[2, 3, 4], -1.0, 1.0, 9);
    let w = uniform(&[4, 2], -1.0, 1.0, 10);
    check(
        |x| x[0].permute(&[1, 0, 2])?.matmul(&x[1]),
        &[x3.clone(), w.clone()],
    );
    // Transposed batched right operand, broadcast left.
    let bb = uniform(&[2, 4, 5], -1.0, 1.0, 11);
    check(
        |x| x[0].matmul(&x[1].transpose(1, 2)?),
        &[uniform(&[3, 5], -1.0, 1.0, 12), bb],
    );
    // Expanded and sliced operands.
    check(
        |x| x[0].expand(&[3, 2, 4])?.matmul(&x[1].slice(1, 0, 8, 2)?),
        &[
            uniform(&[1, 2, 4], -1.0, 1.0, 13),
            uniform(&[3, 8, 2], -1.0, 1.0, 14),
        ],
    );
}

#[test]
fn linear_matches_matmul_plus_bias() {
    let x = uniform(&[2, 3, 5], -1.0, 1.0, 20);
    let w = uniform(&[5, 4], -1.0, 1.0, 21);
    let b = uniform(&[4], -1.0, 1.0, 22);
    let want = x.matmul(&w).unwrap().add(&b).unwrap();
    let y = x.linear(&w, Some(&b)).unwrap();
    assert_eq!(y.shape(), &[2, 3, 4]);
    assert_close(
        &y.to_vec::<f32>().unwrap(),
        &want.to_vec::<f32>().unwrap(),
        1e-6,
        1e-6,
    );
    let yr = x.linear_relu(&w, Some(&b)).unwrap();
    assert_close(
        &yr.to_vec::<f32>().unwrap(),
        &want.relu().unwrap().to_vec::<f32>().unwrap(),
        1e-6,
        1e-6,
    );
    // 1-d input, no bias.
    let v = uniform(&[5], -1.0, 1.0, 23);
    let y = v.linear(&w, None).unwrap();
    assert_eq!(y.shape(), &[4]);
    assert_close(
        &y.to_vec::<f32>().unwrap(),
        &v.matmul(&w).unwrap().to_vec::<f32>().unwrap(),
        1e-6,
        1e-6,
    );
}

#[test]
fn linear_gradients() {
    let x = uniform(&[2, 3, 5], -1.0, 1.0, 30);
    let w = uniform(&[5, 4], -1.0, 1.0, 31);
    let b = uniform(&[4], -1.0, 1.0, 32);
    check(
        |t| t[0].linear(&t[1], Some(&t[2])),
        &[x.clone(), w.clone(), b.clone()],
    );
    check(|t| t[0].linear(&t[1], None), &[x.clone(), w.clone()]);
    // Non-contiguous input and weight.
    check(
        |t| t[0].permute(&[1, 0, 2])?.linear(&t[1].t()?, Some(&t[2])),
        &[x, uniform(&[4, 5], -1.0, 1.0, 33), b],
    );
    check(
        |t| t[0].linear(&t[1], Some(&t[2])),
        &[
            uniform(&[5], -1.0, 1.0, 34),
            uniform(&[5, 3], -1.0, 1.0, 35),
            uniform(&[3], -1.0, 1.0, 36),
        ],
    );
}

#[test]
fn linear_relu_gradients() {
    // Finite differences need pre-activations away from the kink: a perturbation of 0.01 moves
    // a pre-activation by at most 0.01 here (|values| <= 1), so keep them > 0.05 from 0.
    let (x, w, b) = (
        uniform(&[4, 6], -1.0, 1.0, 40),
        uniform(&[6, 5], -1.0, 1.0, 41),
        uniform(&[5], -1.0, 1.0, 42),
    );
    let pre = x.linear(&w, Some(&b)).unwrap().to_vec::<f32>().unwrap();
    assert!(pre.iter().all(|v| v.abs() > 0.05), "{pre:?}");
    assert!(pre.iter().any(|&v| v < 0.0) && pre.iter().any(|&v| v > 0.0));
    check(
        |t| t[0].linear_relu(&t[1], Some(&t[2])),
        &[x.clone(), w.clone(), b],
    );

    // Analytic gradients agree with linear followed by relu.
    let xs = x.requires_grad_(true);
    let ws = w.requires_grad_(true);
    let gy = uniform(&[4, 5], -1.0, 1.0, 43);
    let fused = xs
        .linear_relu(&ws, None)
        .unwrap()
        .mul(&gy)
        .unwrap()
        .sum_all()
        .unwrap();
    let g1 = ferrovision_tensor::grad(&fused, &[&xs, &ws]).unwrap();
    let plain = xs
        .linear(&ws, None)
        .unwrap()
        .relu()
        .unwrap()
        .mul(&gy)
        .unwrap()
        .sum_all()
        .unwrap();
    let g2 = ferrovision_tensor::grad(&plain, &[&xs, &ws]).unwrap();
    for (a, b) in g1.iter().zip(&g2) {
        assert_close(
            &a.as_ref().unwrap().to_vec::<f32>().unwrap(),
            &b.as_ref().unwrap().to_vec::<f32>().unwrap(),
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn errors_name_op_and_shapes() {
    let a = Tensor::zeros(&[2, 3]);
    let e = a.matmul(&Tensor::zeros(&[4, 2])).unwrap_err().to_string();
    assert!(
        e.starts_with("matmul:") && e.contains("[2, 3]") && e.contains("[4, 2]"),
        "{e}"
    );
    let e = Tensor::zeros(&[2, 2, 3])
        .matmul(&Tensor::zeros(&[3, 3, 2]))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("matmul:") && e.contains("batch"), "{e}");
    let e = Tensor::scalar(1.0).matmul(&a).unwrap_err().to_string();
    assert!(e.starts_with("matmul:"), "{e}");
    let e = a
        .linear(&Tensor::zeros(&[4, 5]), None)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("linear:") && e.contains("[4, 5]"), "{e}");
    let e = a
        .linear(&Tensor::zeros(&[3, 5]), Some(&Tensor::zeros(&[4])))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("linear:") && e.contains("[4]"), "{e}");
    let e = a
        .linear_relu(&Tensor::zeros(&[3]), None)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("linear_relu:"), "{e}");
    let i = Tensor::zeros_dtype(&[2, 3], DType::I64);
    assert!(i.matmul(&Tensor::zeros(&[3, 2])).is_err());
}
