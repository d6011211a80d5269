//! `mnist`: LeNet-5 trained with `Model::fit` on real MNIST — the epoch time a user sees, for
//! comparison with Keras `model.fit` and a PyTorch training loop on the same data
//! (bench/python/mnist_bench.py). Same model, Adam(1e-3), batch 64, shuffled each epoch; the
//! first epoch is a warm-up and `epoch_s` is the median of the others.

use crate::util::{median, Opts};
use ferrovision::nn::datasets::mnist::{load_mnist, Split};
use ferrovision::nn::optim::optimizer_by_name;
use ferrovision::train::{Callback, FitOptions, Logs, Model, Result};
use ferrovision_cli::nnglue;
use ferrovision_cli::tasks::classify::{Classify, ACCURACY};
use ferrovision_cli::tasks::Task;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Records wall time per epoch.
#[derive(Default)]
struct EpochTimer {
    start: Option<Instant>,
    times: Vec<f64>,
}

impl Callback for EpochTimer {
    fn on_epoch_begin(&mut self, _m: &mut Model, _epoch: usize) -> Result<()> {
        self.start = Some(Instant::now());
        Ok(())
    }
    fn on_epoch_end(&mut self, _m: &mut Model, epoch: usize, logs: &Logs) -> Result<()> {
        let t = self.start.map_or(0.0, |s| s.elapsed().as_secs_f64());
        self.times.push(t);
        println!(
            "epoch {}: {t:.2} s, loss {:.4}",
            epoch + 1,
            logs.get("loss").unwrap_or(f64::NAN)
        );
        Ok(())
    }
}

pub fn run(opts: &Opts) -> std::result::Result<(), String> {
    let dir = opts
        .data
        .clone()
        .or_else(|| std::env::var("FERROVISION_MNIST").ok())
        .ok_or("mnist needs --data DIR (the four MNIST IDX files) or FERROVISION_MNIST")?;
    run_inner(Path::new(&dir), opts.epochs.unwrap_or(3)).map_err(|e| e.to_string())
}

fn run_inner(dir: &Path, epochs: usize) -> Result<()> {
    let (x, y) = load_mnist(dir, Split::Train)?;
    let (xt, yt) = load_mnist(dir, Split::Test)?;
    ferrovision::tensor::rng::manual_seed(0);
    let mut model = nnglue::build("lenet5", &[1, 28, 28], 10)
        .map_err(|e| ferrovision::nn::Error::config(e.to_string()))?;
    Classify
        .compile(&mut model, optimizer_by_name("adam", Some(1e-3))?)
        .map_err(|e| ferrovision::nn::Error::config(e.to_string()))?;
    let timer = Arc::new(Mutex::new(EpochTimer::default()));
    let fit = FitOptions {
        epochs,
        batch_size: 64,
        verbose: 0,
        ..FitOptions::default()
    };
    model.fit(&x, &y, fit, vec![Box::new(timer.clone())])?;
    let logs = model.evaluate(&xt, &yt, 1000)?;
    let acc = logs.get(ACCURACY).unwrap_or(f64::NAN);
    let mut times = timer.lock().map(|t| t.times.clone()).unwrap_or_default();
    if times.len() > 1 {
        times.remove(0);
    }
    println!(
        "RESULT mnist epoch_s={:.4} test_acc={acc:.4}",
        median(&mut times)
    );
    Ok(())
}
