//! `ferrovision draw`: boxes, labels and scores drawn on an image.

use crate::error::{CliError, Result};
use clap::Args;
use std::path::PathBuf;

/// `ferrovision draw`.
#[derive(Debug, Clone, Args)]
pub struct DrawArgs {
    /// The image (PNG, JPEG, BMP or GIF)
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// The boxes (JSON list, see below)
    #[arg(long, value_name = "FILE")]
    pub boxes: PathBuf,
    /// Output image, PNG, JPEG or BMP by its extension (default: <image name>-boxes.png next
    /// to the image)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Writes the annotated image and says where.
pub fn run(args: DrawArgs) -> Result<()> {
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
