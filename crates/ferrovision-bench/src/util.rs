//! Small helpers shared by the workloads: options, timing, memory.

use std::path::{Path, PathBuf};
use std::time::Instant;

/// The repository root (this crate lives in `crates/ferrovision-bench`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python of the comparison runs: `explicit` (`--python`), else `$FERROVISION_PYTHON`,
/// else `reference/.venv/bin/python` in this checkout or in a checkout above it (git
/// worktrees live inside the main checkout). An error says how to create the venv.
pub fn find_python(explicit: Option<&str>) -> Result<PathBuf, String> {
    let chosen = explicit
        .map(str::to_string)
        .or_else(|| std::env::var("FERROVISION_PYTHON").ok());
    let path = match chosen {
        Some(p) => PathBuf::from(p),
        None => {
            let root = repo_root();
            let mut dir = root.canonicalize().unwrap_or_else(|_| root.clone());
            loop {
                let c = dir.join("reference/.venv/bin/python");
                if c.exists() || !dir.pop() {
                    break c;
                }
            }
        }
    };
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: create the reference venv with reference/setup_venv.sh (or pass \
             --python, or set FERROVISION_PYTHON)",
            path.display()
        ))
    }
}

/// Command-line options common to all workloads.
#[derive(Debug, Default, Clone)]
pub struct Opts {
    pub threads: Option<usize>,
    pub runs: usize,
    pub workloads: Vec<String>,
    pub python: Option<String>,
    /// Dataset folder (`mnist`).
    pub data: Option<String>,
    /// Epochs (`mnist`, default 3 including the warm-up).
    pub epochs: Option<usize>,
}

impl Opts {
    pub fn parse(args: &[String]) -> Result<Opts, String> {
        let mut o = Opts {
            runs: 3,
            workloads: vec!["lenet5".into(), "resnet18".into(), "gemm".into()],
            ..Default::default()
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match a.as_str() {
                "--threads" => {
                    let v = value("--threads")?;
                    o.threads = Some(
                        v.parse()
                            .map_err(|_| format!("--threads: '{v}' is not a number"))?,
                    );
                }
                "--runs" => {
                    let v = value("--runs")?;
                    o.runs = v
                        .parse()
                        .map_err(|_| format!("--runs: '{v}' is not a number"))?;
                }
                "--workloads" => {
                    o.workloads = value("--workloads")?
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .collect();
                }
                "--python" => o.python = Some(value("--python")?),
                "--data" => o.data = Some(value("--data")?),
                "--epochs" => {
                    let v = value("--epochs")?;
                    o.epochs = Some(
                        v.parse()
                            .map_err(|_| format!("--epochs: '{v}' is not a number"))?,
                    );
                }
                other => return Err(format!("unknown option '{other}'")),
            }
        }
        Ok(o)
    }
}

/// Peak resident set size of this process in MiB (VmHWM), 0 where /proc is unavailable.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Seconds taken by `f`.
pub fn time<R>(f: impl FnOnce() -> R) -> (R, f64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_secs_f64())
}

/// Median of a non-empty list.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The fraction of this machine's FP32 peak (measured once per process, as in the `gemm`
/// workload) that `rate` runs per second of `flops` nominal FLOPs each reach.
pub fn peak_fraction(rate: f64, flops: f64) -> f64 {
    static PEAK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let peak = *PEAK.get_or_init(|| {
        ferrovision::tensor::kernels::gemm::measure_peak_gflops(
            ferrovision::tensor::kernels::num_threads(),
        )
    });
    rate * flops / (peak * 1e9)
}

/// Nominal FLOPs per image of the model's first traced inference plan (its forward pass at
/// `batch`).
pub fn forward_flops_per_image(model: &ferrovision::train::Model, batch: usize) -> f64 {
    model
        .trace_stats()
        .plan_flops
        .first()
        .map_or(0.0, |&f| f as f64 / batch as f64)
}
