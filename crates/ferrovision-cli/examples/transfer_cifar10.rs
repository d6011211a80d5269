//! Transfer learning on CIFAR-10 from ImageNet EfficientNet-Lite0, the book's two steps
//! (chapter 4): a frozen pretrained feature extractor with a new classifier, then fine-tuning
//! the last block with the classifier.
//!
//! The pretrained network (real ImageNet weights from the model cache, `scripts/
//! fetch_models.sh`) is built for `SIZE`x`SIZE` inputs with a new 10-class `_fc`, and split
//! twice (`Functional::split_at`):
//!
//! 1. `frozen` = stem + blocks 0..=14 (never trained here): run **once** over every image
//!    (CIFAR's 32x32 upsampled bilinearly to `SIZE`, then `(x - 127) / 128` as the weights
//!    expect); its activations (`[192, SIZE/32, SIZE/32]` per image) are cached in `CACHE_DIR`
//!    as safetensors, so later runs skip this step;
//! 2. `body` = block 15 + the 1280-channel head conv + global average pool: run once over the
//!    cached activations to get the 1280-d features; **frozen feature extraction** trains only
//!    the classifier (`_dropout` + `_fc`) on them;
//! 3. **fine-tuning**: `body` + the trained classifier train together on the cached
//!    activations with a 10x smaller learning rate, batch norm kept in inference mode (frozen,
//!    as Keras advises for fine-tuning).
//!
//! Prints test top-1 (and top-5) accuracy after each epoch of both phases and the time of each
//! step.
//!
//! ```text
//! cargo run --release -p ferrovision-cli --example transfer_cifar10 -- \
//!     ../shared/data/cifar10 [SIZE=224] [TRAIN_LIMIT=all] [TEST_LIMIT=all] [CACHE_DIR=runs/transfer]
//! ```

use ferrovision_cli::data::{DataSpec, Labelled, LoadOpts};
use ferrovision_cli::tasks::classify::Classify;
use ferrovision_cli::tasks::Task;
use ferrovision_import::pretrained::load_backbone;
use ferrovision_io::{load_safetensors, save_safetensors};
use ferrovision_models::{build, ModelOptions};
use ferrovision_nn::datasets::mnist::Split;
use ferrovision_nn::optim::optimizer_by_name;
use ferrovision_nn::tensor::{no_grad, ResizeMode, Tensor};
use ferrovision_nn::{CallCtx, Functional, LayerSelector, Network, NetworkExt};
use ferrovision_train::{FitOptions, History, Model};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

type Error = Box<dyn std::error::Error>;

/// Where the frozen part ends and the trained body begins: the output of block 14.
const CUT: &str = "_blocks/14/_add";
/// Where the body ends and the classifier begins.
const FEATURES: &str = "_avg_pooling";
/// Images per forward pass when caching.
const CHUNK: usize = 50;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: transfer_cifar10 <cifar10 dir> [size] [train limit] [test limit] [cache dir]";
    let dir = PathBuf::from(args.get(1).ok_or(usage)?);
    let size: usize = args.get(2).map_or(Ok(224), |s| s.parse())?;
    let limit = |i: usize| -> Result<Option<usize>, Error> {
        Ok(match args.get(i).map(String::as_str) {
            None | Some("all") => None,
            Some(n) => Some(n.parse()?),
        })
    };
    let (train_limit, test_limit) = (limit(3)?, limit(4)?);
    let cache = PathBuf::from(args.get(5).map_or("runs/transfer", String::as_str));
    std::fs::create_dir_all(&cache)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    let spec = DataSpec::Cifar10(dir);
    let load = |split, limit| {
        spec.load(
            split,
            &LoadOpts {
                limit,
                shape: None,
                workers: threads,
            },
        )
    };
    let (train, test) = (
        load(Split::Train, train_limit)?,
        load(Split::Test, test_limit)?,
    );
    println!(
        "CIFAR-10: {} training and {} test images, upsampled to {size}x{size}",
        train.len(),
        test.len()
    );

    let opts = ModelOptions::new(&[3, size, size], 10);
    let net = build("efficientnet_lite0", &opts)?;
    let loaded = load_backbone(
        net.as_ref(),
        "efficientnet_lite0",
        &opts,
        "efficientnet_lite0",
    )?;
    println!("loaded {} pretrained ImageNet weights", loaded.len());
    let (frozen, tail) = net
        .into_functional()
        .ok_or("efficientnet_lite0 is functional")?
        .split_at(CUT, "frozen", "tail")?;

    // Step 1: the frozen part, once per image (cached).
    let key =
        |split: &str, n: usize| cache.join(format!("activations_{split}_{size}px_{n}.safetensors"));
    let t = Instant::now();
    let x_train = cached(&key("train", train.len()), || {
        activations(&frozen, &train, size)
    })?;
    let x_test = cached(&key("test", test.len()), || {
        activations(&frozen, &test, size)
    })?;
    println!(
        "frozen blocks 0..=14: activations {:?} per image ({:.1} s)",
        &x_train.shape()[1..],
        t.elapsed().as_secs_f64()
    );
    let y_train = labels(&train)?;
    let y_test = labels(&test)?;

    // Step 2: features through the (still frozen) body, then the classifier alone.
    let (body, head) = tail.split_at(FEATURES, "body", "head")?;
    let t = Instant::now();
    let f_train = forward_chunks(&body, &x_train)?;
    let f_test = forward_chunks(&body, &x_test)?;
    println!(
        "features {:?} per image ({:.1} s)",
        &f_train.shape()[1..],
        t.elapsed().as_secs_f64()
    );
    let head_weights = head.named_weights();
    let mut model = Model::new(head);
    Classify.compile(&mut model, optimizer_by_name("adam", Some(1e-3))?)?;
    let t = Instant::now();
    let h = fit(&mut model, &f_train, &y_train, &f_test, &y_test, 20, 128)?;
    report("frozen features + new classifier", &h, t);

    // Step 3: fine-tune block 15, the head conv and the classifier on the cached activations.
    let tuned = build("efficientnet_lite0", &opts)?;
    load_backbone(
        tuned.as_ref(),
        "efficientnet_lite0",
        &opts,
        "efficientnet_lite0",
    )?;
    let (_, mut tail) = tuned
        .into_functional()
        .ok_or("efficientnet_lite0 is functional")?
        .split_at(CUT, "frozen", "tail")?;
    let trained: HashMap<String, Vec<f32>> = head_weights
        .iter()
        .map(|(n, p)| Ok((n.clone(), p.to_vec()?)))
        .collect::<Result<_, Error>>()?;
    for (name, p) in tail.named_weights() {
        if let Some(v) = trained.get(&name) {
            p.assign(v)?;
        }
    }
    tail.set_trainable_where(&"class:BatchNormalization".parse::<LayerSelector>()?, false)?;
    let trainable: usize = tail
        .trainable_weights()
        .iter()
        .map(|(_, p)| p.numel())
        .sum();
    println!("fine-tuning {trainable} weights (batch norm frozen)");
    let mut model = Model::new(tail);
    Classify.compile(&mut model, optimizer_by_name("adam", Some(1e-4))?)?;
    let t = Instant::now();
    let h = fit(&mut model, &x_train, &y_train, &x_test, &y_test, 3, 64)?;
    report("fine-tuned block 15 + head", &h, t);
    Ok(())
}

/// The tensor stored at `path`, or `make()`'s result, then stored there (atomically).
fn cached(path: &Path, make: impl FnOnce() -> Result<Tensor, Error>) -> Result<Tensor, Error> {
    if path.is_file() {
        let mut file = load_safetensors(path)?;
        return Ok(file.tensors.remove(0).1);
    }
    let t = make()?;
    save_safetensors(path, &[("activations".into(), t.clone())], HashMap::new())?;
    Ok(t)
}

/// `frozen` over every image of `data`, upsampled to `size` and scaled as the weights expect.
fn activations(frozen: &Functional, data: &Labelled, size: usize) -> Result<Tensor, Error> {
    let [c, h, w] = data.shape;
    let per = c * h * w;
    let t = Instant::now();
    let mut out = Vec::new();
    let mut shape = Vec::new();
    for start in (0..data.len()).step_by(CHUNK) {
        let n = CHUNK.min(data.len() - start);
        let px = data.pixels[start * per..(start + n) * per].to_vec();
        let x = Tensor::from_vec(px, &[n, c, h, w])?
            .resize(
                &[size, size],
                ResizeMode::Bilinear {
                    align_corners: false,
                },
            )?
            .mul_scalar(255.0 / 128.0)?
            .add_scalar(-127.0 / 128.0)?;
        let y = no_grad(|| frozen.forward(&[x], &mut CallCtx::new(false)))?.remove(0);
        shape = y.shape().to_vec();
        out.extend(y.to_vec::<f32>()?);
        if start % (CHUNK * 40) == 0 && start > 0 {
            println!(
                "  {start}/{} images, {:.1} img/s",
                data.len(),
                start as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    shape[0] = data.len();
    Ok(Tensor::from_vec(out, &shape)?)
}

/// `net` over `x` in chunks, in inference mode.
fn forward_chunks(net: &Functional, x: &Tensor) -> Result<Tensor, Error> {
    let n = x.shape()[0];
    let mut parts = Vec::new();
    for start in (0..n).step_by(CHUNK * 4) {
        let len = (CHUNK * 4).min(n - start);
        let chunk = x.narrow(0, start, len)?;
        parts.push(no_grad(|| net.forward(&[chunk], &mut CallCtx::new(false)))?.remove(0));
    }
    Ok(Tensor::cat(&parts.iter().collect::<Vec<_>>(), 0)?)
}

fn labels(data: &Labelled) -> Result<Tensor, Error> {
    Ok(Tensor::from_vec(data.labels.clone(), &[data.len()])?)
}

fn fit(
    model: &mut Model,
    x: &Tensor,
    y: &Tensor,
    xt: &Tensor,
    yt: &Tensor,
    epochs: usize,
    batch_size: usize,
) -> Result<History, Error> {
    Ok(model.fit(
        x,
        y,
        FitOptions {
            epochs,
            batch_size,
            validation_data: Some((vec![xt.clone()], vec![yt.clone()])),
            verbose: 0,
            ..FitOptions::default()
        },
        vec![],
    )?)
}

fn report(what: &str, h: &History, t: Instant) {
    println!("{what}:");
    println!("  epoch  loss    accuracy  test_accuracy  test_top5");
    for (e, logs) in h.epochs.iter().zip(&h.logs) {
        println!(
            "  {:>5}  {:.4}  {:.4}    {:.4}         {:.4}",
            e + 1,
            logs.get("loss").unwrap_or(f64::NAN),
            logs.get("accuracy").unwrap_or(f64::NAN),
            logs.get("val_accuracy").unwrap_or(f64::NAN),
            logs.get("val_top_5_accuracy").unwrap_or(f64::NAN)
        );
    }
    println!("  ({:.1} s)", t.elapsed().as_secs_f64());
}
