//! Large weights are updated in parallel chunks. Every rule is elementwise, so a weight updated
//! in one piece (parallel chunks) must equal the same values updated as several small weights
//! (each on one thread), bit for bit, for every optimizer, and SGD with momentum must match its
//! formula.

use ferrovision_nn::optim::{Adadelta, Adagrad, Adam, Nadam, Optimizer, RmsProp, Sgd};
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::Param;

/// Not a multiple of the chunk length, and several chunks long.
const N: usize = 3 * 65_536 + 1_234;
/// Pieces small enough for the one-thread path.
const PIECE: usize = 40_000;

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 31 + seed * 17) % 1009) as f32 * 0.013).sin())
        .collect()
}

fn params(w: &[f32], piece: usize) -> Vec<(String, Param)> {
    w.chunks(piece)
        .enumerate()
        .map(|(i, c)| {
            (
                format!("w{i}/kernel"),
                Param::new(
                    "kernel",
                    Tensor::from_vec(c.to_vec(), &[c.len()]).unwrap(),
                    true,
                ),
            )
        })
        .collect()
}

/// Three steps of `opt` on the weight split into pieces of `piece` elements.
fn run(opt: &mut dyn Optimizer, piece: usize) -> Vec<f32> {
    let p = params(&values(N, 0), piece);
    for step in 0..3 {
        let g = values(N, step + 1);
        for ((_, param), gc) in p.iter().zip(g.chunks(piece)) {
            let gt = Tensor::from_vec(gc.to_vec(), &[gc.len()]).unwrap();
            param.value().set_grad(Some(gt)).unwrap();
        }
        opt.step(&p).unwrap();
        for (_, param) in &p {
            param.zero_grad();
        }
    }
    p.iter()
        .flat_map(|(_, param)| param.value().to_vec::<f32>().unwrap())
        .collect()
}

#[test]
fn chunked_parallel_update_equals_small_weights() {
    type Make = fn() -> Box<dyn Optimizer>;
    let makers: [(&str, Make); 7] = [
        ("sgd", || Box::new(Sgd::new().lr(0.1).momentum(0.9))),
        ("nesterov", || {
            Box::new(Sgd::new().lr(0.1).momentum(0.9).nesterov(true))
        }),
        ("adam", || Box::new(Adam::new())),
        ("nadam", || Box::new(Nadam::new())),
        ("rmsprop", || Box::new(RmsProp::new())),
        ("adagrad", || Box::new(Adagrad::new())),
        ("adadelta", || Box::new(Adadelta::new())),
    ];
    for (name, make) in makers {
        let whole = run(make().as_mut(), N);
        let pieces = run(make().as_mut(), PIECE);
        assert_eq!(whole.len(), N);
        let first_diff = whole
            .iter()
            .zip(&pieces)
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(first_diff, None, "{name}: whole weight differs from pieces");
    }
}

#[test]
fn sgd_momentum_chunked_matches_formula() {
    let got = run(&mut Sgd::new().lr(0.1).momentum(0.9), N);
    let mut w = values(N, 0);
    let mut m = vec![0.0f32; N];
    for step in 0..3 {
        let g = values(N, step + 1);
        for i in 0..N {
            m[i] = m[i] * 0.9 - g[i] * 0.1;
            w[i] += m[i];
        }
    }
    let worst = got
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    // The same operations in the same order; FMA contraction may differ by an ulp.
    assert!(
        worst <= 1e-6,
        "SGD momentum differs from its formula by {worst}"
    );
}
