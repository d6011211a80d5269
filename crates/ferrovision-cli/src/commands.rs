//! The subcommands: demo, train, evaluate, predict, summary, eval coco|voc, draw.

use crate::cli::{
    ClassNames, Command, DemoArgs, DrawArgs, EvalCocoArgs, EvalCommand, EvalVocArgs, EvaluateArgs,
    ModelKind, PipelineOpts, PredictArgs, SummaryArgs, TrainArgs, TrainOpts,
};
use crate::data::{self, DataSpec};
use crate::error::{io_err, CliError, Context, Result};
use crate::pipeline::{self, DigitPipeline, PipelineStatsLogger};
use crate::{builtin, image_input, nnglue, plot};
use clap::ValueEnum;
use ferrovision_data::Augment;
use ferrovision_io::write_atomic;
use ferrovision_nn::datasets::mnist::{Split, FASHION_MNIST_CLASSES, MNIST_CLASSES};
use ferrovision_nn::tensor::Tensor;
use ferrovision_train::callbacks::{Callback, Logs};
use ferrovision_train::{FitOptions, History, Model};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Runs one parsed command line.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Demo(a) => demo(a),
        Command::Train(a) => train(a).map(|_| ()),
        Command::Evaluate(a) => evaluate(a),
        Command::Predict(a) => predict(a),
        Command::Summary(a) => summary(a),
        Command::Eval(EvalCommand::Coco(a)) => eval_coco(a),
        Command::Eval(EvalCommand::Voc(a)) => eval_voc(a),
        Command::Draw(a) => draw(a),
    }
}

/// Everything that defines a training run; stored as `run.json` in the run directory so that
/// `--resume` continues with the same settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// `"train"` or `"demo"`.
    pub command: String,
    pub model: ModelKind,
    pub data: DataSpec,
    pub optimizer: String,
    pub lr: Option<f64>,
    pub batch_size: usize,
    pub seed: u64,
    pub limit: Option<usize>,
    /// The augmentation of the training images, if any (stored as its JSON config).
    pub augment: Option<Augment>,
}

impl RunConfig {
    fn to_json(&self) -> Value {
        json!({
            "command": self.command,
            "model": self.model.name(),
            "data": self.data.to_string(),
            "optimizer": self.optimizer,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "limit": self.limit,
            "augment": self.augment,
        })
    }

    fn from_json(v: &Value, path: &Path) -> Result<Self> {
        let bad = |field: &str| {
            CliError::new(format!(
                "{}: field '{field}' is missing or invalid",
                path.display()
            ))
        };
        let s = |field: &str| v[field].as_str().ok_or_else(|| bad(field));
        Ok(RunConfig {
            command: s("command")?.to_string(),
            model: ModelKind::from_str(s("model")?, true).map_err(|_| bad("model"))?,
            data: s("data")?.parse().map_err(|_| bad("data"))?,
            optimizer: s("optimizer")?.to_string(),
            lr: v["lr"].as_f64(),
            batch_size: v["batch_size"].as_u64().ok_or_else(|| bad("batch_size"))? as usize,
            seed: v["seed"].as_u64().ok_or_else(|| bad("seed"))?,
            limit: v["limit"].as_u64().map(|n| n as usize),
            augment: match &v["augment"] {
                Value::Null => None,
                a => Some(pipeline::augment_from_json(
                    &a.to_string(),
                    &format!("{} (augment)", path.display()),
                )?),
            },
        })
    }
}

/// What a training run produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub out: PathBuf,
    pub model_file: PathBuf,
    pub test_loss: f64,
    pub test_accuracy: f64,
    pub test_samples: usize,
    pub epochs: usize,
    pub train_seconds: f64,
}

/// Paths inside a run directory.
struct RunDir {
    root: PathBuf,
}

impl RunDir {
    fn config(&self) -> PathBuf {
        self.root.join("run.json")
    }
    fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    fn model(&self) -> PathBuf {
        self.root.join(format!("model.{}", nnglue::MODEL_EXT))
    }
    fn history(&self) -> PathBuf {
        self.root.join("history.json")
    }
    fn metrics(&self) -> PathBuf {
        self.root.join("metrics.json")
    }
    fn plot(&self) -> PathBuf {
        self.root.join("history.png")
    }

    /// The newest checkpoint (highest epoch number in its name), if any.
    fn last_checkpoint(&self) -> Result<Option<PathBuf>> {
        let dir = self.checkpoints();
        if !dir.is_dir() {
            return Ok(None);
        }
        let mut best: Option<(u64, PathBuf)> = None;
        for entry in std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let path = entry.map_err(|e| io_err(&dir, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let ext = format!(".{}", nnglue::MODEL_EXT);
            let Some(num) = name
                .strip_prefix("epoch-")
                .and_then(|r| r.strip_suffix(ext.as_str()))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if best.as_ref().is_none_or(|(b, _)| num > *b) {
                best = Some((num, path));
            }
        }
        Ok(best.map(|(_, p)| p))
    }
}

/// Records the wall time of each epoch.
struct EpochTimer {
    start: Option<Instant>,
    times: Arc<Mutex<Vec<f64>>>,
}

impl Callback for EpochTimer {
    fn on_epoch_begin(&mut self, _model: &mut Model, _epoch: usize) -> ferrovision_nn::Result<()> {
        self.start = Some(Instant::now());
        Ok(())
    }

    fn on_epoch_end(
        &mut self,
        _model: &mut Model,
        _epoch: usize,
        _logs: &Logs,
    ) -> ferrovision_nn::Result<()> {
        if let Some(s) = self.start.take() {
            self.times
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(s.elapsed().as_secs_f64());
        }
        Ok(())
    }
}

/// Writes a history as JSON: epochs and, per epoch, the logged `[key, value]` pairs in order
/// (non-finite values as null).
pub fn history_to_json(h: &History) -> Value {
    json!({
        "epochs": h.epochs,
        "logs": h.logs.iter().map(|l| {
            l.iter().map(|(k, v)| json!([k, if v.is_finite() { json!(v) } else { Value::Null }]))
                .collect::<Vec<_>>()
        }).collect::<Vec<_>>(),
    })
}

/// Reads what [`history_to_json`] wrote.
pub fn history_from_json(v: &Value, path: &Path) -> Result<History> {
    let bad = || CliError::new(format!("{}: not a history file", path.display()));
    let epochs = v["epochs"].as_array().ok_or_else(bad)?;
    let logs = v["logs"].as_array().ok_or_else(bad)?;
    if epochs.len() != logs.len() {
        return Err(bad());
    }
    let mut h = History::default();
    for (e, l) in epochs.iter().zip(logs) {
        h.epochs.push(e.as_u64().ok_or_else(bad)? as usize);
        let mut logs = Logs::new();
        for pair in l.as_array().ok_or_else(bad)? {
            let k = pair[0].as_str().ok_or_else(bad)?;
            logs.insert(k, pair[1].as_f64().unwrap_or(f64::NAN));
        }
        h.logs.push(logs);
    }
    Ok(h)
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::new(format!("{}: invalid JSON ({e})", path.display())))
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v)
        .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    text.push('\n');
    Ok(write_atomic(path, text.as_bytes())?)
}

/// Trains (or resumes) a run and writes the whole run directory.
fn train_run(
    cfg: &RunConfig,
    out: &Path,
    epochs: usize,
    resume: bool,
    verbose: u8,
    pipe: &PipelineOpts,
) -> Result<TrainOutcome> {
    let dir = RunDir {
        root: out.to_path_buf(),
    };
    if cfg.batch_size == 0 {
        return Err(CliError::new("--batch-size must be at least 1"));
    }
    let (mut model, mut history) = if resume {
        let ckpt = dir.last_checkpoint()?.ok_or_else(|| {
            CliError::new(format!(
                "{}: no checkpoint to resume from (expected checkpoints/epoch-NNN.{})",
                out.display(),
                nnglue::MODEL_EXT
            ))
        })?;
        let model = nnglue::load(&ckpt).context("cannot resume")?;
        let history = if dir.history().is_file() {
            history_from_json(&read_json(&dir.history())?, &dir.history())?
        } else {
            History::default()
        };
        (model, history)
    } else {
        ferrovision_nn::tensor::rng::manual_seed(cfg.seed);
        let mut model = nnglue::build(cfg.model)?;
        nnglue::compile(&mut model, &cfg.optimizer, cfg.lr)?;
        (model, History::default())
    };
    let (x_train, y_train) = cfg
        .data
        .load(Split::Train)
        .and_then(|d| data::take(d, cfg.limit))
        .context("loading the training set")?;
    let (x_test, y_test) = cfg.data.load(Split::Test).context("loading the test set")?;
    let n_train = x_train.shape()[0];
    let n_test = x_test.shape()[0];

    let done = model.epoch();
    if epochs <= done {
        return Err(CliError::new(format!(
            "{}: the run already has {done} epoch(s); pass a larger --epochs to train further",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    write_json(&dir.config(), &cfg.to_json())?;

    // The shuffling order and the augmentation depend only on (seed, epoch), so a resumed run
    // sees the same batches as an uninterrupted one.
    let mut train_data = DigitPipeline::new(&x_train, &y_train, cfg.batch_size)?
        .shuffle(cfg.seed)
        .augment(cfg.augment.clone())
        .workers(pipe.workers);
    let mut test_data = DigitPipeline::new(&x_test, &y_test, 256)?.workers(pipe.workers);

    let times = Arc::new(Mutex::new(Vec::new()));
    let mut callbacks = nnglue::callbacks(out, resume)?;
    callbacks.push(Box::new(EpochTimer {
        start: None,
        times: times.clone(),
    }));
    callbacks.push(Box::new(PipelineStatsLogger::new(
        train_data.stats_handle(),
        out,
        resume,
        pipe.stats,
    )?));
    let opts = FitOptions {
        epochs,
        verbose,
        ..FitOptions::default()
    };
    let t0 = Instant::now();
    let new = model.fit_source(&mut train_data, Some(&mut test_data), &opts, callbacks)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    history.epochs.extend(new.epochs.iter().copied());
    history.logs.extend(new.logs.iter().cloned());

    nnglue::save(&model, &dir.model())?;
    let logs = model.evaluate_source(&mut test_data)?;
    let test_loss = logs.get("loss").unwrap_or(f64::NAN);
    let test_accuracy = logs.get(nnglue::ACCURACY).unwrap_or(f64::NAN);
    write_json(&dir.history(), &history_to_json(&history))?;
    plot::plot_history(&history, &dir.plot())?;
    let epoch_seconds = times.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let lr = model.optimizer().map(|o| o.learning_rate());
    write_json(
        &dir.metrics(),
        &json!({
            "model": cfg.model.name(),
            "data": cfg.data.to_string(),
            "optimizer": cfg.optimizer,
            "lr": lr,
            "batch_size": cfg.batch_size,
            "seed": cfg.seed,
            "epochs": model.epoch(),
            "train_samples": n_train,
            "test_samples": n_test,
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
            "train_seconds": train_seconds,
            "epoch_seconds": epoch_seconds,
            "last_epoch": history.last().map(|l| {
                l.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()
            }),
        }),
    )?;
    Ok(TrainOutcome {
        out: out.to_path_buf(),
        model_file: dir.model(),
        test_loss,
        test_accuracy,
        test_samples: n_test,
        epochs: model.epoch(),
        train_seconds,
    })
}

/// Resolves `train`'s options (defaults, or the run's own settings with `--resume`).
fn train_config(args: &TrainArgs) -> Result<(RunConfig, PathBuf, usize)> {
    let t = &args.train;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(args.model.unwrap_or(ModelKind::Lenet5).name())
    });
    let dir = RunDir { root: out.clone() };
    if args.resume {
        if !dir.config().is_file() {
            return Err(CliError::new(format!(
                "{}: no run to resume here (run.json is missing); train without --resume first",
                out.display()
            )));
        }
        let saved = RunConfig::from_json(&read_json(&dir.config())?, &dir.config())?;
        if let Some(m) = args.model {
            if m != saved.model {
                return Err(CliError::new(format!(
                    "--model {} does not match the run in {} (a {} model)",
                    m.name(),
                    out.display(),
                    saved.model.name()
                )));
            }
        }
        if let Some(o) = &t.optimizer {
            if *o != saved.optimizer {
                return Err(CliError::new(format!(
                    "--optimizer {o} does not match the run in {} (trained with {}); the \
                     optimizer state comes from the checkpoint",
                    out.display(),
                    saved.optimizer
                )));
            }
        }
        let cfg = RunConfig {
            command: saved.command.clone(),
            data: args.data.clone().unwrap_or(saved.data),
            batch_size: t.batch_size.unwrap_or(saved.batch_size),
            seed: t.seed.unwrap_or(saved.seed),
            limit: args.limit.or(saved.limit),
            augment: match &t.augment {
                Some(path) => Some(pipeline::load_augment(path)?),
                None => saved.augment.clone(),
            },
            ..saved
        };
        let epochs = t.epochs.ok_or_else(|| {
            CliError::new("--resume needs --epochs: the total number of epochs to reach")
        })?;
        return Ok((cfg, out, epochs));
    }
    if dir.config().exists() || dir.checkpoints().exists() {
        return Err(CliError::new(format!(
            "{} already holds a training run; pass --resume to continue it, or choose another \
             --out",
            out.display()
        )));
    }
    let cfg = RunConfig {
        command: "train".into(),
        model: args.model.unwrap_or(ModelKind::Lenet5),
        data: args.data.clone().unwrap_or(DataSpec::Builtin),
        optimizer: t.optimizer.clone().unwrap_or_else(|| "adam".into()),
        lr: t.lr,
        batch_size: t.batch_size.unwrap_or(32),
        seed: t.seed.unwrap_or(42),
        limit: args.limit,
        augment: t
            .augment
            .as_deref()
            .map(pipeline::load_augment)
            .transpose()?,
    };
    Ok((cfg, out, t.epochs.unwrap_or(10)))
}

/// `ferrovision train`.
pub fn train(args: TrainArgs) -> Result<TrainOutcome> {
    let (cfg, out, epochs) = train_config(&args)?;
    if args.train.lr.is_some() && args.resume {
        eprintln!("note: --lr is ignored with --resume (the checkpoint's optimizer state is used)");
    }
    println!(
        "training {} on {} for {} epoch(s), batch size {}, optimizer {}{}; run directory {}",
        cfg.model.name(),
        cfg.data,
        epochs,
        cfg.batch_size,
        cfg.optimizer,
        cfg.lr.map(|l| format!(" (lr {l})")).unwrap_or_default(),
        out.display()
    );
    let o = train_run(
        &cfg,
        &out,
        epochs,
        args.resume,
        args.train.verbose,
        &args.train.pipeline,
    )?;
    println!(
        "test accuracy {:.4} (loss {:.4}) on {} images after {} epoch(s); training took {:.1} s",
        o.test_accuracy, o.test_loss, o.test_samples, o.epochs, o.train_seconds
    );
    println!(
        "wrote {}: model.{}, checkpoints/, log.csv, pipeline_stats.csv, tensorboard/, \
         history.png, metrics.json",
        o.out.display(),
        nnglue::MODEL_EXT
    );
    Ok(o)
}

/// Removes what an earlier demo left in `out`, refusing to touch other runs.
fn clear_demo_dir(out: &Path) -> Result<()> {
    let dir = RunDir {
        root: out.to_path_buf(),
    };
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
    } else if std::fs::read_dir(out)
        .map_err(|e| io_err(out, e))?
        .next()
        .is_some()
    {
        return Err(CliError::new(format!(
            "{} exists and is not a demo run directory; choose another --out",
            out.display()
        )));
    }
    std::fs::remove_dir_all(out).map_err(|e| io_err(out, e))?;
    Ok(())
}

/// `ferrovision demo`.
pub fn demo(args: DemoArgs) -> Result<()> {
    let t = &args.train;
    let cfg = RunConfig {
        command: "demo".into(),
        model: ModelKind::Lenet5,
        data: DataSpec::Builtin,
        optimizer: t.optimizer.clone().unwrap_or_else(|| "adam".into()),
        lr: t.lr,
        batch_size: t.batch_size.unwrap_or(64),
        seed: t.seed.unwrap_or(42),
        limit: None,
        augment: t
            .augment
            .as_deref()
            .map(pipeline::load_augment)
            .transpose()?,
    };
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
    let o = train_run(&cfg, &args.out, epochs, false, t.verbose, &t.pipeline)?;
    println!(
        "test accuracy: {:.2}% ({:.0} of {} held-out digits), training took {:.1} s",
        100.0 * o.test_accuracy,
        (o.test_accuracy * o.test_samples as f64).round(),
        o.test_samples,
        o.train_seconds
    );
    println!("model saved to {}", o.model_file.display());

    // Classify one held-out digit of each class, going through PNG files exactly as
    // `ferrovision predict` would, with the model reloaded from disk.
    let (x_test, y_test) = builtin::digits(Split::Test)?;
    let labels = y_test.to_vec::<i64>()?;
    let samples = args.out.join("samples");
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
    let preds = classify(&model, &paths)?;
    println!(
        "predictions for held-out digits saved in {}:",
        samples.display()
    );
    let mut right = 0;
    for ((path, truth), probs) in files.iter().zip(&preds) {
        let top = top_k(probs, 3);
        if top[0].0 == *truth as usize {
            right += 1;
        }
        println!(
            "  {}  true {truth}  ->  {}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            format_top(&top, &MNIST_CLASSES)
        );
    }
    println!("{right} of {} correct", files.len());
    println!(
        "try: ferrovision predict --model-file {} <your-digit.png>",
        o.model_file.display()
    );
    Ok(())
}

/// `ferrovision evaluate`.
pub fn evaluate(args: EvaluateArgs) -> Result<()> {
    let mut model = nnglue::load(&args.model_file)?;
    let (x, y) = data::take(args.data.load(Split::Test)?, args.limit)?;
    if args.batch_size == 0 {
        return Err(CliError::new("--batch-size must be at least 1"));
    }
    let n = x.shape()[0];
    let mut test_data = DigitPipeline::new(&x, &y, args.batch_size)?.workers(args.pipeline.workers);
    let t0 = Instant::now();
    let logs = model.evaluate_source(&mut test_data)?;
    let secs = t0.elapsed().as_secs_f64();
    let loss = logs.get("loss").unwrap_or(f64::NAN);
    let acc = logs.get(nnglue::ACCURACY).unwrap_or(f64::NAN);
    println!(
        "{} on the test split of {} ({n} images): accuracy {acc:.4}, loss {loss:.4} ({:.0} images/s)",
        args.model_file.display(),
        args.data,
        n as f64 / secs.max(1e-9)
    );
    if args.pipeline.stats {
        if let Some(report) = test_data.stats_handle().report() {
            println!("input pipeline:\n{}", report.table());
        }
    }
    Ok(())
}

/// Class probabilities (softmax of the model's logits) for each image file.
fn classify(model: &Model, paths: &[PathBuf]) -> Result<Vec<Vec<f64>>> {
    let mut pixels = Vec::with_capacity(paths.len() * 784);
    for p in paths {
        pixels.extend(image_input::load_digit(p)?);
    }
    let x = Tensor::from_vec(pixels, &[paths.len(), 1, 28, 28])?;
    let logits = model.predict(&x, 256)?;
    if logits.rank() != 2 || logits.shape()[0] != paths.len() {
        return Err(CliError::new(format!(
            "the model outputs shape {:?}; a classifier outputs [images, classes]",
            logits.shape()
        )));
    }
    let probs = logits.softmax(-1)?.to_f64_vec()?;
    let k = logits.shape()[1];
    Ok(probs.chunks(k).map(|c| c.to_vec()).collect())
}

/// The `k` most likely (class, probability) pairs, most likely first.
pub fn top_k(probs: &[f64], k: usize) -> Vec<(usize, f64)> {
    let mut idx: Vec<(usize, f64)> = probs.iter().copied().enumerate().collect();
    idx.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    idx.truncate(k.max(1));
    idx
}

fn format_top(top: &[(usize, f64)], names: &[&str]) -> String {
    top.iter()
        .map(|&(c, p)| {
            let name = names
                .get(c)
                .map_or_else(|| format!("class {c}"), |n| n.to_string());
            format!("{name} ({:.1}%)", 100.0 * p)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ferrovision predict`.
pub fn predict(args: PredictArgs) -> Result<()> {
    let model = nnglue::load(&args.model_file)?;
    let names: &[&str] = match args.classes {
        ClassNames::Digits => &MNIST_CLASSES,
        ClassNames::Fashion => &FASHION_MNIST_CLASSES,
    };
    let preds = classify(&model, &args.images)?;
    for (path, probs) in args.images.iter().zip(&preds) {
        println!(
            "{}: {}",
            path.display(),
            format_top(&top_k(probs, args.top), names)
        );
    }
    Ok(())
}

/// `ferrovision summary`.
pub fn summary(args: SummaryArgs) -> Result<()> {
    let model = match &args.model_file {
        Some(p) => nnglue::load(p)?,
        None => nnglue::build(args.model)?,
    };
    print!("{}", nnglue::summary(&model)?);
    Ok(())
}

/// `ferrovision eval coco`: prints pycocotools' summary (or JSON).
pub fn eval_coco(args: EvalCocoArgs) -> Result<()> {
    let report =
        ferrovision_vision::eval_coco_report(&args.gt, &args.dt, &args.iou_type, args.json)
            .map_err(|e| CliError::new(e.to_string()))?;
    print!("{report}");
    Ok(())
}

/// `ferrovision eval voc`: prints per-class AP and mAP.
pub fn eval_voc(args: EvalVocArgs) -> Result<()> {
    let opts = ferrovision_vision::VocOpts {
        iou_threshold: args.iou,
        use_07_metric: args.use_07,
        ..Default::default()
    };
    let report = ferrovision_vision::eval_voc_report(&args.gt, &args.dt, opts)
        .map_err(|e| CliError::new(e.to_string()))?;
    print!("{report}");
    Ok(())
}

/// `ferrovision draw`: writes the annotated PNG and says where.
pub fn draw(args: DrawArgs) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .image
            .file_stem()
            .map_or("image".into(), |s| s.to_string_lossy().into_owned());
        args.image.with_file_name(format!("{stem}-boxes.png"))
    });
    let n = ferrovision_vision::draw_boxes_file(&args.image, &args.boxes, &out)
        .map_err(|e| CliError::new(e.to_string()))?;
    println!("drew {n} box(es) into {}", out.display());
    Ok(())
}

/// The shared options of `train`/`demo` (used by tests to build argument structs).
pub fn default_train_opts() -> TrainOpts {
    TrainOpts {
        epochs: None,
        batch_size: None,
        optimizer: None,
        lr: None,
        seed: None,
        verbose: 1,
        augment: None,
        pipeline: PipelineOpts {
            workers: 2,
            stats: false,
        },
    }
}
