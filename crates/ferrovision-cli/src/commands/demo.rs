//! `ferrovision demo`: LeNet-5 on the built-in digits, then predictions on held-out digits
//! written as PNG files and read back exactly as `predict` reads a user's images.

use crate::cli::TrainOpts;
use crate::data::DataSpec;
use crate::error::{io_err, CliError, Result};
use crate::run_dir::{read_json, RunConfig, RunDir};
use crate::run_lock::RunLock;
use crate::tasks::classify::{class_probabilities, format_top, top_k};
use crate::tasks::TaskKind;
use crate::training::{train_run, RunRequest};
use crate::{builtin, image_input, nnglue, pipeline};
use clap::Args;
use ferrovision_nn::datasets::mnist::{Split, MNIST_CLASSES};
use std::path::{Path, PathBuf};

/// `ferrovision demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Run directory to write (the model ends up in <DIR>/model.safetensors)
    #[arg(long, value_name = "DIR", default_value = "runs/demo")]
    pub out: PathBuf,
    #[command(flatten)]
    pub train: TrainOpts,
}

/// Removes what an earlier demo wrote in `out` (its files only: anything the user added stays),
/// refusing to touch other runs.
fn clear_demo_dir(out: &Path) -> Result<()> {
    let dir = RunDir::new(out);
    if !out.exists() {
        return Ok(());
    }
    if dir.config().is_file() {
        let saved = RunConfig::from_json(&read_json(&dir.config())?, &dir.config())?;
        if saved.command != "demo" {
            return Err(CliError::new(format!(
                "{} holds a training run that is not a demo; choose another --out",
                out.display()
            )));
        }
    } else if !dir.is_empty_or_lock_only()? {
        return Err(CliError::new(format!(
            "{} exists and is not a demo run directory; choose another --out",
            out.display()
        )));
    }
    let _lock = RunLock::acquire(out)?;
    dir.remove_outputs()?;
    let samples = out.join(SAMPLES);
    if samples.is_dir() {
        for entry in std::fs::read_dir(&samples).map_err(|e| io_err(&samples, e))? {
            let path = entry.map_err(|e| io_err(&samples, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("test-") && name.contains("-label-") && name.ends_with(".png") {
                std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            }
        }
    }
    Ok(())
}

/// The folder of the demo's sample digits inside its run directory.
const SAMPLES: &str = "samples";

/// Trains, reports and classifies one held-out digit of each class.
pub fn run(args: DemoArgs) -> Result<()> {
    let t = &args.train;
    let cfg = RunConfig {
        command: "demo".into(),
        task: TaskKind::Classify,
        model: "lenet5".into(),
        data: DataSpec::Builtin,
        optimizer: t.optimizer.clone().unwrap_or_else(|| "adam".into()),
        lr: t.lr,
        batch_size: t.batch_size.unwrap_or(64),
        seed: t.seed.unwrap_or(42),
        limit: None,
        test_limit: None,
        augment: t
            .augment
            .as_deref()
            .map(pipeline::load_augment)
            .transpose()?,
        recipe: Default::default(),
        run_id: None,
    }
    .with_fingerprint();
    let epochs = t.epochs.unwrap_or(15);
    clear_demo_dir(&args.out)?;
    println!("{}", builtin::LICENCE);
    println!(
        "training LeNet-5 on {} built-in digits for {epochs} epochs (batch {}, {}), testing on {} \
         digits it never sees in training",
        builtin::TRAIN_LEN,
        cfg.batch_size,
        cfg.optimizer,
        builtin::TEST_LEN
    );
    let o = train_run(RunRequest {
        cfg: &cfg,
        out: &args.out,
        epochs,
        resume: false,
        verbose: t.verbose,
        pipe: &t.pipeline,
        augment_source: t
            .augment
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    })?;
    println!(
        "test accuracy: {:.2}% ({:.0} of {} held-out digits), training took {:.1} s",
        100.0 * o.test_metric,
        (o.test_metric * o.test_samples as f64).round(),
        o.test_samples,
        o.train_seconds
    );
    println!("model saved to {}", o.model_file.display());

    // Classify one held-out digit of each class, going through PNG files exactly as
    // `ferrovision predict` would, with the model reloaded from disk.
    let (x_test, y_test) = builtin::digits(Split::Test)?;
    let labels = y_test.to_vec::<i64>()?;
    let samples = args.out.join(SAMPLES);
    std::fs::create_dir_all(&samples).map_err(|e| io_err(&samples, e))?;
    let mut files = Vec::new();
    for digit in 0..10i64 {
        let Some(i) = labels.iter().position(|&l| l == digit) else {
            continue;
        };
        let pixels = x_test.narrow(0, i, 1)?.contiguous()?.to_vec::<f32>()?;
        let path = samples.join(format!("test-{i:04}-label-{digit}.png"));
        image_input::save_digit_png(&pixels, &path)?;
        files.push((path, digit));
    }
    let model = nnglue::load(&o.model_file)?;
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let preds = class_probabilities(&model, &paths)?;
    println!(
        "predictions for held-out digits saved in {}:",
        samples.display()
    );
    let names: Vec<String> = MNIST_CLASSES.iter().map(|s| s.to_string()).collect();
    let mut right = 0;
    for ((path, truth), probs) in files.iter().zip(&preds) {
        let top = top_k(probs, 3);
        if top[0].0 == *truth as usize {
            right += 1;
        }
        println!(
            "  {}  true {truth}  ->  {}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            format_top(&top, Some(&names))
        );
    }
    println!("{right} of {} correct", files.len());
    println!(
        "try: ferrovision predict --model-file {} <your-digit.png>",
        o.model_file.display()
    );
    Ok(())
}
