//! `ferrovision classify`: "what is in this photo?" with a pretrained zoo model, in one line.
//!
//! Builds the architecture, loads the weights (a cache name, the original `.pth`, a converted
//! safetensors file: anything `ferrovision_import::pretrained` reads), prepares each image as
//! the weights expect (`ferrovision_models::preprocess`: shorter side resized, centre crop,
//! per-channel normalisation; grey 64x64 for `mini_xception`) and prints the top-k classes with
//! their softmax probabilities, named where the weights' classes are known (ImageNet for 1000
//! classes, FER-2013's emotions for `mini_xception`). `--json` prints one object per line and image:
//! `{"image": PATH, "top": [{"class_id", "label", "prob"}, ...]}`.

use crate::error::{CliError, Result};
use clap::Args;
use ferrovision_data::image::{read_image, Filter, Normalize};
use ferrovision_import::pretrained::build_pretrained;
use ferrovision_models::preprocess::{pretrained_classes, pretrained_preprocessing, Preprocessing};
use ferrovision_models::ModelOptions;
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::CallCtx;
use std::path::{Path, PathBuf};

/// `ferrovision classify`.
#[derive(Debug, Clone, Args)]
pub struct ClassifyArgs {
    /// Zoo architecture the weights are for
    #[arg(long, value_name = "NAME", value_parser = crate::cli::parse_model)]
    pub model: String,
    /// Pretrained weights: a cache name (e.g. efficientnet_lite0, installed by
    /// scripts/fetch_models.sh), or a file (PyTorch .pth/.pt, Keras .h5, TF.js .json, ONNX .onnx, or safetensors from `convert`)
    #[arg(long, value_name = "NAME|FILE")]
    pub weights: String,
    /// Number of classes of the weights' classifier [default: the architecture's, e.g. 1000
    /// for the ImageNet nets, 7 for mini_xception]
    #[arg(long, value_name = "N")]
    pub num_classes: Option<usize>,
    /// PNG or JPEG images
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<PathBuf>,
    /// How many of the most likely classes to print (1 to the number of classes)
    #[arg(long, value_name = "K", default_value_t = 5)]
    pub top: usize,
    /// One JSON object per line and image instead of text
    #[arg(long)]
    pub json: bool,
}

/// The image at `path` as the model's input `[1, channels, crop, crop]`, prepared as `pre`
/// says.
pub fn prepare(path: &Path, pre: &Preprocessing) -> Result<Tensor> {
    let img = read_image(path)?.into_u8().into_rgb();
    let img = if pre.channels == 1 {
        img.to_grey()?
    } else {
        img
    };
    let s = pre.resize_shorter as f64 / img.width.min(img.height) as f64;
    let w = ((img.width as f64 * s).round() as usize).max(pre.crop);
    let h = ((img.height as f64 * s).round() as usize).max(pre.crop);
    let img = img.resize(w, h, Filter::Bilinear)?;
    let img = img.crop((w - pre.crop) / 2, (h - pre.crop) / 2, pre.crop, pre.crop)?;
    let c = pre.channels;
    let norm = Normalize {
        mean: pre.mean[..c].iter().map(|m| m / 255.0).collect(),
        std: pre.std[..c].iter().map(|s| s / 255.0).collect(),
    };
    Ok(img
        .to_tensor_chw(Some(&norm))?
        .reshape(&[1, c, pre.crop, pre.crop])?)
}

/// Prints each image's top classes.
pub fn run(args: ClassifyArgs) -> Result<()> {
    let classes = match args.num_classes {
        Some(n) => n,
        None => ferrovision_models::lookup(&args.model)?.default_classes,
    };
    if args.top == 0 || args.top > classes {
        return Err(CliError::new(format!(
            "--top {} must be between 1 and the number of classes ({classes})",
            args.top
        )));
    }
    let pre = pretrained_preprocessing(&args.model);
    let opts = ModelOptions::new(&[pre.channels, pre.crop, pre.crop], classes);
    let net = build_pretrained(&args.model, &opts, &args.weights)
        .map_err(|e| CliError::new(e.to_string()))?;
    let labels: Vec<String> = match pretrained_classes(&args.model, classes) {
        Some(names) => names.iter().map(|s| s.to_string()).collect(),
        None => (0..classes).map(|i| format!("class {i}")).collect(),
    };
    for path in &args.images {
        let x = prepare(path, &pre)?;
        let logits = net.forward(&[x], &mut CallCtx::new(false))?;
        let probs = logits[0].softmax(1)?.to_vec::<f32>()?;
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        let top = &order[..args.top];
        if args.json {
            let items: Vec<serde_json::Value> = top
                .iter()
                .map(|&i| serde_json::json!({"class_id": i, "label": labels[i], "prob": probs[i]}))
                .collect();
            println!(
                "{}",
                serde_json::json!({"image": path.display().to_string(), "top": items})
            );
        } else {
            let items: Vec<String> = top
                .iter()
                .map(|&i| format!("{} ({:.1}%)", labels[i], 100.0 * probs[i]))
                .collect();
            println!("{}: {}", path.display(), items.join(", "));
        }
    }
    Ok(())
}
