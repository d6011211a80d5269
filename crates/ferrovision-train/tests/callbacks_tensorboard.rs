//! TensorBoard event files.
//!
//! The committed event files under reference/fixtures/nn_callbacks_tb/ were written by
//! `write_fixture` below (regenerate with `FERROVISION_BLESS_TB=1 cargo test -p ferrovision-nn
//! --test callbacks_tensorboard`) and read by the real TensorBoard with
//! `reference/check_tensorboard_events.py reference/fixtures/nn_callbacks_tb --out
//! reference/fixtures/nn_callbacks_tb.json`. The tests check that (1) we still write exactly
//! those bytes and (2) what TensorBoard decoded from them is what we meant to write.

mod callbacks_support;

use callbacks_support::*;
use ferrovision_nn::layers::Dense;
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{NetworkExt, Sequential};
use ferrovision_train::callbacks::{
    Histogram, TensorBoard, TensorBoardWriter, TrainParams, UpdateFreq, WriterOptions,
};
use ferrovision_train::{Callback, FitOptions, Logs, Model};
use serde_json::Value;
use std::path::{Path, PathBuf};

const HIST_A: [f32; 12] = [
    0.0, 0.5, -0.5, 0.25, 0.25, 1e-3, -2.0, 3.5, 1e-13, -7e-6, 0.125, 0.0,
];
const HIST_B: [f32; 5] = [10.0, -10.0, 0.1, 0.2, 0.3];
const SCALARS: [(u64, f64); 4] = [(0, 0.5), (1, 0.25), (2, 0.125), (10, -3.75)];

fn rgb() -> Vec<u8> {
    (0..2 * 3 * 3).map(|i| (i * 14) as u8).collect()
}
fn grey() -> Vec<u8> {
    (0..4 * 5).map(|i| 255 - (i * 12) as u8).collect()
}
fn rgba() -> Vec<u8> {
    vec![255, 0, 0, 128, 0, 0, 255, 255]
}

fn fixed_opts() -> WriterOptions {
    WriterOptions {
        wall_time: Some(1_700_000_000.25),
        hostname: Some("fixture".into()),
    }
}

/// The synthetic training the callback part of the fixture logs: 2 epochs of 3 batches.
fn batch_loss(epoch: usize, batch: usize) -> f64 {
    1.0 / (1 + epoch * 3 + batch) as f64
}
fn epoch_logs(epoch: usize) -> Logs {
    let mut l = Logs::new();
    l.insert("loss", 0.75 / (epoch + 1) as f64);
    l.insert("val_loss", 0.875 / (epoch + 1) as f64);
    l.insert("lr", 0.01);
    l
}
fn epoch_weights(epoch: usize) -> (Vec<f32>, Vec<f32>) {
    let e = epoch as f32;
    (vec![0.5 + e, -0.25, 0.125 * e, 2.0, -1.0, 0.0], vec![e, -e])
}

fn fixture_model() -> Model {
    let net = Sequential::new(&[3])
        .add(Dense::new(2).named("dense"))
        .build()
        .unwrap();
    Model::new(net)
}

fn set_epoch_weights(model: &Model, epoch: usize) {
    let (k, b) = epoch_weights(epoch);
    model
        .network()
        .set_weights(&[
            Tensor::from_vec(k, &[3, 2]).unwrap(),
            Tensor::from_vec(b, &[2]).unwrap(),
        ])
        .unwrap();
}

fn write_fixture(dir: &Path) {
    let mut w = TensorBoardWriter::with_options(dir.join("api"), &fixed_opts()).unwrap();
    for (step, v) in SCALARS {
        w.add_scalar("loss", step, v).unwrap();
    }
    w.add_histogram("weights", 0, &HIST_A).unwrap();
    w.add_histogram("weights", 5, &HIST_B).unwrap();
    w.add_image("rgb", 0, &rgb(), 2, 3, 3).unwrap();
    w.add_image("grey", 3, &grey(), 4, 5, 1).unwrap();
    w.add_image("rgba", 1, &rgba(), 1, 2, 4).unwrap();
    w.flush().unwrap();

    let mut model = fixture_model();
    let mut tb = TensorBoard::new(dir)
        .histogram_freq(1)
        .write_images(true)
        .update_freq(UpdateFreq::Batches(2))
        .writer_options(fixed_opts());
    let params = TrainParams {
        epochs: 2,
        initial_epoch: 0,
        steps: Some(3),
        verbose: 0,
    };
    tb.on_train_begin(&mut model, &params).unwrap();
    for epoch in 0..2 {
        tb.on_epoch_begin(&mut model, epoch).unwrap();
        for b in 0..3 {
            tb.on_batch_begin(&mut model, b).unwrap();
            let mut l = Logs::new();
            l.insert("loss", batch_loss(epoch, b));
            tb.on_batch_end(&mut model, b, &l).unwrap();
        }
        set_epoch_weights(&model, epoch);
        tb.on_epoch_end(&mut model, epoch, &epoch_logs(epoch))
            .unwrap();
    }
    tb.on_train_end(&mut model, &epoch_logs(1)).unwrap();
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["api", "train", "validation"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            out.push(e.unwrap().path().strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    out.sort();
    out
}

#[test]
fn event_files_match_the_committed_fixture() {
    let fixture_dir = fixture("nn_callbacks_tb");
    if std::env::var_os("FERROVISION_BLESS_TB").is_some() {
        let _ = std::fs::remove_dir_all(&fixture_dir);
        write_fixture(&fixture_dir);
        eprintln!("wrote {}", fixture_dir.display());
        return;
    }
    let dir = temp_dir("tb-fixture");
    write_fixture(&dir);
    let ours = files_under(&dir);
    assert_eq!(ours, files_under(&fixture_dir));
    assert_eq!(ours.len(), 3);
    for rel in &ours {
        assert_eq!(
            rel.file_name().unwrap().to_str().unwrap(),
            "events.out.tfevents.1700000000.fixture"
        );
        let a = std::fs::read(dir.join(rel)).unwrap();
        let b = std::fs::read(fixture_dir.join(rel)).unwrap();
        assert!(a == b, "{} differs from the fixture", rel.display());
    }
    std::fs::remove_dir_all(dir).unwrap();
}

fn scalars(run: &Value, tag: &str) -> Vec<(u64, f64)> {
    run["scalars"][tag]
        .as_array()
        .unwrap_or_else(|| panic!("no scalar tag {tag}"))
        .iter()
        .map(|r| (r[0].as_u64().unwrap(), r[1].as_f64().unwrap()))
        .collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn assert_histogram(row: &Value, values: &[f32]) {
    let h = Histogram::from_values("t", values).unwrap();
    assert_eq!(row["min"].as_f64().unwrap(), h.min);
    assert_eq!(row["max"].as_f64().unwrap(), h.max);
    assert_eq!(row["num"].as_f64().unwrap(), h.num);
    assert_eq!(row["sum"].as_f64().unwrap(), h.sum);
    assert_eq!(row["sum_squares"].as_f64().unwrap(), h.sum_squares);
    assert_eq!(f64s(&row["bucket_limit"]), h.bucket_limit);
    assert_eq!(f64s(&row["bucket"]), h.bucket);
    // Independent of our histogram code: the statistics TensorBoard read are the data's.
    let min = values.iter().cloned().fold(f32::INFINITY, f32::min) as f64;
    let max = values.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = values.iter().map(|&v| v as f64).sum();
    assert_eq!(row["min"].as_f64().unwrap(), min);
    assert_eq!(row["max"].as_f64().unwrap(), max);
    assert!((row["sum"].as_f64().unwrap() - sum).abs() < 1e-9);
    assert_eq!(
        f64s(&row["bucket"]).iter().sum::<f64>(),
        values.len() as f64
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn assert_image(run: &Value, tag: &str, step: u64, pixels: &[u8], h: u64, w: u64, mode: &str) {
    let rows = run["images"][tag].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{tag}");
    let r = &rows[0];
    assert_eq!(r["step"].as_u64().unwrap(), step, "{tag}");
    assert_eq!(r["height"].as_u64().unwrap(), h, "{tag}");
    assert_eq!(r["width"].as_u64().unwrap(), w, "{tag}");
    assert_eq!(r["png_size"], serde_json::json!([w, h]), "{tag}");
    assert_eq!(r["png_mode"].as_str().unwrap(), mode, "{tag}");
    assert_eq!(r["pixels_hex"].as_str().unwrap(), hex(pixels), "{tag}");
}

#[test]
fn tensorboard_decodes_what_we_wrote() {
    let fx = load_json("nn_callbacks_tb.json");
    let runs = &fx["runs"];
    for (name, records) in [
        ("api", 10),
        ("train", 1 + 3 + 2 * 2 + 2 * 2 + 2 * 2),
        ("validation", 3),
    ] {
        let files = runs[name]["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{name}");
        assert_eq!(files[0]["file_version"], "brain.Event:2", "{name}");
        assert_eq!(files[0]["crc_ok"], true, "{name}");
        assert_eq!(files[0]["records"].as_u64().unwrap(), records, "{name}");
    }

    // Writer API: scalars (float32), histograms, images.
    let api = &runs["api"];
    let want: Vec<(u64, f64)> = SCALARS.iter().map(|&(s, v)| (s, v as f32 as f64)).collect();
    assert_eq!(scalars(api, "loss"), want);
    let hists = api["histograms"]["weights"].as_array().unwrap();
    assert_eq!(hists.len(), 2);
    assert_eq!(hists[0]["step"], 0);
    assert_histogram(&hists[0], &HIST_A);
    assert_eq!(hists[1]["step"], 5);
    assert_histogram(&hists[1], &HIST_B);
    assert_image(api, "rgb", 0, &rgb(), 2, 3, "RGB");
    assert_image(api, "grey", 3, &grey(), 4, 5, "L");
    assert_image(api, "rgba", 1, &rgba(), 1, 2, "RGBA");

    // Callback: Keras' tags and steps.
    let train = &runs["train"];
    let f32v = |v: f64| v as f32 as f64;
    // Global batches 1..6, written every 2nd: steps 2, 4, 6 = (epoch 0, batch 1), (1, 0), (1, 2).
    assert_eq!(
        scalars(train, "batch_loss"),
        vec![
            (2, f32v(batch_loss(0, 1))),
            (4, f32v(batch_loss(1, 0))),
            (6, f32v(batch_loss(1, 2)))
        ]
    );
    let epoch_series = |key: &str| -> Vec<(u64, f64)> {
        (0..2)
            .map(|e| (e as u64, f32v(epoch_logs(e).get(key).unwrap())))
            .collect()
    };
    assert_eq!(scalars(train, "epoch_loss"), epoch_series("loss"));
    assert_eq!(scalars(train, "epoch_learning_rate"), epoch_series("lr"));
    assert!(train["scalars"].get("epoch_val_loss").is_none());
    assert_eq!(
        scalars(&runs["validation"], "epoch_loss"),
        epoch_series("val_loss")
    );
    for e in 0..2 {
        let (k, b) = epoch_weights(e);
        assert_histogram(&train["histograms"]["dense/kernel/histogram"][e], &k);
        assert_histogram(&train["histograms"]["dense/bias/histogram"][e], &b);
    }
    // One weight image per epoch.
    let imgs = train["images"]["dense/kernel/image"].as_array().unwrap();
    assert_eq!(imgs.len(), 2);
    // Epoch 1 kernel [3, 2] is shown transposed (2 x 3), scaled from [min, max] to [0, 255].
    let (k, _) = epoch_weights(1);
    let (lo, hi) = (-1.0f32, 2.0f32);
    assert_eq!(k.iter().cloned().fold(f32::INFINITY, f32::min), lo);
    assert_eq!(k.iter().cloned().fold(f32::NEG_INFINITY, f32::max), hi);
    let mut px = Vec::new();
    for i in 0..2 {
        for j in 0..3 {
            px.push(((k[j * 2 + i] - lo) * 255.0 / (hi - lo)).round() as u8);
        }
    }
    assert_eq!(imgs[1]["pixels_hex"].as_str().unwrap(), hex(&px));
    assert_eq!(imgs[1]["height"], 2);
    assert_eq!(imgs[1]["width"], 3);
}

#[test]
fn histograms_match_tensorflow() {
    let fx = load_json("nn_callbacks.json");
    for case in fx["histograms"].as_array().unwrap() {
        let values: Vec<f32> = f64s(&case["values"]).iter().map(|&v| v as f32).collect();
        let h = Histogram::from_values("t", &values).unwrap();
        let name = case["name"].as_str().unwrap();
        assert_eq!(h.min, case["min"].as_f64().unwrap(), "{name}");
        assert_eq!(h.max, case["max"].as_f64().unwrap(), "{name}");
        assert_eq!(h.num, case["num"].as_f64().unwrap(), "{name}");
        assert_eq!(h.sum, case["sum"].as_f64().unwrap(), "{name}");
        assert_eq!(
            h.sum_squares,
            case["sum_squares"].as_f64().unwrap(),
            "{name}"
        );
        assert_eq!(h.bucket_limit, f64s(&case["bucket_limit"]), "{name}");
        assert_eq!(h.bucket, f64s(&case["bucket"]), "{name}");
    }
}

#[test]
fn writer_rejects_bad_input() {
    let dir = temp_dir("tb-bad");
    let mut w = TensorBoardWriter::new(&dir).unwrap();
    let e = w.add_image("img", 0, &[0u8; 5], 2, 3, 1).unwrap_err();
    assert!(
        e.to_string()
            .contains("5 bytes given, a 2x3x1 image needs 6"),
        "{e}"
    );
    let e = w.add_image("img", 0, &[0u8; 10], 2, 1, 5).unwrap_err();
    assert!(e.to_string().contains("5 channels"), "{e}");
    let e = w.add_histogram("h", 0, &[1.0, f32::NAN]).unwrap_err();
    assert!(
        e.to_string().contains("histogram 'h': value 1 is NaN"),
        "{e}"
    );
    assert!(w.add_scalar("", 0, 1.0).is_err());
    // A second writer in the same second gets its own file.
    let w2 = TensorBoardWriter::new(&dir).unwrap();
    assert_ne!(w.path(), w2.path());
    assert!(w
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("events.out.tfevents."));
    // A log dir under a regular file is an I/O error naming it.
    std::fs::write(dir.join("file"), b"x").unwrap();
    let e = TensorBoardWriter::new(dir.join("file/sub")).err().unwrap();
    assert!(e.to_string().contains("file/sub"), "{e}");
    drop((w, w2));
    std::fs::remove_dir_all(dir).unwrap();
}

/// A minimal reader of our records for the fit test: (step, tag, simple_value) per summary
/// value, plus the file version. Independent of the writer code (hand-decoded wire format).
fn read_events(path: &Path) -> (String, Vec<(i64, String, Option<f32>)>) {
    fn varint(b: &[u8], i: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let byte = b[*i];
            *i += 1;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    /// (field, wire type, payload) triples of one message.
    fn fields(b: &[u8]) -> Vec<(u64, u64, &[u8])> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let key = varint(b, &mut i);
            let (field, wire) = (key >> 3, key & 7);
            let len = match wire {
                0 => {
                    let s = i;
                    varint(b, &mut i);
                    out.push((field, wire, &b[s..i]));
                    continue;
                }
                1 => 8,
                5 => 4,
                2 => varint(b, &mut i) as usize,
                w => panic!("wire type {w}"),
            };
            out.push((field, wire, &b[i..i + len]));
            i += len;
        }
        out
    }
    let data = std::fs::read(path).unwrap();
    let mut pos = 0;
    let mut version = String::new();
    let mut out = Vec::new();
    while pos < data.len() {
        let len = u64::from_le_bytes(data[pos..pos + 8].try_into().unwrap()) as usize;
        let rec = &data[pos + 12..pos + 12 + len];
        pos += 16 + len;
        let mut step = 0i64;
        for (f, _, p) in fields(rec) {
            match f {
                2 => step = varint(p, &mut 0) as i64,
                3 => version = String::from_utf8(p.to_vec()).unwrap(),
                5 => {
                    for (_, _, value) in fields(p) {
                        let mut tag = String::new();
                        let mut simple = None;
                        for (vf, _, vp) in fields(value) {
                            match vf {
                                1 => tag = String::from_utf8(vp.to_vec()).unwrap(),
                                2 => simple = Some(f32::from_le_bytes(vp.try_into().unwrap())),
                                _ => {}
                            }
                        }
                        out.push((step, tag, simple));
                    }
                }
                _ => {}
            }
        }
    }
    (version, out)
}

#[test]
fn tensorboard_callback_in_fit() {
    let (x, y) = linear_data();
    let dir = temp_dir("tb-fit");
    let mut model = tiny_model(0.05);
    let opts = FitOptions {
        epochs: 3,
        batch_size: 4,
        shuffle: false,
        verbose: 0,
        validation_data: Some((vec![x.clone()], vec![y.clone()])),
        ..FitOptions::default()
    };
    let tb = TensorBoard::new(&dir)
        .histogram_freq(2)
        .update_freq(UpdateFreq::Batches(3));
    let h = model.fit(&x, &y, opts, vec![Box::new(tb)]).unwrap();
    let find = |sub: &str| -> PathBuf {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{sub}: {files:?}");
        files.remove(0)
    };
    let (version, train) = read_events(&find("train"));
    assert_eq!(version, "brain.Event:2");
    let series = |events: &[(i64, String, Option<f32>)], tag: &str| -> Vec<(i64, f32)> {
        events
            .iter()
            .filter(|(_, t, _)| t == tag)
            .map(|(s, _, v)| (*s, v.unwrap()))
            .collect()
    };
    let want: Vec<(i64, f32)> = h
        .get("loss")
        .iter()
        .enumerate()
        .map(|(e, v)| (e as i64, *v as f32))
        .collect();
    assert_eq!(series(&train, "epoch_loss"), want);
    assert_eq!(series(&train, "epoch_learning_rate").len(), 3);
    // 12 batches, every 3rd: global steps 3, 6, 9, 12.
    let steps: Vec<i64> = series(&train, "batch_loss").iter().map(|p| p.0).collect();
    assert_eq!(steps, [3, 6, 9, 12]);
    // Histograms at epochs 0 and 2 (no simple value).
    let hsteps: Vec<i64> = train
        .iter()
        .filter(|(_, t, _)| t == "dense/kernel/histogram")
        .map(|(s, _, v)| {
            assert!(v.is_none());
            *s
        })
        .collect();
    assert_eq!(hsteps, [0, 2]);
    let (_, val) = read_events(&find("validation"));
    let want: Vec<(i64, f32)> = h
        .get("val_loss")
        .iter()
        .enumerate()
        .map(|(e, v)| (e as i64, *v as f32))
        .collect();
    assert_eq!(series(&val, "epoch_loss"), want);
    std::fs::remove_dir_all(dir).unwrap();
}
