//! The ResNet-18 workload: standard ResNet-18 (BasicBlocks 64-128-256-512, batch norm, 7x7/2
//! stem + 3x3/2 max pool, global average pool, dense 10) on random 3x64x64 images.

use crate::lenet5::Sgd;
use crate::util::{median, peak_rss_mb, time, Opts};
use ferrovision::prelude::*;
use ferrovision::tensor::ops::conv::ConvOpts;
use ferrovision::tensor::ops::loss::CrossEntropyOpts;
use ferrovision::tensor::ops::pool::PoolOpts;

const BATCH: usize = 16;
const INFER_BATCH: usize = 32;
const BN_EPS: f32 = 1e-5;
const BN_MOMENTUM: f32 = 0.1;

/// Conv (no bias) + batch norm parameters.
struct ConvBn {
    weight: Tensor,
    gamma: Tensor,
    beta: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    opts: ConvOpts,
}

impl ConvBn {
    fn new(cin: usize, cout: usize, k: usize, stride: usize, rng: &mut Rng) -> Result<Self> {
        // He-normal (fan_out, like torchvision's ResNet init).
        let std = (2.0 / (cout * k * k) as f32).sqrt();
        Ok(ConvBn {
            weight: Tensor::randn(&[cout, cin, k, k], 0.0, std, rng)?.requires_grad_(true),
            gamma: Tensor::ones(&[cout]).requires_grad_(true),
            beta: Tensor::zeros(&[cout]).requires_grad_(true),
            running_mean: Tensor::zeros(&[cout]),
            running_var: Tensor::ones(&[cout]),
            opts: ConvOpts::new().stride(&[stride]).pad(k / 2),
        })
    }

    fn forward(&self, x: &Tensor, training: bool) -> Result<Tensor> {
        x.conv2d(&self.weight, None, &self.opts)?.batch_norm(
            &self.running_mean,
            &self.running_var,
            Some(&self.gamma),
            Some(&self.beta),
            training,
            BN_MOMENTUM,
            BN_EPS,
        )
    }

    fn params(&self) -> Vec<Tensor> {
        vec![self.weight.clone(), self.gamma.clone(), self.beta.clone()]
    }
}

struct BasicBlock {
    conv1: ConvBn,
    conv2: ConvBn,
    shortcut: Option<ConvBn>,
}

impl BasicBlock {
    fn new(cin: usize, cout: usize, stride: usize, rng: &mut Rng) -> Result<Self> {
        Ok(BasicBlock {
            conv1: ConvBn::new(cin, cout, 3, stride, rng)?,
            conv2: ConvBn::new(cout, cout, 3, 1, rng)?,
            shortcut: if stride != 1 || cin != cout {
                Some(ConvBn::new(cin, cout, 1, stride, rng)?)
            } else {
                None
            },
        })
    }

    fn forward(&self, x: &Tensor, training: bool) -> Result<Tensor> {
        let y = self.conv1.forward(x, training)?.relu()?;
        let y = self.conv2.forward(&y, training)?;
        let s = match &self.shortcut {
            Some(c) => c.forward(x, training)?,
            None => x.clone(),
        };
        y.add(&s)?.relu()
    }

    fn params(&self) -> Vec<Tensor> {
        let mut p = self.conv1.params();
        p.extend(self.conv2.params());
        if let Some(s) = &self.shortcut {
            p.extend(s.params());
        }
        p
    }
}

/// ResNet-18 for 10 classes.
pub struct ResNet18 {
    stem: ConvBn,
    blocks: Vec<BasicBlock>,
    fc_w: Tensor,
    fc_b: Tensor,
}

impl ResNet18 {
    pub fn new(rng: &mut Rng) -> Result<Self> {
        let stem = ConvBn::new(3, 64, 7, 2, rng)?;
        let mut blocks = Vec::new();
        let mut cin = 64;
        for (i, &c) in [64, 128, 256, 512].iter().enumerate() {
            let stride = if i == 0 { 1 } else { 2 };
            blocks.push(BasicBlock::new(cin, c, stride, rng)?);
            blocks.push(BasicBlock::new(c, c, 1, rng)?);
            cin = c;
        }
        let bound = 1.0 / (512f32).sqrt();
        Ok(ResNet18 {
            stem,
            blocks,
            fc_w: Tensor::rand_uniform(&[512, 10], -bound, bound, rng)?.requires_grad_(true),
            fc_b: Tensor::rand_uniform(&[10], -bound, bound, rng)?.requires_grad_(true),
        })
    }

    pub fn forward(&self, x: &Tensor, training: bool) -> Result<Tensor> {
        let mut x = self.stem.forward(x, training)?.relu()?;
        x = x.max_pool2d(&PoolOpts::new(&[3]).stride(&[2]).padding(&[1]))?;
        for b in &self.blocks {
            x = b.forward(&x, training)?;
        }
        x.global_avg_pool2d()?.linear(&self.fc_w, Some(&self.fc_b))
    }

    pub fn params(&self) -> Vec<Tensor> {
        let mut p = self.stem.params();
        for b in &self.blocks {
            p.extend(b.params());
        }
        p.push(self.fc_w.clone());
        p.push(self.fc_b.clone());
        p
    }
}

pub fn run(_opts: &Opts) -> std::result::Result<(), String> {
    run_inner().map_err(|e| e.to_string())
}

fn run_inner() -> Result<()> {
    let mut rng = Rng::new(0);
    let model = ResNet18::new(&mut rng)?;
    let params = model.params();
    let n_params: usize = params.iter().map(|p| p.numel()).sum();
    println!("ResNet-18: {n_params} trainable parameters");
    let mut opt = Sgd::new(&params, 0.01, 0.9);
    let x = Tensor::rand(&[BATCH, 3, 64, 64], &mut rng);
    let y = Tensor::randint(&[BATCH], 0, 10, &mut rng)?;
    let mut step = || -> Result<f64> {
        let loss = model
            .forward(&x, true)?
            .cross_entropy(&y, &CrossEntropyOpts::default())?;
        let l = loss.item()?;
        loss.backward()?;
        opt.step(&params)?;
        Ok(l)
    };
    for _ in 0..3 {
        step()?;
    }
    let mut rates = Vec::new();
    let mut losses = Vec::new();
    for _ in 0..20 {
        let (l, secs) = time(&mut step);
        losses.push(l?);
        rates.push(1.0 / secs);
    }
    println!("loss step 1 {:.4} -> step 20 {:.4}", losses[0], losses[19]);
    let train_steps_s = median(&mut rates);

    let xi = Tensor::rand(&[INFER_BATCH, 3, 64, 64], &mut rng);
    let infer = || no_grad(|| model.forward(&xi, false).map(|_| ()));
    infer()?;
    let reps = 5;
    let (r, secs) = time(|| -> Result<()> {
        for _ in 0..reps {
            infer()?;
        }
        Ok(())
    });
    r?;
    let infer_img_s = (reps * INFER_BATCH) as f64 / secs;
    println!(
        "RESULT resnet18 train_steps_s={train_steps_s:.3} infer_img_s={infer_img_s:.1} peak_rss_mb={:.1}",
        peak_rss_mb()
    );
    Ok(())
}
