//! The optimizer workload: one in-place update step over ResNet-18-sized weights (11.7 M
//! parameters in 62 tensors) for every optimizer, single-threaded.

use crate::util::{median, time, Opts};
use ferrovision::nn::optim::{optimizer_by_name, Adam, Optimizer, Sgd, OPTIMIZER_NAMES};
use ferrovision::nn::Param;
use ferrovision::tensor::rng::Rng;
use ferrovision::tensor::Tensor;

/// Weight shapes of ResNet-18 (ImageNet head): convs, batch-norm scales/offsets, the classifier.
fn resnet18_shapes() -> Vec<Vec<usize>> {
    let mut s = vec![vec![64, 3, 7, 7], vec![64], vec![64]];
    let mut cin = 64;
    for (i, cout) in [64usize, 128, 256, 512].into_iter().enumerate() {
        for block in 0..2 {
            let c0 = if block == 0 { cin } else { cout };
            s.extend([vec![cout, c0, 3, 3], vec![cout], vec![cout]]);
            s.extend([vec![cout, cout, 3, 3], vec![cout], vec![cout]]);
            if block == 0 && i > 0 {
                s.extend([vec![cout, cin, 1, 1], vec![cout], vec![cout]]);
            }
        }
        cin = cout;
    }
    s.extend([vec![1000, 512], vec![1000]]);
    s
}

pub fn run(_opts: &Opts) -> Result<(), String> {
    let shapes = resnet18_shapes();
    let mut rng = Rng::new(3);
    let params: Vec<(String, Param)> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let n: usize = s.iter().product();
            let w: Vec<f32> = (0..n).map(|_| rng.next_f32() - 0.5).collect();
            let g: Vec<f32> = (0..n).map(|_| (rng.next_f32() - 0.5) * 0.01).collect();
            let p = Param::new(
                "w",
                Tensor::from_vec(w, s).map_err(|e| e.to_string())?,
                true,
            );
            p.value()
                .set_grad(Some(Tensor::from_vec(g, s).map_err(|e| e.to_string())?))
                .map_err(|e| e.to_string())?;
            Ok((format!("layer{i}/w"), p))
        })
        .collect::<Result<_, String>>()?;
    let total: usize = params.iter().map(|(_, p)| p.numel()).sum();
    println!(
        "{} weights, {:.2} M parameters, f32, one thread; median of 15 steps after 3 warm-up",
        params.len(),
        total as f64 / 1e6
    );
    let mut cases: Vec<(String, Box<dyn Optimizer>)> = OPTIMIZER_NAMES
        .iter()
        .map(|n| {
            Ok((
                n.to_string(),
                optimizer_by_name(n, Some(1e-4)).map_err(|e| e.to_string())?,
            ))
        })
        .collect::<Result<_, String>>()?;
    cases.push((
        "adam_clipnorm".into(),
        Box::new(Adam::new().lr(1e-4).clipnorm(1.0)),
    ));
    cases.push((
        "momentum_global_clipnorm".into(),
        Box::new(Sgd::new().lr(1e-4).momentum(0.9).global_clipnorm(1.0)),
    ));
    let mut result = format!("RESULT optim mparams={:.2}", total as f64 / 1e6);
    for (name, opt) in &mut cases {
        let mut times = Vec::new();
        for i in 0..18 {
            let (r, s) = time(|| opt.step(&params));
            r.map_err(|e| format!("{name}: {e}"))?;
            if i >= 3 {
                times.push(s);
            }
        }
        let ms = median(&mut times) * 1e3;
        let slots = opt.state().len() / params.len();
        // Bytes moved per parameter: read grad, read+write weight and every slot.
        let gbs = (4 + 8 + 8 * slots) as f64 * total as f64 / (ms * 1e-3) / 1e9;
        println!(
            "{name:26} {ms:8.2} ms/step  {:7.0} Mparam/s  {gbs:5.1} GB/s ({slots} slots)",
            total as f64 / (ms * 1e-3) / 1e6
        );
        result.push_str(&format!(" {name}_ms={ms:.2}"));
    }
    println!("{result}");
    Ok(())
}
