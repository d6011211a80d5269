//! `ferrovision summary`: a zoo model's or a saved model's layers, output shapes and parameter
//! counts.

use crate::cli::parse_model;
use crate::error::{CliError, Result};
use crate::nnglue;
use clap::Args;
use std::path::PathBuf;

/// `ferrovision summary`.
#[derive(Debug, Clone, Args)]
pub struct SummaryArgs {
    /// Zoo architecture to describe (`ferrovision models` lists them)
    #[arg(long, value_name = "NAME", default_value = "lenet5", value_parser = parse_model,
          conflicts_with = "model_file")]
    pub model: String,
    /// Input shape C,H,W the zoo model is built for [default: the architecture's own, e.g.
    /// 1,28,28 for lenet5, 3,32,32 for resnet20, 3,224,224 for resnet50]
    #[arg(long, value_name = "C,H,W", conflicts_with = "model_file")]
    pub input_shape: Option<String>,
    /// Number of classes the zoo model is built for [default: the architecture's own: 10, or
    /// 1000 for the ImageNet architectures]
    #[arg(long, value_name = "N", conflicts_with = "model_file")]
    pub num_classes: Option<usize>,
    /// Describe a saved model instead
    #[arg(long, value_name = "FILE")]
    pub model_file: Option<PathBuf>,
}

/// `C,H,W` as numbers.
fn parse_shape(s: &str) -> Result<Vec<usize>> {
    let dims: std::result::Result<Vec<usize>, _> =
        s.split(',').map(|d| d.trim().parse::<usize>()).collect();
    match dims {
        Ok(d) if !d.is_empty() && !d.contains(&0) => Ok(d),
        _ => Err(CliError::new(format!(
            "--input-shape '{s}' is not a list of positive sizes such as 3,32,32"
        ))),
    }
}

/// Prints the Keras-style summary.
pub fn run(args: SummaryArgs) -> Result<()> {
    let model = match &args.model_file {
        Some(p) => nnglue::load(p)?,
        None => {
            let entry = ferrovision_models::lookup(&args.model)?;
            let shape = match &args.input_shape {
                Some(s) => parse_shape(s)?,
                None => entry.default_input.to_vec(),
            };
            let classes = args.num_classes.unwrap_or(entry.default_classes);
            nnglue::build(&args.model, &shape, classes)?
        }
    };
    print!("{}", nnglue::summary(&model)?);
    Ok(())
}
