//! The optimizer comparison: LeNet-5 on real MNIST trained with 8 optimizers from the same
//! initial weights, same shuffling and epochs (Keras default learning rates), validation
//! accuracy on the 10 000 test images after every epoch. Prints a table and writes
//! `optimizers.png` (validation-accuracy curves) and `optimizers.csv` into the output folder.
//!
//! ```text
//! cargo run --release -p ferrovision-cli --example optimizers -- data/mnist [epochs] [out dir]
//! ```

use ferrovision_cli::nnglue;
use ferrovision_cli::plot::{plot_panels, Panel};
use ferrovision_cli::tasks::classify::Classify;
use ferrovision_cli::tasks::Task;
use ferrovision_nn::datasets::mnist::{load_mnist, Split};
use ferrovision_nn::optim::optimizer_by_name;
use ferrovision_nn::NetworkExt;
use ferrovision_train::FitOptions;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// (label, optimizer name for `optimizer_by_name`, learning rate: Keras default when None).
const RUNS: [(&str, &str, Option<f64>); 8] = [
    ("SGD 0.01", "sgd", None),
    ("Momentum 0.9", "momentum", None),
    ("Nesterov 0.9", "nesterov", None),
    ("Adagrad", "adagrad", None),
    ("Adadelta 0.001", "adadelta", None),
    ("RMSprop", "rmsprop", None),
    ("Adam", "adam", None),
    ("Nadam", "nadam", None),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .ok_or("usage: optimizers <mnist dir> [epochs] [out dir]")?;
    let epochs: usize = args.get(2).map_or(Ok(20), |e| e.parse())?;
    let out = PathBuf::from(args.get(3).map_or("docs/results", String::as_str));
    std::fs::create_dir_all(&out)?;
    let (x, y) = load_mnist(dir.as_ref(), Split::Train)?;
    let (xt, yt) = load_mnist(dir.as_ref(), Split::Test)?;
    // One set of initial weights for every optimizer.
    ferrovision_nn::tensor::rng::manual_seed(0);
    let init = nnglue::build("lenet5", &[1, 28, 28], 10)?
        .network()
        .get_weights()?;
    let mut curves = Vec::new();
    let mut table = String::from("| optimizer | lr | val acc @5 | val acc @10 | val acc @20 | best | time/epoch |\n|---|---|---|---|---|---|---|\n");
    let mut csv = String::from("optimizer,epoch,loss,accuracy,val_loss,val_accuracy\n");
    for (label, name, lr) in RUNS {
        let mut model = nnglue::build("lenet5", &[1, 28, 28], 10)?;
        model.network().set_weights(&init)?;
        Classify.compile(&mut model, optimizer_by_name(name, lr)?)?;
        let lr_used = model.optimizer().map_or(f64::NAN, |o| o.learning_rate());
        let t = Instant::now();
        let h = model.fit(
            &x,
            &y,
            FitOptions {
                epochs,
                batch_size: 64,
                seed: 1,
                validation_data: Some((vec![xt.clone()], vec![yt.clone()])),
                verbose: 0,
                ..FitOptions::default()
            },
            vec![],
        )?;
        let per_epoch = t.elapsed().as_secs_f64() / epochs as f64;
        let acc = h.get("val_accuracy");
        for (e, logs) in h.epochs.iter().zip(&h.logs) {
            let g = |k: &str| logs.get(k).unwrap_or(f64::NAN);
            writeln!(
                csv,
                "{label},{},{:.6},{:.6},{:.6},{:.6}",
                e + 1,
                g("loss"),
                g("accuracy"),
                g("val_loss"),
                g("val_accuracy")
            )?;
        }
        let at = |e: usize| {
            acc.get(e - 1)
                .map_or("-".to_string(), |v| format!("{v:.4}"))
        };
        let best = acc.iter().cloned().fold(f64::NAN, f64::max);
        writeln!(
            table,
            "| {label} | {lr_used} | {} | {} | {} | {best:.4} | {per_epoch:.1} s |",
            at(5),
            at(10),
            at(20)
        )?;
        println!(
            "{label}: val accuracy {:?}",
            acc.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>()
        );
        curves.push((
            label.to_string(),
            acc.iter()
                .enumerate()
                .map(|(i, &v)| (i as f64 + 1.0, v))
                .collect(),
        ));
    }
    println!("\n{table}");
    std::fs::write(out.join("optimizers.md"), &table)?;
    std::fs::write(out.join("optimizers.csv"), csv)?;
    plot_panels(
        &[Panel {
            key: "val_accuracy".into(),
            series: curves,
        }],
        &out.join("optimizers.png"),
    )?;
    Ok(())
}
