//! Vision workloads: batched NMS and COCO box and mask evaluation, with `--compare` running
//! torchvision's `batched_nms` and pycocotools on the same inputs in the same run
//! (bench/python/vision_bench.py).
//!
//! ```text
//! ferrovision-bench nms       [--compare] [--python PATH] [--reps N]  # RESULT nms nms_1000_us=..
//! ferrovision-bench coco      [--compare] [--python PATH] [--runs N]  # RESULT coco coco_eval_s=..
//! ferrovision-bench coco-segm [--compare] [--python PATH] [--runs N]  # RESULT coco_segm coco_segm_eval_s=..
//! ferrovision-bench vision    [--compare] ...                         # all three
//! ```

use crate::util::{find_python, median, repo_root, time};
use ferrovision::tensor::rng::Rng;
use ferrovision_vision::coco::{evaluate, CocoGroundTruth, IouType};
use ferrovision_vision::nms::batched_nms;
use std::path::{Path, PathBuf};
use std::process::Command;

mod segm_input;

struct VOpts {
    compare: bool,
    python: Option<String>,
    reps: usize,
    runs: usize,
}

fn parse(args: &[String]) -> Result<VOpts, String> {
    let mut o = VOpts {
        compare: false,
        python: None,
        reps: 2000,
        runs: 3,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Result<usize, String> {
            let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            v.parse()
                .map_err(|_| format!("{name}: '{v}' is not a number"))
        };
        match a.as_str() {
            "--compare" => o.compare = true,
            "--reps" => o.reps = num("--reps")?.max(1),
            "--runs" => o.runs = num("--runs")?.max(1),
            "--python" => {
                o.python = Some(it.next().ok_or("--python needs a value")?.clone());
            }
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    Ok(o)
}

fn work_dir() -> Result<PathBuf, String> {
    let d = repo_root().join("target/ferrovision-bench-vision");
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    Ok(d)
}

/// Runs `vision_bench.py <args..> <out.json> <extra..>` and returns what it wrote to out.json.
fn run_python(o: &VOpts, args: &[&str], extra: &[&str]) -> Result<serde_json::Value, String> {
    let py = find_python(o.python.as_deref())?;
    let script = repo_root().join("bench/python/vision_bench.py");
    let out = work_dir()?.join("python_result.json");
    let status = Command::new(&py)
        .arg(&script)
        .args(args)
        .arg(&out)
        .args(extra)
        .status()
        .map_err(|e| format!("{}: {e}", py.display()))?;
    if !status.success() {
        return Err(format!("vision_bench.py {} failed ({status})", args[0]));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// 1000 detector-like boxes in a 640x640 image: jittered copies of 60 objects (so boxes of one
/// class overlap as a detector's raw output does), 80 classes, random scores.
fn nms_input(seed: u64) -> (Vec<[f32; 4]>, Vec<f32>, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let objects: Vec<([f32; 4], usize)> = (0..60)
        .map(|_| {
            let w = 16.0 + 200.0 * rng.next_f32();
            let h = 16.0 + 200.0 * rng.next_f32();
            let x = (640.0 - w) * rng.next_f32();
            let y = (640.0 - h) * rng.next_f32();
            ([x, y, x + w, y + h], rng.below(80) as usize)
        })
        .collect();
    let (mut b, mut s, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..1000 {
        let (o, cls) = objects[rng.below(60) as usize];
        let (w, h) = (o[2] - o[0], o[3] - o[1]);
        let j = |rng: &mut Rng, v: f32| 0.15 * v * (rng.next_f32() - 0.5) * 2.0;
        let x1 = (o[0] + j(&mut rng, w)).clamp(0.0, 639.0);
        let y1 = (o[1] + j(&mut rng, h)).clamp(0.0, 639.0);
        let x2 = (o[2] + j(&mut rng, w)).clamp(x1 + 1.0, 640.0);
        let y2 = (o[3] + j(&mut rng, h)).clamp(y1 + 1.0, 640.0);
        b.push([x1, y1, x2, y2]);
        s.push(rng.next_f32());
        c.push(if rng.next_f32() < 0.8 {
            cls
        } else {
            rng.below(80) as usize
        });
    }
    (b, s, c)
}

fn run_nms(o: &VOpts) -> Result<String, String> {
    let (b, s, c) = nms_input(42);
    let thr = 0.5;
    let keep = batched_nms(&b, &s, &c, thr).map_err(|e| e.to_string())?;
    for _ in 0..50 {
        std::hint::black_box(batched_nms(&b, &s, &c, thr).unwrap());
    }
    let mut times: Vec<f64> = (0..o.reps)
        .map(|_| time(|| std::hint::black_box(batched_nms(&b, &s, &c, thr).unwrap())).1)
        .collect();
    let us = median(&mut times) * 1e6;
    println!(
        "nms: 1000 boxes, 80 classes, batched NMS at IoU 0.5 keeps {}; median of {} runs: {us:.1} us",
        keep.len(),
        o.reps
    );
    if !o.compare {
        return Ok(format!("RESULT nms nms_1000_us={us:.2}"));
    }
    let path = work_dir()?.join("nms_input.json");
    let flat: Vec<f32> = b.iter().flatten().copied().collect();
    let js = serde_json::json!({"boxes": flat, "scores": s, "classes": c, "iou_threshold": thr});
    write_atomic(&path, &js.to_string())?;
    let reps = o.reps.min(2000).to_string();
    let r = run_python(o, &["nms", &path.to_string_lossy()], &["--reps", &reps])?;
    let tv_us = r["median_us"].as_f64().ok_or("no median_us")?;
    let tv_keep: Vec<usize> = r["keep"]
        .as_array()
        .ok_or("no keep")?
        .iter()
        .map(|v| v.as_u64().unwrap_or(u64::MAX) as usize)
        .collect();
    let identical = tv_keep == keep;
    println!(
        "torchvision {} batched_nms (torch {}, {} threads): median {tv_us:.1} us; kept indices identical: {identical}",
        r["torchvision"], r["torch"], r["threads"]
    );
    println!("speedup vs torchvision: {:.2}x", tv_us / us);
    Ok(format!(
        "RESULT nms nms_1000_us={us:.2} torchvision_us={tv_us:.2} speedup={:.2} identical={}",
        tv_us / us,
        u8::from(identical)
    ))
}

/// Categories in the COCO benchmarks.
const N_CAT: usize = 80;

/// A category id in 1..=80 with a Zipf-like skew: category 1 ("person") is by far the most
/// frequent, as in COCO.
fn zipf_category(rng: &mut Rng) -> usize {
    let u = rng.next_f64();
    1 + ((N_CAT as f64) * u * u * u) as usize % N_CAT
}

/// A random object box `[x, y, w, h]` inside a 640x480 image: width log-uniform in
/// 4..`max_w` (small, medium and large objects all present), aspect ratio in e^[-0.5, 0.5].
fn rand_box(rng: &mut Rng, max_w: f64) -> [f64; 4] {
    let w = (4.0f64.ln() + rng.next_f64() * (max_w / 4.0).ln()).exp();
    let h = (w * (rng.next_f64() - 0.5).exp()).min(470.0);
    let x = rng.next_f64() * (640.0 - w.min(630.0));
    let y = rng.next_f64() * (480.0 - h);
    [x, y, w, h]
}

/// Rounds to 2 decimals, as annotation files usually store coordinates.
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A written ground-truth / results file pair and what is in it.
struct CocoInput {
    gt: PathBuf,
    dt: PathBuf,
    images: usize,
    annotations: usize,
    detections: usize,
}

/// Writes `text` to `path` through a temporary file and a rename, so an interrupted run never
/// leaves a truncated file for the next one (or for the Python side) to read.
fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `<stem>_gt.json` and `<stem>_dt.json` to `dir`: the files both implementations read.
fn write_json_pair(
    dir: &Path,
    stem: &str,
    gt: &serde_json::Value,
    dets: Vec<serde_json::Value>,
) -> Result<CocoInput, String> {
    let count = |k: &str| gt[k].as_array().map_or(0, Vec::len);
    let input = CocoInput {
        gt: dir.join(format!("{stem}_gt.json")),
        dt: dir.join(format!("{stem}_dt.json")),
        images: count("images"),
        annotations: count("annotations"),
        detections: dets.len(),
    };
    write_atomic(&input.gt, &gt.to_string())?;
    write_atomic(&input.dt, &serde_json::Value::Array(dets).to_string())?;
    Ok(input)
}

/// Synthetic but COCO-like data: 5000 images, 80 categories with a skewed frequency, ~7
/// objects per image with log-uniform sizes (small/medium/large all present), 3 % crowd
/// regions, and exactly 20 detections per image: jittered hits on most objects (higher scores)
/// plus false positives and duplicates (lower scores).
fn coco_input(dir: &Path, seed: u64) -> Result<CocoInput, String> {
    let mut rng = Rng::new(seed);
    let (n_img, per_img) = (5000usize, 20usize);
    let mut images = Vec::new();
    let mut anns = Vec::new();
    let mut dets = Vec::new();
    let mut ann_id = 1;
    for img in 1..=n_img {
        images.push(serde_json::json!({"id": img, "width": 640, "height": 480}));
        let n_gt = (rng.below(15)) as usize; // mean 7
        let mut gts = Vec::new();
        for _ in 0..n_gt {
            let b = rand_box(&mut rng, 400.0).map(round2);
            let c = zipf_category(&mut rng);
            let crowd = rng.next_f64() < 0.03;
            anns.push(
                serde_json::json!({"id": ann_id, "image_id": img, "category_id": c,
                "bbox": b, "area": b[2] * b[3], "iscrowd": u8::from(crowd)}),
            );
            ann_id += 1;
            gts.push((b, c));
        }
        let mut n = 0;
        for (b, c) in &gts {
            if n == per_img || rng.next_f64() < 0.2 {
                continue;
            }
            let j = 0.1 * rng.next_f64();
            let d = [
                b[0] + j * b[2] * (rng.next_f64() - 0.5),
                b[1] + j * b[3] * (rng.next_f64() - 0.5),
                b[2] * (1.0 + j * (rng.next_f64() - 0.5)),
                b[3] * (1.0 + j * (rng.next_f64() - 0.5)),
            ]
            .map(round2);
            let score = ((0.3 + 0.7 * rng.next_f64()) * 1e6).round() / 1e6;
            dets.push(
                serde_json::json!({"image_id": img, "category_id": c, "bbox": d, "score": score}),
            );
            n += 1;
        }
        while n < per_img {
            let d = rand_box(&mut rng, 300.0).map(round2);
            let score = (0.6 * rng.next_f64() * 1e6).round() / 1e6;
            let c = if !gts.is_empty() && rng.next_f64() < 0.3 {
                gts[rng.below(gts.len() as u64) as usize].1
            } else {
                zipf_category(&mut rng)
            };
            dets.push(
                serde_json::json!({"image_id": img, "category_id": c, "bbox": d, "score": score}),
            );
            n += 1;
        }
    }
    let cats: Vec<_> = (1..=N_CAT)
        .map(|c| serde_json::json!({"id": c, "name": format!("class{c}")}))
        .collect();
    let gt = serde_json::json!({"images": images, "annotations": anns, "categories": cats});
    write_json_pair(dir, "coco", &gt, dets)
}

/// Times ours (load ground truth + load results + evaluate + accumulate + summarize, median of
/// `--runs`) on `inp`; with `--compare` runs pycocotools on the same files, checks the 12 stats
/// agree to 1e-6 and prints the ratio. Returns the `RESULT <name> <key>=...` line.
fn bench_coco_eval(
    o: &VOpts,
    name: &str,
    key: &str,
    iou_type: IouType,
    inp: &CocoInput,
) -> Result<String, String> {
    // One run: (stats, seconds to load both files); the whole run is timed around it.
    let eval = || -> Result<([f64; 12], f64), String> {
        let (loaded, load_s) = time(|| -> Result<_, String> {
            let gt = CocoGroundTruth::load_for(&inp.gt, iou_type).map_err(|e| e.to_string())?;
            let d = gt
                .load_detections_for(&inp.dt, iou_type)
                .map_err(|e| e.to_string())?;
            Ok((gt, d))
        });
        let (gt, d) = loaded?;
        let ev = evaluate(&gt, &d, iou_type).map_err(|e| e.to_string())?;
        Ok((ev.stats, load_s))
    };
    let (mut times, mut load_times) = (Vec::new(), Vec::new());
    let mut stats = [0.0; 12];
    for _ in 0..o.runs {
        let (r, t) = time(eval);
        let (st, load_s) = r?;
        stats = st;
        times.push(t);
        load_times.push(load_s);
    }
    let secs = median(&mut times);
    println!(
        "{name}: {} images, {N_CAT} categories, {} ground truths, {} detections ({}): load + evaluate + accumulate median of {} runs: {secs:.3} s, of which loading {:.3} s (AP {:.4}, AP50 {:.4}, AR100 {:.4})",
        inp.images, inp.annotations, inp.detections, iou_type.as_str(), o.runs, median(&mut load_times), stats[0], stats[1], stats[8]
    );
    if !o.compare {
        return Ok(format!("RESULT {name} {key}={secs:.4}"));
    }
    let r = run_python(
        o,
        &["coco", &inp.gt.to_string_lossy(), &inp.dt.to_string_lossy()],
        &["--iou-type", iou_type.as_str()],
    )?;
    let py_s = r["seconds"].as_f64().ok_or("no seconds")?;
    let py_stats: Vec<f64> = r["stats"]
        .as_array()
        .ok_or("no stats")?
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect();
    // NaN-safe: a missing or non-numeric stat makes the difference infinite, not ignored.
    let max_diff = if py_stats.len() == 12 {
        stats
            .iter()
            .zip(&py_stats)
            .map(|(a, b)| {
                let d = (a - b).abs();
                if d.is_nan() {
                    f64::INFINITY
                } else {
                    d
                }
            })
            .fold(0.0, f64::max)
    } else {
        f64::INFINITY
    };
    let identical = max_diff <= 1e-6;
    println!(
        "pycocotools {} (one run): {py_s:.2} s; 12 stats max |diff| {max_diff:.1e} (identical to 1e-6: {identical})",
        r["pycocotools"].as_str().unwrap_or("?")
    );
    println!("speedup vs pycocotools: {:.1}x", py_s / secs);
    Ok(format!(
        "RESULT {name} {key}={secs:.4} pycocotools_s={py_s:.3} speedup={:.1} max_stat_diff={max_diff:.1e} identical={}",
        py_s / secs,
        u8::from(identical)
    ))
}

fn run_coco(o: &VOpts) -> Result<String, String> {
    let inp = coco_input(&work_dir()?, 7)?;
    bench_coco_eval(o, "coco", "coco_eval_s", IouType::Bbox, &inp)
}

fn run_coco_segm(o: &VOpts) -> Result<String, String> {
    let (inp, gen_s) = time(|| segm_input::write(&work_dir()?, 11));
    let inp = inp?;
    println!(
        "coco-segm: wrote {} and {} in {gen_s:.1} s",
        inp.gt.display(),
        inp.dt.display()
    );
    bench_coco_eval(o, "coco_segm", "coco_segm_eval_s", IouType::Segm, &inp)
}

/// Runs `nms`, `coco`, `coco-segm` or `vision` (all three); returns the process exit code.
pub fn main(cmd: &str, args: &[String]) -> i32 {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut lines = Vec::new();
    let mut run = |f: fn(&VOpts) -> Result<String, String>| match f(&o) {
        Ok(l) => {
            lines.push(l);
            true
        }
        Err(e) => {
            eprintln!("error: {e}");
            false
        }
    };
    let ok = match cmd {
        "nms" => run(run_nms),
        "coco" => run(run_coco),
        "coco-segm" => run(run_coco_segm),
        _ => run(run_nms) && run(run_coco) && run(run_coco_segm),
    };
    for l in lines {
        println!("{l}");
    }
    if ok {
        0
    } else {
        1
    }
}
