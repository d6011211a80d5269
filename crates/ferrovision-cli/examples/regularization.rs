//! Regularization on a tiny training set: 200 MNIST training images (20 per digit), a
//! 784-256-128-10 ReLU MLP trained with Adam for 150 epochs (batch 32), with no regularization,
//! L2 weight decay on the kernels, dropout, or batch normalization. Test accuracy on the 10 000
//! test images, mean and spread over 3 seeds. Writes `regularization.md`.
//!
//! ```text
//! cargo run --release -p ferrovision-cli --example regularization -- data/mnist [out dir]
//! ```

use ferrovision_nn::datasets::mnist::{load_mnist, Split};
use ferrovision_nn::layers::{BatchNormalization, Dense, Dropout, Flatten};
use ferrovision_nn::losses::SparseCategoricalCrossentropy;
use ferrovision_nn::metrics::Accuracy;
use ferrovision_nn::optim::Adam;
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{Activation, Regularizer, Sequential};
use ferrovision_train::{Compile, FitOptions, Model};
use std::fmt::Write as _;
use std::path::PathBuf;

const EPOCHS: usize = 150;
const PER_CLASS: usize = 20;

fn dense(units: usize, variant: &str) -> Dense {
    let d = Dense::new(units);
    let d = if variant == "l2" {
        d.kernel_regularizer(Regularizer::l2(1e-3))
    } else {
        d
    };
    // Batch norm goes between the affine map and the ReLU.
    if variant == "batchnorm" {
        d
    } else {
        d.activation(Activation::Relu)
    }
}

fn build(variant: &str) -> ferrovision_nn::Result<Sequential> {
    let mut b = Sequential::new(&[1, 28, 28]).add(Flatten::new());
    for units in [256, 128] {
        b = b.add(dense(units, variant));
        match variant {
            "dropout" => b = b.add(Dropout::new(0.5)),
            "batchnorm" => {
                b = b.add(BatchNormalization::new()).add(
                    ferrovision_nn::layers::ActivationLayer::new(Activation::Relu),
                )
            }
            _ => {}
        }
    }
    b.add(Dense::new(10)).build()
}

/// The first `PER_CLASS` images of each digit.
fn small_train(x: &Tensor, y: &Tensor) -> ferrovision_nn::Result<(Tensor, Tensor)> {
    let labels = y.to_vec::<i64>()?;
    let mut count = [0usize; 10];
    let mut idx = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        if count[l as usize] < PER_CLASS {
            count[l as usize] += 1;
            idx.push(i as i64);
        }
    }
    let idx = Tensor::from_vec(idx.clone(), &[idx.len()])?;
    Ok((x.index_select(0, &idx)?, y.index_select(0, &idx)?))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .ok_or("usage: regularization <mnist dir> [out dir]")?;
    let out = PathBuf::from(args.get(2).map_or("docs/results", String::as_str));
    std::fs::create_dir_all(&out)?;
    let (x, y) = load_mnist(dir.as_ref(), Split::Train)?;
    let (xt, yt) = load_mnist(dir.as_ref(), Split::Test)?;
    let (xs, ys) = small_train(&x, &y)?;
    println!("training set: {} images", xs.shape()[0]);
    let mut table = String::from(
        "| regularization | train acc | test acc (mean ± std of 3 seeds) | test acc per seed | final test loss |\n|---|---|---|---|---|\n",
    );
    for variant in ["none", "l2", "dropout", "batchnorm"] {
        let mut accs = Vec::new();
        let mut train_acc = Vec::new();
        let mut losses = Vec::new();
        for seed in 0..3u64 {
            ferrovision_nn::tensor::rng::manual_seed(seed);
            let mut model = Model::new(build(variant)?);
            model.compile(
                Compile::new(
                    Adam::new(),
                    SparseCategoricalCrossentropy::new().from_logits(true),
                )
                .metric(Accuracy::sparse().named("accuracy")),
            )?;
            let h = model.fit(
                &xs,
                &ys,
                FitOptions {
                    epochs: EPOCHS,
                    batch_size: 32,
                    seed,
                    verbose: 0,
                    ..FitOptions::default()
                },
                vec![],
            )?;
            let test = model.evaluate(&xt, &yt, 1000)?;
            let train = model.evaluate(&xs, &ys, 1000)?;
            accs.push(test.get("accuracy").unwrap_or(f64::NAN));
            losses.push(test.get("loss").unwrap_or(f64::NAN));
            train_acc.push(train.get("accuracy").unwrap_or(f64::NAN));
            println!(
                "{variant} seed {seed}: train loss {:.4}, train acc {:.4}, test acc {:.4}",
                h.get("loss").last().copied().unwrap_or(f64::NAN),
                train_acc[train_acc.len() - 1],
                accs[accs.len() - 1]
            );
        }
        let mean = accs.iter().sum::<f64>() / accs.len() as f64;
        let std = (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / accs.len() as f64).sqrt();
        writeln!(
            table,
            "| {variant} | {:.4} | {mean:.4} ± {std:.4} | {} | {:.3} |",
            train_acc.iter().sum::<f64>() / 3.0,
            accs.iter()
                .map(|a| format!("{a:.4}"))
                .collect::<Vec<_>>()
                .join(", "),
            losses.iter().sum::<f64>() / 3.0
        )?;
    }
    println!("\n{table}");
    std::fs::write(out.join("regularization.md"), table)?;
    Ok(())
}
