//! `ferrovision convert`: pretrained weights from the formats people have (PyTorch `.pth`
//! zip or legacy pickle, and the other readers of `ferrovision-import`) into a ferrovision
//! safetensors weights file for a zoo architecture, checked on the way: every weight of the
//! architecture must be found with its shape, and no tensor of the file may be left over
//! (except with `--no-top`, where the classifier's are). The output loads with `classify
//! --weights`, `train --pretrained` or `ferrovision_nn::weights::load_weights`; `--cache NAME`
//! writes it into the local model cache as `NAME` (with its SHA-256 beside it).

use crate::error::{CliError, Result};
use clap::Args;
use ferrovision_import::{hub, pretrained::build_pretrained};
use ferrovision_models::ModelOptions;
use std::path::PathBuf;

/// `ferrovision convert`.
#[derive(Debug, Clone, Args)]
pub struct ConvertArgs {
    /// Weights to convert: a file (PyTorch .pth/.pt, Keras .h5/.hdf5, TF.js manifest .json, ONNX .onnx, safetensors) or a cache name
    #[arg(value_name = "IN")]
    pub input: String,
    /// Zoo architecture the weights are for
    #[arg(long, value_name = "NAME", value_parser = crate::cli::parse_model)]
    pub arch: String,
    /// Number of classes of the weights' classifier [default: the architecture's own]
    #[arg(long, value_name = "N")]
    pub num_classes: Option<usize>,
    /// Convert only the backbone (the architecture without its classifier)
    #[arg(long)]
    pub no_top: bool,
    /// Output safetensors file
    #[arg(long, value_name = "FILE", required_unless_present = "cache")]
    pub out: Option<PathBuf>,
    /// Write into the local model cache as NAME (usable as --weights NAME)
    #[arg(long, value_name = "NAME", conflicts_with = "out")]
    pub cache: Option<String>,
}

/// Converts and reports what was written.
pub fn run(args: ConvertArgs) -> Result<()> {
    let entry = ferrovision_models::lookup(&args.arch)?;
    let classes = args.num_classes.unwrap_or(entry.default_classes);
    let opts = ModelOptions::new(&entry.default_input, classes).include_top(!args.no_top);
    let net = build_pretrained(&args.arch, &opts, &args.input)
        .map_err(|e| CliError::new(e.to_string()))?;
    let out = match (&args.out, &args.cache) {
        (Some(p), _) => p.clone(),
        (None, Some(name)) => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                return Err(CliError::new(format!(
                    "--cache '{name}': use letters, digits, '_', '-' and '.' only"
                )));
            }
            let dir = hub::models_dir();
            std::fs::create_dir_all(&dir).map_err(|e| crate::error::io_err(&dir, e))?;
            dir.join(format!("{name}.safetensors"))
        }
        (None, None) => unreachable!("clap requires --out or --cache"),
    };
    ferrovision_nn::weights::save_weights(net.as_ref(), &out)?;
    let sha = hub::sha256_hex(&out).map_err(|e| CliError::new(e.to_string()))?;
    if args.cache.is_some() {
        let sidecar = PathBuf::from(format!("{}.sha256", out.display()));
        ferrovision_io::write_atomic(&sidecar, format!("{sha}\n").as_bytes())?;
    }
    let n: usize = ferrovision_nn::NetworkExt::count_params(net.as_ref());
    println!(
        "wrote {} ({} weights, {n} parameters, sha256 {sha})",
        out.display(),
        ferrovision_nn::NetworkExt::named_weights(net.as_ref()).len()
    );
    Ok(())
}
