//! The LeNet-5 workload: 6016 random 1x28x28 images, batch 64, SGD lr 0.01 momentum 0.9.

use crate::util::{peak_fraction, peak_rss_mb, time, Opts};
use ferrovision::prelude::*;
use ferrovision::tensor::ops::conv::ConvOpts;
use ferrovision::tensor::ops::loss::CrossEntropyOpts;
use ferrovision::tensor::ops::pool::PoolOpts;
use ferrovision::tensor::trace;
use std::collections::HashMap;

const N_IMAGES: usize = 6016;
const BATCH: usize = 64;
const INFER_BATCH: usize = 256;

/// LeNet-5 parameters (PyTorch-default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
pub struct LeNet5 {
    pub params: Vec<Tensor>,
}

fn uniform_param(shape: &[usize], fan_in: usize, rng: &mut Rng) -> Result<Tensor> {
    let bound = 1.0 / (fan_in as f32).sqrt();
    Ok(Tensor::rand_uniform(shape, -bound, bound, rng)?.requires_grad_(true))
}

impl LeNet5 {
    pub fn new(rng: &mut Rng) -> Result<Self> {
        let shapes: [(&[usize], usize); 10] = [
            (&[6, 1, 5, 5], 25),
            (&[6], 25),
            (&[16, 6, 5, 5], 150),
            (&[16], 150),
            (&[400, 120], 400),
            (&[120], 400),
            (&[120, 84], 120),
            (&[84], 120),
            (&[84, 10], 84),
            (&[10], 84),
        ];
        let params = shapes
            .iter()
            .map(|(s, fan)| uniform_param(s, *fan, rng))
            .collect::<Result<Vec<_>>>()?;
        Ok(LeNet5 { params })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let p = &self.params;
        let pool = PoolOpts::new(&[2]);
        let x = x.conv2d_relu(&p[0], Some(&p[1]), &ConvOpts::new().pad(2))?;
        let x = x.max_pool2d(&pool)?;
        let x = x.conv2d_relu(&p[2], Some(&p[3]), &ConvOpts::new())?;
        let x = x.max_pool2d(&pool)?;
        let x = x.flatten(1, -1)?;
        let x = x.linear_relu(&p[4], Some(&p[5]))?;
        let x = x.linear_relu(&p[6], Some(&p[7]))?;
        x.linear(&p[8], Some(&p[9]))
    }
}

/// SGD with momentum, PyTorch semantics: v = m*v + g; p -= lr*v.
pub struct Sgd {
    lr: f32,
    momentum: f32,
    velocity: Vec<Vec<f32>>,
}

impl Sgd {
    pub fn new(params: &[Tensor], lr: f32, momentum: f32) -> Self {
        Sgd {
            lr,
            momentum,
            velocity: params.iter().map(|p| vec![0.0; p.numel()]).collect(),
        }
    }

    pub fn step(&mut self, params: &[Tensor]) -> Result<()> {
        for (p, v) in params.iter().zip(&mut self.velocity) {
            let Some(g) = p.grad() else { continue };
            let (lr, m) = (self.lr, self.momentum);
            p.update_with_grad_(&g, "sgd", |ps, gs| {
                for ((pv, vv), &gv) in ps.iter_mut().zip(v.iter_mut()).zip(gs) {
                    *vv = m * *vv + gv;
                    *pv -= lr * *vv;
                }
            })?;
            p.zero_grad();
        }
        Ok(())
    }
}

fn random_data(rng: &mut Rng) -> Result<(Tensor, Tensor)> {
    let images = Tensor::rand(&[N_IMAGES, 1, 28, 28], rng);
    let labels = Tensor::randint(&[N_IMAGES], 0, 10, rng)?;
    Ok((images, labels))
}

/// One training epoch. The forward pass replays a traced training plan (traced on the first
/// step, like `Model::train_on_batch`) unless `plan` is `None` (eager mode); the loss and the
/// backward pass run as written, through the plan's gradient.
fn epoch(
    model: &LeNet5,
    opt: &mut Sgd,
    images: &Tensor,
    labels: &Tensor,
    plan: &mut Option<Option<trace::Plan>>,
) -> Result<f64> {
    let mut total = 0.0;
    let steps = N_IMAGES / BATCH;
    let forward = |x: &[Tensor]| -> Result<Vec<Tensor>> { Ok(vec![model.forward(&x[0])?]) };
    for s in 0..steps {
        let x = images.narrow(0, s * BATCH, BATCH)?;
        let y = labels.narrow(0, s * BATCH, BATCH)?;
        let logits = match plan {
            None => model.forward(&x)?,
            Some(Some(p)) => p.run(std::slice::from_ref(&x))?.remove(0),
            Some(slot) => {
                let (mut outs, p) = trace::trace_training(std::slice::from_ref(&x), forward)?;
                *slot = Some(p?);
                outs.remove(0)
            }
        };
        let loss = logits.cross_entropy(&y, &CrossEntropyOpts::default())?;
        total += loss.item()?;
        loss.backward()?;
        opt.step(&model.params)?;
    }
    Ok(total / steps as f64)
}

pub fn run(_opts: &Opts) -> std::result::Result<(), String> {
    run_inner().map_err(|e| e.to_string())
}

fn run_inner() -> Result<()> {
    let mut rng = Rng::new(0);
    let (images, labels) = random_data(&mut rng)?;
    let model = LeNet5::new(&mut rng)?;
    let mut opt = Sgd::new(&model.params, 0.01, 0.9);
    let eager = ferrovision::train::traced::eager_by_default();
    let mut train_plan = (!eager).then_some(None);
    let (warm, _) = time(|| epoch(&model, &mut opt, &images, &labels, &mut train_plan));
    let warm_loss = warm?;
    println!("warm-up epoch loss {warm_loss:.4}");
    let mut last = 0.0;
    let (_, secs) = time(|| -> Result<()> {
        for e in 0..2 {
            last = epoch(&model, &mut opt, &images, &labels, &mut train_plan)?;
            println!("epoch {} loss {:.4}", e + 1, last);
        }
        Ok(())
    });
    let train_img_s = (2 * (N_IMAGES / BATCH) * BATCH) as f64 / secs;
    // Inference: one warm-up pass, then two timed passes at batch 256, through traced plans
    // (one per batch size, like `Model::predict`) unless FERROVISION_RUN_EAGERLY=1.
    let mut plans: HashMap<usize, trace::Plan> = HashMap::new();
    let forward = |x: &[Tensor]| -> Result<Vec<Tensor>> { Ok(vec![model.forward(&x[0])?]) };
    let mut infer_pass = || -> Result<()> {
        no_grad(|| {
            let mut start = 0;
            while start < N_IMAGES {
                let len = INFER_BATCH.min(N_IMAGES - start);
                let x = [images.narrow(0, start, len)?];
                match plans.get_mut(&len) {
                    _ if eager => drop(forward(&x)?),
                    Some(plan) => drop(plan.run(&x)?),
                    None => {
                        let (_, plan) = trace::trace(&x, forward)?;
                        plans.insert(len, plan?);
                    }
                }
                start += len;
            }
            Ok(())
        })
    };
    infer_pass()?;
    let (r, secs) = time(|| -> Result<()> {
        infer_pass()?;
        infer_pass()
    });
    r?;
    let infer_img_s = (2 * N_IMAGES) as f64 / secs;
    println!("loss first epoch {warm_loss:.4} -> last epoch {last:.4}");
    // Fractions of the FP32 peak with nominal FLOPs: a training step counted as 3 forwards
    // (traced for the count when inference ran eagerly).
    let flops = match plans.get(&INFER_BATCH) {
        Some(p) => p.stats().flops,
        None => {
            let x = [images.narrow(0, 0, INFER_BATCH)?];
            no_grad(|| trace::trace(&x, forward))?.1?.stats().flops
        }
    } as f64
        / INFER_BATCH as f64;
    println!(
        "RESULT lenet5 train_img_s={train_img_s:.1} infer_img_s={infer_img_s:.1} peak_rss_mb={:.1} \
         train_peak_fraction={:.3} infer_peak_fraction={:.3}",
        peak_rss_mb(),
        peak_fraction(train_img_s, 3.0 * flops),
        peak_fraction(infer_img_s, flops)
    );
    Ok(())
}
