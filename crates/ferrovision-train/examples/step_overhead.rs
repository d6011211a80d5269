//! What one `Model::train_on_batch` step costs on a model of many small layers, where the
//! per-step bookkeeping (listing the trainable weights, summing weight regularization) weighs
//! most: 64 `Dense(8)` layers with L2 kernel regularizers (128 weights), batch 4, plain SGD.
//!
//! ```text
//! cargo run --release -p ferrovision-nn --example step_overhead
//! ```
//!
//! Prints the median over 5 runs of 500 steps (`step_us`) and, separately, the median cost of
//! `trainable_weights()` + `regularization_loss()` on the same network (`list_and_reg_us`),
//! which is what a step recomputed before the model cached its weight list.

use ferrovision_nn::layers::Dense;
use ferrovision_nn::losses::MeanSquaredError;
use ferrovision_nn::optim::Sgd;
use ferrovision_nn::tensor::rng::{manual_seed, Rng};
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{Activation, NetworkExt, Regularizer, Sequential};
use ferrovision_train::{Batch, Compile, Model};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ferrovision_nn::Result<()> {
    manual_seed(1);
    let mut b = Sequential::new(&[8]);
    for _ in 0..64 {
        b = b.add(
            Dense::new(8)
                .activation(Activation::Tanh)
                .kernel_regularizer(Regularizer::l2(1e-4)),
        );
    }
    let net = b.build()?;
    let mut rng = Rng::new(2);
    let batch = Batch {
        inputs: vec![Tensor::randn(&[4, 8], 0.0, 1.0, &mut rng)?],
        targets: vec![Tensor::randn(&[4, 8], 0.0, 0.1, &mut rng)?],
        sample_weight: None,
    };
    let mut model = Model::new(net);
    model.compile(Compile::new(Sgd::new().lr(0.01), MeanSquaredError::new()))?;
    let steps = 500;
    for _ in 0..50 {
        model.train_on_batch(&batch)?;
    }
    let mut step_us = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..steps {
            model.train_on_batch(&batch)?;
        }
        step_us.push(t.elapsed().as_secs_f64() * 1e6 / steps as f64);
    }
    let mut list_us = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..steps {
            let w = model.network().trainable_weights();
            let r = model.network().regularization_loss()?;
            std::hint::black_box((w, r));
        }
        list_us.push(t.elapsed().as_secs_f64() * 1e6 / steps as f64);
    }
    println!(
        "RESULT step_overhead weights=128 step_us={:.1} list_and_reg_us={:.1}",
        median(step_us),
        median(list_us)
    );
    Ok(())
}
