//! The zoo workloads. `resnet50` and `mobilenet_v2` (`ferrovision-models`, torchvision's
//! layouts; the peers run torchvision's and Keras applications' same architectures) on random
//! 3x224x224 images, 1000 classes: inference img/s at batch 1 and 32 (`Model::predict`), and
//! training steps/s at batch 16 (`Model::train_on_batch`, SGD momentum 0.9, lr 0.01).
//! `resnet20`: the CIFAR ResNet-20 on random 3x32x32 images, 10 classes, the CIFAR recipe's
//! batch 128: training steps/s and the compute time of one 50 000-image epoch (391 steps; the
//! input pipeline is not included), inference img/s at batch 128.

use crate::util::{forward_flops_per_image, median, peak_fraction, peak_rss_mb, time, Opts};
use ferrovision::nn::losses::SparseCategoricalCrossentropy;
use ferrovision::nn::optim::Sgd;
use ferrovision::nn::NetworkExt;
use ferrovision::prelude::*;
use ferrovision::train::{Batch, Compile, Model};
use ferrovision_models::{build, ModelOptions};

const SIDE: usize = 224;
const CLASSES: usize = 1000;
const TRAIN_BATCH: usize = 16;
const TRAIN_WARMUP: usize = 2;
const TRAIN_STEPS: usize = 6;
const INFER_BATCH: usize = 32;

pub fn run(arch: &str, _opts: &Opts) -> std::result::Result<(), String> {
    if arch == "resnet20" {
        return cifar_resnet20().map_err(|e| e.to_string());
    }
    run_inner(arch).map_err(|e| e.to_string())
}

/// Steps of one CIFAR-10 epoch at batch 128 (50 000 images, the last batch partial).
const CIFAR_STEPS: f64 = 391.0;

fn cifar_resnet20() -> ferrovision::nn::Result<()> {
    const BATCH: usize = 128;
    manual_seed(0);
    let net = build("resnet20", &ModelOptions::new(&[3, 32, 32], 10))?;
    let mut model = Model::from_boxed(net);
    model.compile(Compile::new(
        Sgd::new().lr(0.1).momentum(0.9),
        SparseCategoricalCrossentropy::new().from_logits(true),
    ))?;
    let mut rng = Rng::new(0);
    let infer = infer_rate(&model, &Tensor::rand(&[BATCH, 3, 32, 32], &mut rng), 5)?;
    let batch = Batch {
        inputs: vec![Tensor::rand(&[BATCH, 3, 32, 32], &mut rng)],
        targets: vec![Tensor::randint(&[BATCH], 0, 10, &mut rng)?],
        sample_weight: None,
    };
    for _ in 0..3 {
        model.train_on_batch(&batch)?;
    }
    let mut rates = Vec::new();
    for _ in 0..20 {
        let (l, secs) = time(|| model.train_on_batch(&batch));
        l?;
        rates.push(1.0 / secs);
    }
    let steps_s = median(&mut rates);
    // Fractions of the FP32 peak with nominal FLOPs: a training step counted as 3 forwards.
    let flops = forward_flops_per_image(&model, BATCH);
    println!(
        "RESULT resnet20 train_b128_steps_s={steps_s:.3} epoch_s={:.1} infer_b128_img_s={infer:.1} \
         peak_rss_mb={:.1} train_peak_fraction={:.3} infer_peak_fraction={:.3}",
        CIFAR_STEPS / steps_s,
        peak_rss_mb(),
        peak_fraction(steps_s * BATCH as f64, 3.0 * flops),
        peak_fraction(infer, flops)
    );
    Ok(())
}

/// Median images/s of `reps` predictions of `x` (after one warm-up).
fn infer_rate(model: &Model, x: &Tensor, reps: usize) -> ferrovision::nn::Result<f64> {
    let n = x.shape()[0];
    model.predict(x, n)?;
    let mut rates = Vec::with_capacity(reps);
    for _ in 0..reps {
        let (r, secs) = time(|| model.predict(x, n));
        r?;
        rates.push(n as f64 / secs);
    }
    Ok(median(&mut rates))
}

fn run_inner(arch: &str) -> ferrovision::nn::Result<()> {
    manual_seed(0);
    let net = build(arch, &ModelOptions::new(&[3, SIDE, SIDE], CLASSES))?;
    let n_params: usize = net.trainable_weights().iter().map(|(_, p)| p.numel()).sum();
    println!("{arch}: {n_params} trainable parameters");
    let mut model = Model::from_boxed(net);
    model.compile(Compile::new(
        Sgd::new().lr(0.01).momentum(0.9),
        SparseCategoricalCrossentropy::new().from_logits(true),
    ))?;
    let mut rng = Rng::new(0);
    let infer_b1 = infer_rate(&model, &Tensor::rand(&[1, 3, SIDE, SIDE], &mut rng), 10)?;
    let infer_b32 = infer_rate(
        &model,
        &Tensor::rand(&[INFER_BATCH, 3, SIDE, SIDE], &mut rng),
        3,
    )?;
    let batch = Batch {
        inputs: vec![Tensor::rand(&[TRAIN_BATCH, 3, SIDE, SIDE], &mut rng)],
        targets: vec![Tensor::randint(
            &[TRAIN_BATCH],
            0,
            CLASSES as i64,
            &mut rng,
        )?],
        sample_weight: None,
    };
    for _ in 0..TRAIN_WARMUP {
        model.train_on_batch(&batch)?;
    }
    let mut rates = Vec::with_capacity(TRAIN_STEPS);
    for _ in 0..TRAIN_STEPS {
        let (l, secs) = time(|| model.train_on_batch(&batch));
        l?;
        rates.push(1.0 / secs);
    }
    let train_steps_s = median(&mut rates);
    // Fractions of the FP32 peak with nominal FLOPs (the batch-1 plan, traced first); a
    // training step counted as 3 forwards.
    let flops = forward_flops_per_image(&model, 1);
    println!(
        "RESULT {arch} infer_b1_img_s={infer_b1:.2} infer_b32_img_s={infer_b32:.2} \
         train_b16_steps_s={train_steps_s:.3} peak_rss_mb={:.1} infer_b1_peak_fraction={:.3} \
         infer_b32_peak_fraction={:.3} train_peak_fraction={:.3}",
        peak_rss_mb(),
        peak_fraction(infer_b1, flops),
        peak_fraction(infer_b32, flops),
        peak_fraction(train_steps_s * TRAIN_BATCH as f64, 3.0 * flops)
    );
    Ok(())
}
