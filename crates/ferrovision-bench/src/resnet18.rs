//! The ResNet-18 workload: torchvision's ResNet-18 (`ferrovision_models::resnet::resnet18`,
//! built with the public model API: functional graph of Conv2D / BatchNormalization / Add
//! layers) trained with `Model::train_on_batch` and the nn crate's SGD (lr 0.01, momentum 0.9)
//! on random 3x64x64 images, batch 16, 10 classes.

use crate::util::{forward_flops_per_image, median, peak_fraction, peak_rss_mb, time, Opts};
use ferrovision::nn::losses::SparseCategoricalCrossentropy;
use ferrovision::nn::optim::Sgd;
use ferrovision::nn::NetworkExt;
use ferrovision::prelude::*;
use ferrovision::train::{Batch, Compile, Model};
use ferrovision_models::{resnet, ModelOptions};

const BATCH: usize = 16;
const INFER_BATCH: usize = 32;

pub fn run(_opts: &Opts) -> std::result::Result<(), String> {
    run_inner().map_err(|e| e.to_string())
}

fn run_inner() -> ferrovision::nn::Result<()> {
    manual_seed(0);
    let net = resnet::resnet18(&ModelOptions::new(&[3, 64, 64], 10))?;
    let n_params: usize = net.trainable_weights().iter().map(|(_, p)| p.numel()).sum();
    println!("ResNet-18: {n_params} trainable parameters");
    let mut model = Model::from_boxed(net);
    model.compile(Compile::new(
        Sgd::new().lr(0.01).momentum(0.9),
        SparseCategoricalCrossentropy::new().from_logits(true),
    ))?;
    let mut rng = Rng::new(0);
    let batch = Batch {
        inputs: vec![Tensor::rand(&[BATCH, 3, 64, 64], &mut rng)],
        targets: vec![Tensor::randint(&[BATCH], 0, 10, &mut rng)?],
        sample_weight: None,
    };
    for _ in 0..3 {
        model.train_on_batch(&batch)?;
    }
    let mut rates = Vec::new();
    let mut losses = Vec::new();
    for _ in 0..20 {
        let (l, secs) = time(|| model.train_on_batch(&batch));
        losses.push(l?);
        rates.push(1.0 / secs);
    }
    println!("loss step 1 {:.4} -> step 20 {:.4}", losses[0], losses[19]);
    let train_steps_s = median(&mut rates);

    let xi = Tensor::rand(&[INFER_BATCH, 3, 64, 64], &mut rng);
    model.predict(&xi, INFER_BATCH)?;
    let reps = 5;
    let (r, secs) = time(|| -> ferrovision::nn::Result<()> {
        for _ in 0..reps {
            model.predict(&xi, INFER_BATCH)?;
        }
        Ok(())
    });
    r?;
    let infer_img_s = (reps * INFER_BATCH) as f64 / secs;
    // Fractions of the FP32 peak with nominal FLOPs: a training step counted as 3 forwards.
    let flops = forward_flops_per_image(&model, INFER_BATCH);
    println!(
        "RESULT resnet18 train_steps_s={train_steps_s:.3} infer_img_s={infer_img_s:.1} \
         peak_rss_mb={:.1} train_peak_fraction={:.3} infer_peak_fraction={:.3}",
        peak_rss_mb(),
        peak_fraction(train_steps_s * BATCH as f64, 3.0 * flops),
        peak_fraction(infer_img_s, flops)
    );
    Ok(())
}
