//! Regression tests of the reliability round (issue 10): each numbered defect's repro command
//! now gives a clear error or the correct result (crash recovery, locking and foreign
//! checkpoints: `cli_crash_recovery.rs`).

mod common;

use common::{fails, ferrovision, ok, scratch, stderr, stdout};
use std::path::Path;

/// A small LeNet run on the built-in digits.
fn small_run(out: &str, cwd: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--out",
        out,
        "--epochs",
        "1",
        "--limit",
        "128",
        "--test-limit",
        "64",
        "--verbose",
        "0",
    ];
    args.extend_from_slice(extra);
    ok(ferrovision(&args, cwd))
}

/// Item 1 and 2: batch sizes beyond any data are capped by the data (a batch larger than the
/// data is the whole data, as in Keras), not an overflow panic followed by exit 0.
#[test]
fn huge_batch_sizes_are_capped_by_the_data() {
    let tmp = scratch();
    small_run("base", &tmp, &[]);
    let model = "base/model.safetensors";
    let whole = ok(ferrovision(
        &[
            "evaluate",
            "--model-file",
            model,
            "--limit",
            "200",
            "--batch-size",
            "200",
        ],
        &tmp,
    ));
    for bs in ["4611686018427387904", "100000000000"] {
        let o = ferrovision(
            &[
                "evaluate",
                "--model-file",
                model,
                "--limit",
                "200",
                "--batch-size",
                bs,
            ],
            &tmp,
        );
        let text = ok(o);
        // The same numbers as one batch of all 200 images (the throughput differs).
        let numbers = |t: &str| t.split(" (").next().unwrap().to_string();
        assert_eq!(numbers(&text), numbers(&whole), "--batch-size {bs}");
        assert!(!text.contains("NaN"), "{text}");
        let out = format!("huge{}", bs.len());
        let text = small_run(&out, &tmp, &["--batch-size", bs]);
        assert!(
            text.contains("after 1 epoch(s)") && !text.contains("NaN"),
            "{text}"
        );
        let log = std::fs::read_to_string(tmp.join(&out).join("log.csv")).unwrap();
        assert!(!log.contains("NaN") && log.lines().count() == 2, "{log}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Item 2: `--workers` is bounded; a huge count is a usage error, not an abort.
#[test]
fn worker_counts_are_bounded() {
    let tmp = scratch();
    small_run("base", &tmp, &[]);
    let err = fails(ferrovision(
        &[
            "evaluate",
            "--model-file",
            "base/model.safetensors",
            "--workers",
            "100000",
        ],
        &tmp,
    ));
    assert!(
        err.contains("--workers") && err.contains("from 1 to 256"),
        "{err}"
    );
    small_run("many", &tmp, &["--workers", "256"]);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Rewrites the architecture stored in a saved model (a crafted or corrupted file).
fn craft(src: &Path, dst: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let bytes = std::fs::read(src).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let arch = header["__metadata__"]["architecture"].as_str().unwrap();
    let mut arch: serde_json::Value = serde_json::from_str(arch).unwrap();
    edit(&mut arch);
    header["__metadata__"]["architecture"] = serde_json::json!(arch.to_string());
    let text = header.to_string();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(dst, out).unwrap();
}

/// An edit of a stored architecture.
type ArchEdit = Box<dyn Fn(&mut serde_json::Value)>;

/// Item 2: a model file whose architecture asks for huge weights is refused before anything
/// that size is allocated, by every command that loads it.
#[test]
fn a_crafted_architecture_cannot_make_loading_allocate() {
    let tmp = scratch();
    small_run("base", &tmp, &[]);
    let base = tmp.join("base/model.safetensors");
    let layers = |a: &mut serde_json::Value| a["config"]["layers"].as_array_mut().unwrap().clone();
    let dense = |a: &serde_json::Value| {
        a["config"]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .position(|l| l["class_name"] == "Dense")
            .unwrap()
    };
    let cases: Vec<(&str, ArchEdit)> = vec![
        (
            "units",
            Box::new(move |a| {
                let i = dense(a);
                a["config"]["layers"][i]["config"]["units"] = serde_json::json!(1_000_000_000u64);
            }),
        ),
        (
            "filters",
            Box::new(move |a| {
                assert_eq!(layers(a)[0]["class_name"], "Conv2D");
                a["config"]["layers"][0]["config"]["filters"] = serde_json::json!(1u64 << 40);
            }),
        ),
        (
            "input",
            Box::new(|a| {
                a["config"]["input_shape"] = serde_json::json!([null, 1, 100000, 100000]);
            }),
        ),
    ];
    let png = tmp.join("digit.png");
    image::GrayImage::new(28, 28).save(&png).unwrap();
    for (name, edit) in cases {
        let file = tmp.join(format!("{name}.safetensors"));
        craft(&base, &file, edit);
        let f = file.to_str().unwrap();
        for args in [
            vec!["summary", "--model-file", f],
            vec!["evaluate", "--model-file", f, "--limit", "10"],
            vec!["predict", "--model-file", f, png.to_str().unwrap()],
        ] {
            let err = fails(ferrovision(&args, &tmp));
            assert!(
                err.contains(&format!("{name}.safetensors"))
                    && err.contains("more weight values than the file holds"),
                "{name} {}: {err}",
                args[0]
            );
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Item 6: a run never writes over a folder of the user's own files, and a demo rerun removes
/// only what the demo wrote.
#[test]
fn user_files_are_never_clobbered() {
    let tmp = scratch();
    let mine = tmp.join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("log.csv"), "my,own\n").unwrap();
    std::fs::write(mine.join("metrics.json"), "{}").unwrap();
    let err = fails(ferrovision(
        &["train", "--out", "mine", "--epochs", "1", "--limit", "64"],
        &tmp,
    ));
    assert!(
        err.contains("not empty") && err.contains("no run.json"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("log.csv")).unwrap(),
        "my,own\n"
    );
    let file = tmp.join("afile");
    std::fs::write(&file, "x").unwrap();
    let err = fails(ferrovision(
        &["train", "--out", "afile", "--epochs", "1"],
        &tmp,
    ));
    assert!(err.contains("is a file"), "{err}");
    // An empty folder is fine.
    std::fs::create_dir_all(tmp.join("empty")).unwrap();
    small_run("empty", &tmp, &[]);
    // demo: a rerun replaces its own outputs and keeps what the user added.
    let demo = |tmp: &Path| {
        ok(ferrovision(
            &["demo", "--out", "d1", "--epochs", "1", "--verbose", "0"],
            tmp,
        ))
    };
    demo(&tmp);
    std::fs::write(tmp.join("d1/notes.txt"), "keep me").unwrap();
    std::fs::write(tmp.join("d1/samples/my-digit.png"), "keep me too").unwrap();
    demo(&tmp);
    assert_eq!(
        std::fs::read_to_string(tmp.join("d1/notes.txt")).unwrap(),
        "keep me"
    );
    assert!(tmp.join("d1/samples/my-digit.png").is_file());
    assert!(tmp.join("d1/model.safetensors").is_file());
    let ckpts = std::fs::read_dir(tmp.join("d1/checkpoints"))
        .unwrap()
        .count();
    assert_eq!(ckpts, 1, "the first demo's checkpoints were replaced");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Item 7: a truncated JPEG is an error in `predict` and `draw`, as a truncated PNG is.
#[test]
fn truncated_jpegs_are_errors() {
    let tmp = scratch();
    small_run("base", &tmp, &[]);
    let mut img = image::GrayImage::new(28, 28);
    for i in 4..24 {
        img.put_pixel(i, 5, image::Luma([255]));
        img.put_pixel(22 - i / 2, i, image::Luma([255]));
    }
    let full = tmp.join("seven.jpg");
    img.save(&full).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let cut = tmp.join("seven-cut.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() * 7 / 10]).unwrap();
    ok(ferrovision(
        &[
            "predict",
            "--model-file",
            "base/model.safetensors",
            "seven.jpg",
        ],
        &tmp,
    ));
    let err = fails(ferrovision(
        &[
            "predict",
            "--model-file",
            "base/model.safetensors",
            "seven-cut.jpg",
        ],
        &tmp,
    ));
    assert!(
        err.contains("seven-cut.jpg") && err.contains("truncated"),
        "{err}"
    );
    std::fs::write(tmp.join("boxes.json"), r#"[{"bbox": [1, 1, 9, 9]}]"#).unwrap();
    let err = fails(ferrovision(
        &[
            "draw",
            "--image",
            "seven-cut.jpg",
            "--boxes",
            "boxes.json",
            "--out",
            "o.png",
        ],
        &tmp,
    ));
    assert!(
        err.contains("seven-cut.jpg") && err.contains("truncated"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Item 8: empty training or test sets are errors, not 0 steps and "loss NaN" with exit 0.
#[test]
fn empty_data_sets_are_errors() {
    let tmp = scratch();
    // Class folders without images.
    for split in ["train", "test"] {
        for class in ["a", "b"] {
            std::fs::create_dir_all(tmp.join("imgs").join(split).join(class)).unwrap();
        }
    }
    let o = ferrovision(
        &[
            "train",
            "--data",
            "folder:imgs",
            "--out",
            "r",
            "--epochs",
            "1",
        ],
        &tmp,
    );
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("imgs") && (err.contains("no images") || err.contains("empty")),
        "{err}"
    );
    assert!(!tmp.join("r/model.safetensors").exists());
    // Training images but no test images.
    let mut img = image::RgbImage::new(28, 28);
    img.put_pixel(1, 1, image::Rgb([200, 10, 10]));
    for class in ["a", "b"] {
        img.save(tmp.join("imgs/train").join(class).join("x.png"))
            .unwrap();
    }
    let o = ferrovision(
        &[
            "train",
            "--data",
            "folder:imgs",
            "--out",
            "r2",
            "--epochs",
            "1",
            "--verbose",
            "0",
        ],
        &tmp,
    );
    let err = stderr(&o);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(err.contains("imgs") && err.contains("no images"), "{err}");
    assert!(!tmp.join("r2/model.safetensors").exists());
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Item 10: `eval voc --iou` outside [0, 1] is an error.
#[test]
fn voc_iou_thresholds_outside_0_1_are_errors() {
    let tmp = scratch();
    std::fs::create_dir_all(tmp.join("ann")).unwrap();
    std::fs::write(
        tmp.join("ann/i.xml"),
        "<annotation><filename>i.jpg</filename><object><name>cat</name><bndbox><xmin>1</xmin>\
         <ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>",
    )
    .unwrap();
    std::fs::write(
        tmp.join("dt.json"),
        r#"[{"image_id": "i", "class": "cat", "bbox": [1, 1, 9, 9], "score": 0.9}]"#,
    )
    .unwrap();
    ok(ferrovision(
        &["eval", "voc", "--gt", "ann", "--dt", "dt.json"],
        &tmp,
    ));
    for iou in ["NaN", "inf", "-1", "2"] {
        let err = fails(ferrovision(
            &[
                "eval",
                "voc",
                "--gt",
                "ann",
                "--dt",
                "dt.json",
                &format!("--iou={iou}"),
            ],
            &tmp,
        ));
        assert!(err.contains("between 0 and 1"), "{iou}: {err}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Item 13: the smaller ones.
#[test]
fn small_defects_of_item_13() {
    let tmp = scratch();
    // --epochs 0: a clear error before anything is printed or written.
    let o = ferrovision(&["train", "--out", "zero", "--epochs", "0"], &tmp);
    let err = fails(o);
    assert!(err.contains("--epochs must be at least 1"), "{err}");
    assert!(!tmp.join("zero").exists());
    small_run("base", &tmp, &[]);
    // --top 0 and --top beyond the classes.
    let png = tmp.join("digit.png");
    image::GrayImage::new(28, 28).save(&png).unwrap();
    for top in ["0", "11"] {
        let err = fails(ferrovision(
            &[
                "predict",
                "--model-file",
                "base/model.safetensors",
                "--top",
                top,
                "digit.png",
            ],
            &tmp,
        ));
        assert!(
            err.contains("between 1 and the number of classes (10)"),
            "{err}"
        );
    }
    // A 5-class model's outputs are not printed with digit names.
    let five = tmp.join("five");
    for split in ["train", "test"] {
        for (c, colour) in [(0u8, 30u8), (1, 80), (2, 130), (3, 180), (4, 230)] {
            let d = five.join(split).join(format!("k{c}"));
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..4u8 {
                image::GrayImage::from_pixel(28, 28, image::Luma([colour.wrapping_add(i)]))
                    .save(d.join(format!("{i}.png")))
                    .unwrap();
            }
        }
    }
    ok(ferrovision(
        &[
            "train",
            "--data",
            "folder:five",
            "--out",
            "r5",
            "--epochs",
            "1",
            "--verbose",
            "0",
        ],
        &tmp,
    ));
    let run5 = tmp.join("r5");
    let model5 = run5.join("model.safetensors");
    let m5 = model5.to_str().unwrap();
    let text = ok(ferrovision(
        &["predict", "--model-file", m5, "digit.png"],
        &tmp,
    ));
    assert!(text.contains("k0") || text.contains("k4"), "{text}");
    // Without the run's run.json, the classes are numbered, not named as digits.
    std::fs::copy(&model5, tmp.join("loose.safetensors")).unwrap();
    let text = ok(ferrovision(
        &["predict", "--model-file", "loose.safetensors", "digit.png"],
        &tmp,
    ));
    assert!(
        text.contains("class ") && !text.contains("digit.png: 0 ("),
        "{text}"
    );
    let err = fails(ferrovision(
        &[
            "predict",
            "--model-file",
            "loose.safetensors",
            "--classes",
            "digits",
            "digit.png",
        ],
        &tmp,
    ));
    assert!(err.contains("has 5"), "{err}");
    // draw writes the format its --out names, and refuses one it cannot write.
    std::fs::write(tmp.join("boxes.json"), r#"[{"bbox": [1, 1, 9, 9]}]"#).unwrap();
    for (out, magic) in [
        ("o.jpg", &[0xFF, 0xD8][..]),
        ("o.png", &[0x89, b'P'][..]),
        ("o.bmp", &b"BM"[..]),
    ] {
        ok(ferrovision(
            &[
                "draw",
                "--image",
                "digit.png",
                "--boxes",
                "boxes.json",
                "--out",
                out,
            ],
            &tmp,
        ));
        assert!(
            std::fs::read(tmp.join(out)).unwrap().starts_with(magic),
            "{out}"
        );
    }
    let err = fails(ferrovision(
        &[
            "draw",
            "--image",
            "digit.png",
            "--boxes",
            "boxes.json",
            "--out",
            "o.gif",
        ],
        &tmp,
    ));
    assert!(
        err.contains("o.gif") && err.contains(".png, .jpg or .bmp"),
        "{err}"
    );
    // The same settings give byte-identical models and checkpoints.
    small_run("again", &tmp, &[]);
    for f in [
        "model.safetensors",
        "checkpoints/epoch-001.safetensors",
        "history.json",
        "log.csv",
    ] {
        assert_eq!(
            std::fs::read(tmp.join("base").join(f)).unwrap(),
            std::fs::read(tmp.join("again").join(f)).unwrap(),
            "{f}"
        );
    }
    // The help lists every optimizer.
    let help = ok(ferrovision(&["train", "--help"], &tmp));
    for name in ferrovision_nn::optim::OPTIMIZER_NAMES {
        assert!(help.contains(name), "{name} missing from train --help");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
