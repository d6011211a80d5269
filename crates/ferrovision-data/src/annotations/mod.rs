//! Annotation formats parsed once for the workspace: the dataset sources build samples from
//! these types and `ferrovision-vision`'s evaluation consumes them.

pub mod coco;
pub mod voc;
