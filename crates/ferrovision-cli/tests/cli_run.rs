//! The `ferrovision` binary end to end: a short training run and everything it writes,
//! resuming (checked bit-exact against an uninterrupted run), evaluate, predict, summary, and
//! the errors a user can provoke (plain `error:` lines, exit status 1, never a panic).

mod common;

use common::{fails, ferrovision, json, ok, scratch, stderr};
use std::path::{Path, PathBuf};
use std::process::Output;

const QUICK: &[&str] = &[
    "--model",
    "mlp",
    "--limit",
    "600",
    "--batch-size",
    "32",
    "--optimizer",
    "sgd",
    "--lr",
    "0.05",
    "--seed",
    "7",
    "--verbose",
    "0",
];

fn train(out: &Path, epochs: &str, extra: &[&str], cwd: &Path) -> Output {
    let mut args = vec!["train", "--out", out.to_str().unwrap(), "--epochs", epochs];
    args.extend_from_slice(extra);
    ferrovision(&args, cwd)
}

#[test]
fn train_writes_a_run_directory_and_resume_is_exact() {
    let tmp = scratch();
    let run = tmp.join("run");
    let text = ok(train(&run, "2", QUICK, &tmp));
    assert!(text.contains("test accuracy"), "{text}");
    for f in [
        "model.safetensors",
        "run.json",
        "history.json",
        "history.png",
        "metrics.json",
        "log.csv",
        "checkpoints/epoch-001.safetensors",
        "checkpoints/epoch-002.safetensors",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    let events: Vec<_> = walk(&run.join("tensorboard"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("tfevents"))
        .collect();
    assert!(!events.is_empty(), "no TensorBoard event file");
    let m = json(&run.join("metrics.json"));
    assert_eq!(m["epochs"], 2);
    assert_eq!(m["train_samples"], 600);
    assert_eq!(m["test_samples"], 1000);
    let acc = m["test_accuracy"].as_f64().unwrap();
    // An MLP after 2 epochs on 600 digits is far better than chance (0.1).
    assert!(acc > 0.6 && acc <= 1.0, "test accuracy {acc}");
    let csv = std::fs::read_to_string(run.join("log.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.lines().next().unwrap().contains("val_accuracy"),
        "{csv}"
    );
    let png = image::open(run.join("history.png")).unwrap();
    assert_eq!(png.height(), 380);

    // Training into the same directory again is refused; resuming continues to epoch 3.
    let err = fails(train(&run, "3", QUICK, &tmp));
    assert!(err.contains("--resume"), "{err}");
    ok(train(&run, "3", &["--resume", "--verbose", "0"], &tmp));
    let m3 = json(&run.join("metrics.json"));
    assert_eq!(m3["epochs"], 3);
    assert!(run.join("checkpoints/epoch-003.safetensors").is_file());
    let h = json(&run.join("history.json"));
    assert_eq!(h["epochs"], serde_json::json!([0, 1, 2]));
    let csv = std::fs::read_to_string(run.join("log.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        4,
        "CSV log continues on resume:\n{csv}"
    );

    // The same 3 epochs without interruption give the same numbers, bit for bit.
    let straight = tmp.join("straight");
    ok(train(&straight, "3", QUICK, &tmp));
    let ms = json(&straight.join("metrics.json"));
    assert_eq!(ms["test_loss"], m3["test_loss"]);
    assert_eq!(ms["test_accuracy"], m3["test_accuracy"]);
    assert_eq!(
        json(&straight.join("history.json")),
        json(&run.join("history.json"))
    );

    // evaluate reproduces the run's final test numbers.
    let model = run.join("model.safetensors");
    let text = ok(ferrovision(
        &["evaluate", "--model-file", model.to_str().unwrap()],
        &tmp,
    ));
    let expected = format!("accuracy {:.4}", m3["test_accuracy"].as_f64().unwrap());
    assert!(text.contains(&expected), "{text} vs {expected}");

    // predict prints the top 3 for each image.
    let digit = tmp.join("digit.png");
    let (x, _) =
        ferrovision_cli::builtin::digits(ferrovision_nn::datasets::mnist::Split::Test).unwrap();
    let px = x
        .narrow(0, 0, 1)
        .unwrap()
        .contiguous()
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    ferrovision_cli::image_input::save_digit_png(&px, &digit).unwrap();
    let text = ok(ferrovision(
        &[
            "predict",
            "--model-file",
            model.to_str().unwrap(),
            digit.to_str().unwrap(),
        ],
        &tmp,
    ));
    let line = text.lines().next().unwrap();
    assert!(line.starts_with(digit.to_str().unwrap()), "{text}");
    assert_eq!(line.matches('%').count(), 3, "{text}");

    // Resuming to an epoch already reached is a clear error.
    let err = fails(train(&run, "2", &["--resume"], &tmp));
    assert!(err.contains("the run is complete (3 epoch(s))"), "{err}");
}

/// Data rows of `pipeline_stats.csv` as (epoch, stage).
fn pipeline_rows(run: &Path) -> Vec<(u64, String)> {
    let csv = std::fs::read_to_string(run.join("pipeline_stats.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(
        lines.next().unwrap().starts_with("epoch,stage,elements"),
        "{csv}"
    );
    lines
        .map(|l| {
            // epoch,"stage name, maybe with commas",numbers...
            let (epoch, rest) = l.split_once(',').unwrap();
            let stage = rest.strip_prefix('"').unwrap().split('"').next().unwrap();
            (epoch.parse().unwrap(), stage.to_string())
        })
        .collect()
}

#[test]
fn augmented_training_through_the_pipeline_prints_stats_and_resumes_exactly() {
    let tmp = scratch();
    let aug = tmp.join("augment.json");
    std::fs::write(
        &aug,
        r#"{"ops": [{"op": "affine", "degrees": 12, "translate": [0.1, 0.1], "scale": [0.9, 1.1]}]}"#,
    )
    .unwrap();
    let aug_s = aug.to_str().unwrap();
    fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = QUICK.to_vec();
        v.extend_from_slice(extra);
        v
    }

    // One epoch with --stats: the per-stage table is printed and logged.
    let run = tmp.join("run");
    let text = ok(train(
        &run,
        "1",
        &with(&["--augment", aug_s, "--stats", "--workers", "1"]),
        &tmp,
    ));
    assert!(text.contains("input pipeline, epoch 1:"), "{text}");
    assert!(
        text.contains("map_batch_labeled(workers=1,batch=32)"),
        "{text}"
    );
    let rows = pipeline_rows(&run);
    let stages: Vec<&str> = rows.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        stages,
        [
            "range",
            "shuffle(600)",
            "map_batch_labeled(workers=1,batch=32)",
            "prefetch(2)"
        ]
    );
    assert!(rows.iter().all(|(e, _)| *e == 1));
    assert!(json(&run.join("run.json"))["augment"]["ops"][0]["op"] == "affine");
    assert!(walk(&run.join("tensorboard/pipeline"))
        .iter()
        .any(|p| p.to_string_lossy().contains("tfevents")));

    // Resumed with another number of workers (which must not matter), the run equals an
    // uninterrupted one bit for bit: shuffling and augmentation depend on (seed, epoch) only.
    ok(train(
        &run,
        "2",
        &["--resume", "--verbose", "0", "--workers", "2"],
        &tmp,
    ));
    assert_eq!(
        pipeline_rows(&run).len(),
        8,
        "stats rows continue on resume"
    );
    assert_eq!(pipeline_rows(&run)[4].0, 2);
    let straight = tmp.join("straight");
    ok(train(
        &straight,
        "2",
        &with(&["--augment", aug_s, "--workers", "1"]),
        &tmp,
    ));
    assert_eq!(
        json(&straight.join("history.json")),
        json(&run.join("history.json"))
    );
    assert_eq!(
        json(&straight.join("metrics.json"))["test_loss"],
        json(&run.join("metrics.json"))["test_loss"]
    );

    // The augmentation is really applied: without it the same seed trains differently.
    let plain = tmp.join("plain");
    ok(train(&plain, "2", QUICK, &tmp));
    assert_ne!(
        json(&plain.join("history.json")),
        json(&run.join("history.json"))
    );

    // evaluate --stats prints the table of its pipeline.
    let model = run.join("model.safetensors");
    let text = ok(ferrovision(
        &[
            "evaluate",
            "--model-file",
            model.to_str().unwrap(),
            "--stats",
        ],
        &tmp,
    ));
    assert!(
        text.contains("map_batch_labeled(workers=2,batch=256)"),
        "{text}"
    );

    // Configs that do not fit are refused before training, naming the file.
    let resize = tmp.join("resize.json");
    std::fs::write(&resize, r#"{"ops": [{"op": "resize", "size": [32, 32]}]}"#).unwrap();
    let err = fails(train(
        &tmp.join("r1"),
        "1",
        &with(&["--augment", resize.to_str().unwrap()]),
        &tmp,
    ));
    assert!(
        err.contains("resize.json") && err.contains("1x32x32"),
        "{err}"
    );
    let broken = tmp.join("broken.json");
    std::fs::write(&broken, r#"{"ops": [{"op": "twirl"}]}"#).unwrap();
    let err = fails(train(
        &tmp.join("r2"),
        "1",
        &with(&["--augment", broken.to_str().unwrap()]),
        &tmp,
    ));
    assert!(err.contains("broken.json"), "{err}");
    let err = fails(train(
        &tmp.join("r3"),
        "1",
        &with(&["--augment", tmp.join("missing.json").to_str().unwrap()]),
        &tmp,
    ));
    assert!(err.contains("missing.json"), "{err}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn summary_counts_lenet5_and_mlp_parameters() {
    let tmp = scratch();
    // LeNet-5 (same-padded first conv): 156 + 2416 + 48120 + 10164 + 850 = 61706, the count
    // Keras prints for the same model.
    let text = ok(ferrovision(&["summary", "--model", "lenet5"], &tmp));
    assert!(text.contains("61,706"), "{text}");
    assert!(
        text.contains("Conv2D") && text.contains("MaxPooling2D"),
        "{text}"
    );
    assert!(text.contains("(None, 6, 28, 28)"), "{text}");
    let text = ok(ferrovision(&["summary", "--model", "mlp"], &tmp));
    // 784*128 + 128 + 128*10 + 10.
    assert!(text.contains("101,770"), "{text}");
}

#[test]
fn help_is_helpful() {
    let tmp = scratch();
    let text = ok(ferrovision(&["--help"], &tmp));
    for needle in [
        "demo",
        "train",
        "evaluate",
        "predict",
        "summary",
        "Examples",
        "CC BY-SA 3.0",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
    let text = ok(ferrovision(&["train", "--help"], &tmp));
    for needle in [
        "--model",
        "--data",
        "--epochs",
        "--batch-size",
        "--optimizer",
        "--lr",
        "--seed",
        "--out",
        "--resume",
    ] {
        assert!(text.contains(needle), "train --help lacks {needle}");
    }
    let text = ok(ferrovision(&["predict", "--help"], &tmp));
    assert!(text.contains("PNG") && text.contains("JPEG"), "{text}");
}

#[test]
fn user_errors_are_plain() {
    let tmp = scratch();
    let err = fails(ferrovision(&["train", "--data", "mnist"], &tmp));
    assert!(err.contains("mnist:<dir>"), "{err}");
    let err = fails(ferrovision(
        &["train", "--data", "mnist:/no/such/dir", "--out", "r1"],
        &tmp,
    ));
    assert!(err.contains("/no/such/dir"), "{err}");
    assert!(
        !tmp.join("r1").exists(),
        "a failed start leaves no run directory"
    );
    let err = fails(ferrovision(
        &["train", "--optimizer", "adamm", "--out", "r2"],
        &tmp,
    ));
    assert!(err.contains("adamm") && err.contains("adam"), "{err}");
    let err = fails(ferrovision(
        &["train", "--batch-size", "0", "--out", "r3"],
        &tmp,
    ));
    assert!(err.contains("batch-size"), "{err}");
    let err = fails(ferrovision(
        &["train", "--resume", "--out", "r4", "--epochs", "3"],
        &tmp,
    ));
    assert!(err.contains("no run to resume"), "{err}");
    let err = fails(ferrovision(&["trian"], &tmp));
    assert!(err.contains("train"), "{err}");
    let err = fails(ferrovision(
        &["predict", "--model-file", "none.safetensors", "x.png"],
        &tmp,
    ));
    assert!(err.contains("none.safetensors"), "{err}");
    let junk = tmp.join("junk.safetensors");
    std::fs::write(&junk, b"definitely not a model").unwrap();
    let err = fails(ferrovision(
        &["evaluate", "--model-file", junk.to_str().unwrap()],
        &tmp,
    ));
    assert!(err.contains("junk.safetensors"), "{err}");
    // A truncated IDX file in a data directory.
    let data = tmp.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("train-images-idx3-ubyte"),
        [0u8, 0, 8, 3, 0, 0, 0, 9],
    )
    .unwrap();
    std::fs::write(
        data.join("train-labels-idx1-ubyte"),
        [0u8, 0, 8, 1, 0, 0, 0, 0],
    )
    .unwrap();
    let spec = format!("mnist:{}", data.display());
    let err = fails(ferrovision(
        &["train", "--data", &spec, "--out", "r5"],
        &tmp,
    ));
    assert!(
        err.contains("train-images-idx3-ubyte") && err.contains("truncated header"),
        "{err}"
    );
}

/// `eval coco` prints pycocotools' summary text exactly and `--json` its 12 numbers; `draw`
/// writes a PNG; bad files are plain errors.
#[test]
fn eval_coco_and_draw_commands() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let coco = root.join("reference/fixtures/vision/coco");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(coco.join("expected.json")).unwrap())
            .unwrap();
    let dir = scratch();
    for case in ["crowd", "basic"] {
        let gt = coco.join(format!("{case}_gt.json"));
        let dt = coco.join(format!("{case}_dt.json"));
        let (gt, dt) = (gt.to_str().unwrap(), dt.to_str().unwrap());
        let text = ok(ferrovision(&["eval", "coco", "--gt", gt, "--dt", dt], &dir));
        assert_eq!(
            text.trim_end(),
            expected["cases"][case]["summary"]
                .as_str()
                .unwrap()
                .trim_end()
        );
        let json = ok(ferrovision(
            &["eval", "coco", "--gt", gt, "--dt", dt, "--json"],
            &dir,
        ));
        let got: serde_json::Value = serde_json::from_str(&json).unwrap();
        let keys = [
            "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
        ];
        for (i, k) in keys.iter().enumerate() {
            let want = expected["cases"][case]["stats"][i].as_f64().unwrap();
            let have = got[k].as_f64().unwrap();
            assert!(
                (want - have).abs() <= 1e-6,
                "{case} {k}: {have} vs pycocotools {want}"
            );
        }
    }
    let o = ferrovision(
        &["eval", "coco", "--gt", "missing.json", "--dt", "x.json"],
        &dir,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: ") && stderr(&o).contains("missing.json"),
        "{}",
        stderr(&o)
    );

    let img = dir.join("img.png");
    image::RgbImage::from_pixel(64, 48, image::Rgb([200, 200, 200]))
        .save(&img)
        .unwrap();
    let boxes = dir.join("boxes.json");
    std::fs::write(
        &boxes,
        r#"[{"bbox": [4, 4, 40, 30], "label": "cat", "score": 0.9}]"#,
    )
    .unwrap();
    let out = ok(ferrovision(
        &[
            "draw",
            "--image",
            img.to_str().unwrap(),
            "--boxes",
            boxes.to_str().unwrap(),
        ],
        &dir,
    ));
    assert!(out.contains("drew 1 box"), "{out}");
    let drawn = image::open(dir.join("img-boxes.png")).unwrap().to_rgb8();
    assert_ne!(
        drawn.get_pixel(4, 10),
        &image::Rgb([200, 200, 200]),
        "the box edge is drawn"
    );
    assert_eq!(
        drawn.get_pixel(60, 44),
        &image::Rgb([200, 200, 200]),
        "outside untouched"
    );
}
