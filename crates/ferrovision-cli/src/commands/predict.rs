//! `ferrovision predict`: a saved model's predictions for the user's own image files.

use super::evaluate::task_of;
use crate::cli::ClassNames;
use crate::error::{CliError, Result};
use crate::nnglue;
use crate::run_dir::RunDir;
use crate::tasks::classify::output_classes;
use crate::tasks::PredictOpts;
use clap::Args;
use ferrovision_nn::datasets::mnist::{FASHION_MNIST_CLASSES, MNIST_CLASSES};
use std::path::{Path, PathBuf};

/// `ferrovision predict`.
#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// Saved model (a run's model.safetensors or one of its checkpoints)
    #[arg(long, value_name = "FILE")]
    pub model_file: PathBuf,
    /// PNG or JPEG images to classify
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<PathBuf>,
    /// Names to print for the classes [default: the class names stored in the model's run
    /// directory (run.json), else digits for a 10-class model, else "class <i>"]
    #[arg(long, value_enum)]
    pub classes: Option<ClassNames>,
    /// How many of the most likely classes to print [default: 3, or all classes of a model
    /// with fewer]
    #[arg(long, value_name = "K")]
    pub top: Option<usize>,
}

/// The class names a run stored in its `run.json`, if the model file belongs to a run.
fn run_class_names(model_file: &Path) -> Option<Vec<String>> {
    let (_, v) = RunDir::of_model_file(model_file)?;
    let names: Option<Vec<String>> = v["classes"]
        .as_array()?
        .iter()
        .map(|c| c.as_str().map(str::to_string))
        .collect();
    names.filter(|n| !n.is_empty())
}

/// Prints one line per image: its path and the model's top classes.
pub fn run(args: PredictArgs) -> Result<()> {
    let model = nnglue::load(&args.model_file)?;
    let classes = output_classes(&model);
    let top = args.top.unwrap_or(classes.min(3));
    if top == 0 || top > classes {
        return Err(CliError::new(format!(
            "--top {top} must be between 1 and the number of classes ({classes})"
        )));
    }
    let owned = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let class_names = match args.classes {
        Some(choice) => {
            let names = match choice {
                ClassNames::Digits => owned(&MNIST_CLASSES),
                ClassNames::Fashion => owned(&FASHION_MNIST_CLASSES),
            };
            if names.len() != classes {
                return Err(CliError::new(format!(
                    "--classes names {} classes; the model in {} has {classes}",
                    names.len(),
                    args.model_file.display()
                )));
            }
            Some(names)
        }
        // The run's own names, else digits for a 10-class model, else "class <i>".
        None => run_class_names(&args.model_file)
            .or_else(|| Some(owned(&MNIST_CLASSES)))
            .filter(|n| n.len() == classes),
    };
    let task = task_of(&args.model_file)?.task();
    let lines = task.predict(&model, &args.images, &PredictOpts { class_names, top })?;
    for (path, line) in args.images.iter().zip(&lines) {
        println!("{}: {line}", path.display());
    }
    Ok(())
}
