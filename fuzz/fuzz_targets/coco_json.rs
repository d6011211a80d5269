//! COCO instances (boxes, polygons, compressed and uncompressed RLE) and results files, through
//! the data crate's parser and the evaluator's loaders for bbox and segm.
#![no_main]
use ferrovision_vision::coco::{CocoGroundTruth, IouType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ferrovision_data::annotations::coco::parse_coco_instances(text, "fuzz.json");
    let _ = ferrovision_data::annotations::coco::parse_coco_detections(text, "fuzz.json");
    for iou in [IouType::Bbox, IouType::Segm] {
        if let Ok(gt) = CocoGroundTruth::parse_for(text, "gt.json", iou) {
            let _ = gt.parse_detections_for(text, "dt.json", iou);
        }
    }
});
