//! `ferrovision eval coco|voc`: detection metrics from files.

use crate::error::{CliError, Result};
use clap::Args;
use std::path::PathBuf;

/// `ferrovision eval coco`.
#[derive(Debug, Clone, Args)]
pub struct EvalCocoArgs {
    /// Ground truth in COCO format (images, annotations, categories)
    #[arg(long, value_name = "FILE")]
    pub gt: PathBuf,
    /// Detections in COCO results format
    #[arg(long, value_name = "FILE")]
    pub dt: PathBuf,
    /// What is compared: bbox (boxes) or segm (masks: polygons / RLE)
    #[arg(long, default_value = "bbox")]
    pub iou_type: String,
    /// Print one JSON object (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl)
    #[arg(long)]
    pub json: bool,
}

/// `ferrovision eval voc`.
#[derive(Debug, Clone, Args)]
pub struct EvalVocArgs {
    /// Folder of Pascal VOC XML annotation files
    #[arg(long, value_name = "DIR")]
    pub gt: PathBuf,
    /// Detections (JSON list, see below)
    #[arg(long, value_name = "FILE")]
    pub dt: PathBuf,
    /// IoU a detection must exceed to match
    #[arg(long, default_value_t = 0.5)]
    pub iou: f64,
    /// 11-point interpolated AP (VOC2007) instead of the all-point area (VOC2010+)
    #[arg(long)]
    pub use_07: bool,
}

/// `ferrovision eval coco`: prints pycocotools' summary (or JSON).
pub fn coco(args: EvalCocoArgs) -> Result<()> {
    let report =
        ferrovision_vision::eval_coco_report(&args.gt, &args.dt, &args.iou_type, args.json)
            .map_err(|e| CliError::new(e.to_string()))?;
    print!("{report}");
    Ok(())
}

/// `ferrovision eval voc`: prints per-class AP and mAP.
pub fn voc(args: EvalVocArgs) -> Result<()> {
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
