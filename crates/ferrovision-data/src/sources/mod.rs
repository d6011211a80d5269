//! Dataset sources on disk: file globs, text lines, CSV, TFRecord, image folders (also inside a
//! tar), CIFAR binary batches, Pascal VOC XML, COCO JSON, YOLO txt and segmentation pairs.
//!
//! Annotated sources are split in two: an *index* (cheap: which files, read when the dataset is
//! built) and a *loader* that reads and decodes one sample (run lazily, in parallel by
//! `par_map`). Every error names the file and, where there is one, the line or field.
//!
//! One file per format; everything is re-exported here, so the public paths are
//! `ferrovision_data::sources::<item>`.

mod cifar;
mod coco;
mod csv;
mod files;
mod folder;
mod records;
mod seg;
mod tar;
mod voc;
mod yolo;

pub use cifar::cifar_binary;
#[cfg(feature = "image")]
pub use coco::coco;
pub use coco::{parse_coco, CocoImage};
pub use csv::{csv, split_csv_line, ColType, CsvRow, CsvValue};
pub use files::{glob, list_files, text_lines};
#[cfg(feature = "image")]
pub use folder::{image_folder, load_labelled};
pub use folder::{image_folder_index, FolderIndex};
pub use records::{tfrecord, tfrecord_examples, tfrecord_examples_with, tfrecord_with};
pub use seg::seg_pair_list;
#[cfg(feature = "image")]
pub use seg::{load_seg_pair, seg_pairs};
#[cfg(feature = "image")]
pub use tar::tar_image_folder;
pub use tar::{tar_index, tar_read, TarEntry};
pub use voc::natural_key;
#[cfg(feature = "image")]
pub use voc::{load_voc, voc};
pub use yolo::parse_yolo;
#[cfg(feature = "image")]
pub use yolo::yolo;
