//! The book's first Keras model on real MNIST: Flatten-Dense(128, ReLU)-Dense(10), plain SGD
//! lr 0.01, batch 32, 25 epochs; prints test accuracy after every epoch (reference: 0.936 after
//! 5 epochs, 0.970 after 25).
//!
//! ```text
//! cargo run --release -p ferrovision-cli --example mnist_mlp -- data/mnist [epochs]
//! ```

use ferrovision_cli::nnglue;
use ferrovision_cli::tasks::classify::Classify;
use ferrovision_cli::tasks::Task;
use ferrovision_nn::datasets::mnist::{load_mnist, Split};
use ferrovision_nn::optim::optimizer_by_name;
use ferrovision_train::FitOptions;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).ok_or("usage: mnist_mlp <mnist dir> [epochs]")?;
    let epochs: usize = args.get(2).map_or(Ok(25), |e| e.parse())?;
    let (x, y) = load_mnist(dir.as_ref(), Split::Train)?;
    let (xt, yt) = load_mnist(dir.as_ref(), Split::Test)?;
    ferrovision_nn::tensor::rng::manual_seed(0);
    let mut model = nnglue::build("mlp", &[1, 28, 28], 10)?;
    Classify.compile(&mut model, optimizer_by_name("sgd", Some(0.01))?)?;
    let t = Instant::now();
    let h = model.fit(
        &x,
        &y,
        FitOptions {
            epochs,
            batch_size: 32,
            validation_data: Some((vec![xt], vec![yt])),
            verbose: 0,
            ..FitOptions::default()
        },
        vec![],
    )?;
    println!("epoch  loss    accuracy  test_accuracy");
    for (e, logs) in h.epochs.iter().zip(&h.logs) {
        println!(
            "{:>5}  {:.4}  {:.4}    {:.4}",
            e + 1,
            logs.get("loss").unwrap_or(f64::NAN),
            logs.get("accuracy").unwrap_or(f64::NAN),
            logs.get("val_accuracy").unwrap_or(f64::NAN)
        );
    }
    println!("{epochs} epochs in {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}
