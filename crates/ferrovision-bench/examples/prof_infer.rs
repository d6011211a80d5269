//! scratch: `prof_infer <arch> <side> <batch> <iters>` median img/s of Model::predict
use ferrovision::prelude::*;
use ferrovision::train::Model;
use ferrovision_models::{build, ModelOptions};
use std::time::Instant;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arch = a.get(1).map(String::as_str).unwrap_or("resnet50");
    let side: usize = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(224);
    let batch: usize = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let iters: usize = a.get(4).and_then(|s| s.parse().ok()).unwrap_or(20);
    manual_seed(0);
    let net = build(arch, &ModelOptions::new(&[3, side, side], 1000)).unwrap();
    let model = Model::from_boxed(net);
    let mut rng = Rng::new(0);
    let x = Tensor::rand(&[batch, 3, side, side], &mut rng);
    for _ in 0..3 {
        model.predict(&x, batch).unwrap();
    }
    let mut v = vec![];
    for _ in 0..iters {
        let t = Instant::now();
        model.predict(&x, batch).unwrap();
        v.push(batch as f64 / t.elapsed().as_secs_f64());
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{arch} {side}px b{batch}: median {:.2} img/s (min {:.2} max {:.2})",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1]
    );
}
