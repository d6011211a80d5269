//! # ferrovision-vision
//!
//! Vision operations and evaluation for ferrovision: box formats and the IoU family, NMS
//! (greedy, batched, soft, combined), anchors and box coders, RoI pooling / RoI Align as
//! differentiable engine ops, COCO (boxes and masks) and Pascal VOC detection evaluation
//! (numbers equal to pycocotools), COCO run-length encoded masks, segmentation and image-quality metrics, binary morphology, connected
//! components, distance transform, watershed, and drawing to PNG.
//!
//! Box and mask ops work on plain slices; only RoI pooling/align take and return engine
//! tensors. Design notes are in `docs/vision.md`.

pub mod anchors;
pub mod boxes;
pub mod coco;
pub mod coder;
pub mod draw;
pub mod error;
mod json_util;
pub mod metrics;
pub mod morph;
pub mod nms;
pub mod rle;
pub mod roi;
pub mod voc;

pub use boxes::{BBox, BoxFormat, IouKind};
pub use error::{Result, VisionError};

// The three entry points of `ferrovision eval coco`, `ferrovision eval voc` and
// `ferrovision draw`: each returns what the command prints (or writes the PNG).
pub use coco::eval_coco_report;
pub use draw::draw_boxes_file;
pub use voc::{eval_voc_report, VocOpts};
