//! `pipeline`: the input-pipeline benchmark. Decodes the raccoon JPEGs, augments them (random
//! resized crop to 224, horizontal flip, colour jitter), converts to f32 CHW tensors and batches
//! by 32, for 1000 images; `--compare` runs the same work with tf.data and a torchvision
//! DataLoader (bench/python/pipeline_tf.py, pipeline_torch.py) in the same run.
//!
//! `--path fused` (default): `map_batch_seeded` + `Augment::apply_image_chw` (crop, resize and
//! flip in one resampling pass into the batch tensor, float colour jitter in place).
//! `--path simple`: `map_seeded` + `Augment::apply` (8-bit images) + `to_tensor_chw` + `batch`.

use crate::util::{find_python, repo_root};
use ferrovision_data::{Augment, Dataset, ImageSample, Op};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

struct Args {
    images: PathBuf,
    count: usize,
    batch: usize,
    workers: usize,
    compare: bool,
    runs: usize,
    python: Option<String>,
    decoders: bool,
    fused: bool,
    tf_decode_and_crop: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        images: PathBuf::from("../shared/data/raccoon/images"),
        count: 1000,
        batch: 32,
        workers: 2,
        compare: false,
        runs: 3,
        python: None,
        decoders: false,
        fused: true,
        tf_decode_and_crop: false,
    };
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let mut val = |n: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{n} needs a value"))
        };
        let num = |n: &str, v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{n}: '{v}' is not a number"))
        };
        match k.as_str() {
            "--images" => a.images = PathBuf::from(val("--images")?),
            "--count" => a.count = num("--count", val("--count")?)?,
            "--batch" => a.batch = num("--batch", val("--batch")?)?,
            "--workers" => a.workers = num("--workers", val("--workers")?)?,
            "--runs" => a.runs = num("--runs", val("--runs")?)?,
            "--python" => a.python = Some(val("--python")?),
            "--compare" => a.compare = true,
            "--decoders" => a.decoders = true,
            "--tf-decode-and-crop" => a.tf_decode_and_crop = true,
            "--path" => {
                a.fused = match val("--path")?.as_str() {
                    "fused" => true,
                    "simple" => false,
                    o => return Err(format!("--path: '{o}' is not fused or simple")),
                }
            }
            "--threads" => {
                val("--threads")?;
            }
            other => return Err(format!("pipeline: unknown option '{other}'")),
        }
    }
    Ok(a)
}

/// The augmentation of the benchmark (same parameters as the Python versions).
pub fn bench_augment() -> Augment {
    Augment::new(vec![
        Op::RandomResizedCrop {
            size: [224, 224],
            scale: [0.08, 1.0],
            ratio: [0.75, 4.0 / 3.0],
        },
        Op::Hflip { p: 0.5 },
        Op::ColorJitter {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.1,
        },
    ])
}

fn jpegs(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(format!("no JPEG files in {}", dir.display()));
    }
    Ok(v)
}

fn run_ours(a: &Args, files: &[PathBuf]) -> Result<(f64, String), String> {
    let aug = bench_augment();
    let n = a.count;
    let src = Dataset::from_vec(files.to_vec()).repeat(None).take(n);
    let ds = if a.fused {
        src.map_batch_seeded(
            a.workers,
            7,
            a.batch,
            false,
            &[3, 224, 224],
            move |p: PathBuf, rng, out| {
                let bytes = ferrovision_data::fsutil::read(&p)?;
                let img = ferrovision_data::image::decode_rgb8(&bytes, &p)?;
                aug.apply_image_chw(&img, rng, out)?;
                Ok(())
            },
        )
    } else {
        src.map_seeded(a.workers, 7, move |p: PathBuf, rng| {
            let bytes = ferrovision_data::fsutil::read(&p)?;
            let img = ferrovision_data::image::decode_rgb8(&bytes, &p)?;
            let s = aug.apply(ImageSample::from_image(img), rng)?;
            s.image.to_tensor_chw(None)
        })
        .batch(a.batch, false)
    }
    .prefetch(2);
    let t = Instant::now();
    let mut images = 0usize;
    for b in ds.iter() {
        let b = b.map_err(|e| e.to_string())?;
        if b.shape()[1..] != [3, 224, 224] {
            return Err(format!("batch of shape {:?}", b.shape()));
        }
        images += b.shape()[0];
    }
    let secs = t.elapsed().as_secs_f64();
    if images != n {
        return Err(format!("pipeline produced {images} images, expected {n}"));
    }
    Ok((n as f64 / secs, ds.stats().table()))
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn decoder_speeds(files: &[PathBuf]) -> Result<(), String> {
    let bytes: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let time = |name: &str, f: &dyn Fn(&[u8]) -> usize| {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            let mut px = 0;
            for b in &bytes {
                px += f(b);
            }
            best = best.min(t.elapsed().as_secs_f64());
            std::hint::black_box(px);
        }
        println!(
            "  {name:<34} {:>8.1} img/s (1 thread, best of 3)",
            bytes.len() as f64 / best
        );
        bytes.len() as f64 / best
    };
    println!("JPEG decoders on {} files:", bytes.len());
    let direct = time("zune-jpeg direct (ours, strict)", &|b| {
        ferrovision_data::image::decode_jpeg(b, "x")
            .map(|i| i.data.len())
            .unwrap_or(0)
    });
    let via_image = time("image::load_from_memory (zune)", &|b| {
        image::load_from_memory(b)
            .map(|i| i.to_rgb8().len())
            .unwrap_or(0)
    });
    let jd = time("jpeg-decoder 0.3", &|b| {
        jpeg_decoder::Decoder::new(b)
            .decode()
            .map(|v| v.len())
            .unwrap_or(0)
    });
    println!("RESULT jpeg_decode zune_direct_img_s={direct:.1} image_crate_img_s={via_image:.1} jpeg_decoder_img_s={jd:.1}");
    Ok(())
}

/// Mean single-thread time of each step of the benchmark's per-image work, for the simple
/// path (8-bit `apply` op by op, then `to_tensor_chw`) and the fused path.
fn step_times(files: &[PathBuf]) -> Result<(), String> {
    use ferrovision_data::augment::Op;
    let bytes: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let imgs: Vec<_> = bytes
        .iter()
        .map(|b| ferrovision_data::image::decode_rgb8(b, "x").map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let mut rng = ferrovision_tensor_rng(1);
    let (mut dec, mut rrc, mut flip, mut jit, mut ten) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let steps = [
        Augment::new(vec![Op::RandomResizedCrop {
            size: [224, 224],
            scale: [0.08, 1.0],
            ratio: [0.75, 4.0 / 3.0],
        }]),
        Augment::new(vec![Op::Hflip { p: 0.5 }]),
        Augment::new(vec![Op::ColorJitter {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.1,
        }]),
    ];
    for b in &bytes {
        let t = Instant::now();
        let img = ferrovision_data::image::decode_rgb8(b, "x").map_err(|e| e.to_string())?;
        dec += t.elapsed().as_secs_f64();
        let mut s = ImageSample::from_image(img);
        for (k, acc) in [&mut rrc, &mut flip, &mut jit].into_iter().enumerate() {
            let t = Instant::now();
            s = steps[k].apply(s, &mut rng).map_err(|e| e.to_string())?;
            *acc += t.elapsed().as_secs_f64();
        }
        let t = Instant::now();
        std::hint::black_box(s.image.to_tensor_chw(None).map_err(|e| e.to_string())?);
        ten += t.elapsed().as_secs_f64();
    }
    let n = bytes.len() as f64 / 1000.0;
    println!("simple path, per image, 1 thread (ms): decode {:.2}  random_resized_crop {:.2}  hflip {:.2}  color_jitter {:.2}  to_tensor {:.2}", dec / n, rrc / n, flip / n, jit / n, ten / n);
    // Fused path: geometry alone (crop + resize + flip into f32 CHW), then the whole thing;
    // best of 3 passes over the decoded images, each image with the same seed every pass.
    let full = bench_augment();
    let geo = Augment::new(full.ops[..2].to_vec());
    let mut out = vec![0f32; 3 * 224 * 224];
    let mut time = |aug: &Augment| -> Result<f64, String> {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            for (i, img) in imgs.iter().enumerate() {
                let mut rng = ferrovision_tensor_rng(i as u64);
                aug.apply_image_chw(img, &mut rng, &mut out)
                    .map_err(|e| e.to_string())?;
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok(best / n)
    };
    {
        use ferrovision_data::fused::{jitter_chw, Jitter, JitterStep};
        let mut buf: Vec<f32> = (0..3 * 224 * 224)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        let mut line = String::from("jitter steps on 224x224 (ms):");
        for (name, st) in [
            ("brightness", JitterStep::Brightness(1.1)),
            ("contrast", JitterStep::Contrast(0.9)),
            ("saturation", JitterStep::Saturation(1.1)),
            ("hue", JitterStep::Hue(0.05)),
        ] {
            let j = Jitter { steps: vec![st] };
            let t = Instant::now();
            for _ in 0..200 {
                jitter_chw(&mut buf, 3, &j).map_err(|e| e.to_string())?;
            }
            line += &format!("  {name} {:.3}", t.elapsed().as_secs_f64() * 1000.0 / 200.0);
        }
        println!("{line}");
    }
    let g = time(&geo)?;
    let all = time(&full)?;
    println!(
        "fused path, per image, 1 thread (ms, best of 3): crop+resize+flip to f32 CHW {g:.2}  color_jitter {:.2}  total {all:.2}",
        all - g
    );
    Ok(())
}

fn ferrovision_tensor_rng(seed: u64) -> ferrovision::tensor::rng::Rng {
    ferrovision::tensor::rng::Rng::new(seed)
}

fn python_run(
    py: &Path,
    script: &Path,
    a: &Args,
    name: &str,
    extra: &[&str],
) -> Result<f64, String> {
    let out = Command::new(py)
        .arg(script)
        .args(extra)
        .args([
            "--images",
            &a.images.display().to_string(),
            "--count",
            &a.count.to_string(),
            "--batch",
            &a.batch.to_string(),
            "--workers",
            &a.workers.to_string(),
        ])
        .env("TF_CPP_MIN_LOG_LEVEL", "2")
        .output()
        .map_err(|e| format!("{}: cannot start: {e}", py.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{name} failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    stdout
        .lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix(&format!("RESULT {name} img_s="))
                .and_then(|v| v.trim().parse().ok())
        })
        .ok_or_else(|| format!("{name}: no RESULT line in:\n{stdout}"))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let a = parse(args)?;
    let files = jpegs(&a.images)?;
    if a.decoders {
        decoder_speeds(&files)?;
        return step_times(&files);
    }
    if !a.compare {
        println!("load average at start {}", loadavg());
        let (ips, table) = run_ours(&a, &files)?;
        println!("per-stage statistics:\n{table}");
        println!("load average at end {}", loadavg());
        println!("RESULT pipeline img_s={ips:.1}");
        return Ok(());
    }
    let root = repo_root();
    let py = find_python(a.python.as_deref())?;
    let path = if a.fused { "fused" } else { "simple" };
    println!(
        "pipeline: {} images, batch {}, {} workers, path {path}; load average at start {}",
        a.count,
        a.batch,
        a.workers,
        loadavg()
    );
    let (mut ours, mut tf, mut tv, mut tfc) = (vec![], vec![], vec![], vec![]);
    let mut last_table = String::new();
    for r in 0..a.runs.max(1) {
        let (o, t) = run_ours(&a, &files)?;
        last_table = t;
        let tf_script = root.join("bench/python/pipeline_tf.py");
        let t = python_run(&py, &tf_script, &a, "pipeline_tf", &[])?;
        let v = python_run(
            &py,
            &root.join("bench/python/pipeline_torch.py"),
            &a,
            "pipeline_torch",
            &[],
        )?;
        let c = if a.tf_decode_and_crop {
            let c = python_run(&py, &tf_script, &a, "pipeline_tf", &["--decode-and-crop"])?;
            tfc.push(c);
            format!("  tf.data decode_and_crop {c:.1}")
        } else {
            String::new()
        };
        println!(
            "run {}: ferrovision {o:.1}  tf.data {t:.1}  torchvision {v:.1}{c} img/s  (load {})",
            r + 1,
            loadavg()
        );
        ours.push(o);
        tf.push(t);
        tv.push(v);
    }
    let (o, t, v) = (median(&mut ours), median(&mut tf), median(&mut tv));
    println!("per-stage statistics (last ferrovision run):\n{last_table}");
    println!("{:<28} {:>10}", "pipeline (median img/s)", "img/s");
    println!("{:<28} {:>10.1}", format!("ferrovision ({path})"), o);
    println!(
        "{:<28} {:>10.1}   ratio {:.2}x",
        "tf.data (parallel map)",
        t,
        o / t
    );
    println!(
        "{:<28} {:>10.1}   ratio {:.2}x",
        "torchvision DataLoader",
        v,
        o / v
    );
    if !tfc.is_empty() {
        let c = median(&mut tfc);
        println!(
            "{:<28} {:>10.1}   ratio {:.2}x",
            "tf.data decode_and_crop",
            c,
            o / c
        );
    }
    println!("load average at end {}", loadavg());
    println!("RESULT pipeline img_s={o:.1} tf_img_s={t:.1} torch_img_s={v:.1} vs_tf={:.3} vs_torch={:.3}", o / t, o / v);
    Ok(())
}
