//! Runs each workload with ferrovision, PyTorch and TensorFlow in the same run (each in its own
//! process, interleaved per round so machine noise hits all three alike) and prints medians and
//! ratios.

use crate::util::{find_python, median, repo_root, Opts};
use std::collections::BTreeMap;
use std::process::Command;

type Metrics = BTreeMap<String, f64>;

/// Parses the `RESULT <name> k=v ...` last line of a workload's output.
fn parse_result(stdout: &str, workload: &str) -> Option<Metrics> {
    let line = stdout.lines().rev().find(|l| l.starts_with("RESULT "))?;
    let mut parts = line.split_whitespace().skip(1);
    if parts.next()? != workload {
        return None;
    }
    Some(
        parts
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect(),
    )
}

fn run_cmd(mut cmd: Command, what: &str, workload: &str) -> Result<Metrics, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{what} {workload} failed ({}):\n{}\n{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_result(&stdout, workload)
        .ok_or_else(|| format!("{what} {workload}: no RESULT line in:\n{stdout}"))
}

/// A number with one decimal, or three below 10 (ratios, fractions, steps/s).
fn num(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1}")
    }
}

/// Metrics where smaller is better (their ratio is other / ferrovision).
const LOWER_IS_BETTER: [&str; 2] = ["peak_rss_mb", "epoch_s"];

/// `--data DIR [--epochs N]` for the mnist workload.
fn mnist_args(opts: &Opts) -> Result<Vec<String>, String> {
    let data = opts
        .data
        .clone()
        .or_else(|| std::env::var("FERROVISION_MNIST").ok())
        .ok_or("the mnist workload needs --data DIR (or FERROVISION_MNIST)")?;
    let mut a = vec!["--data".to_string(), data];
    if let Some(e) = opts.epochs {
        a.extend(["--epochs".to_string(), e.to_string()]);
    }
    Ok(a)
}

pub fn run(opts: &Opts) -> Result<(), String> {
    let root = repo_root();
    let python = find_python(opts.python.as_deref())?;
    let threads = opts
        .threads
        .unwrap_or_else(ferrovision::tensor::kernels::num_threads);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let engines = ["ferrovision", "pytorch", "tensorflow"];
    // results[workload][engine][metric] = samples
    let mut results: BTreeMap<String, BTreeMap<&str, BTreeMap<String, Vec<f64>>>> = BTreeMap::new();
    for round in 0..opts.runs {
        for w in &opts.workloads {
            for engine in engines {
                let mut cmd;
                match engine {
                    "ferrovision" => {
                        cmd = Command::new(&exe);
                        cmd.arg(w).arg("--threads").arg(threads.to_string());
                        if w == "mnist" {
                            cmd.args(mnist_args(opts)?);
                        }
                    }
                    "pytorch" | "tensorflow" if w == "mnist" => {
                        // Keras `model.fit` and a PyTorch loop on the same MNIST files.
                        cmd = Command::new(&python);
                        cmd.arg(root.join("bench/python/mnist_bench.py"))
                            .arg("--framework")
                            .arg(if engine == "pytorch" {
                                "torch"
                            } else {
                                "keras"
                            })
                            .arg("--threads")
                            .arg(threads.to_string())
                            .args(mnist_args(opts)?);
                    }
                    "pytorch" | "tensorflow" => {
                        let script = if engine == "pytorch" {
                            "torch_bench.py"
                        } else {
                            "tf_bench.py"
                        };
                        cmd = Command::new(&python);
                        cmd.arg(root.join("bench/python").join(script))
                            .arg(w)
                            .arg("--threads")
                            .arg(threads.to_string());
                    }
                    _ => unreachable!(),
                }
                eprintln!("round {}/{}: {engine} {w} ...", round + 1, opts.runs);
                let m = run_cmd(cmd, engine, w)?;
                let slot = results
                    .entry(w.clone())
                    .or_default()
                    .entry(engine)
                    .or_default();
                for (k, v) in m {
                    slot.entry(k).or_default().push(v);
                }
            }
        }
    }
    println!(
        "\nmedians of {} runs, {threads} threads (higher is better except peak_rss_mb and epoch_s)",
        opts.runs
    );
    println!(
        "{:<10} {:<22} {:>12} {:>12} {:>12} {:>9} {:>9}",
        "workload", "metric", "ferrovision", "pytorch", "tensorflow", "vs torch", "vs tf"
    );
    for (w, by_engine) in &results {
        let Some(ours) = by_engine.get("ferrovision") else {
            continue;
        };
        for (metric, samples) in ours {
            let ours_med = median(&mut samples.clone());
            let other = |e: &str| {
                by_engine
                    .get(e)
                    .and_then(|m| m.get(metric))
                    .map(|s| median(&mut s.clone()))
            };
            let (pt, tf) = (other("pytorch"), other("tensorflow"));
            let fmt = |v: Option<f64>| v.map_or("-".to_string(), num);
            let ratio = |v: Option<f64>| {
                v.filter(|v| *v > 0.0).map_or("-".to_string(), |v| {
                    if LOWER_IS_BETTER.contains(&metric.as_str()) {
                        format!("{:.2}x", v / ours_med)
                    } else {
                        format!("{:.2}x", ours_med / v)
                    }
                })
            };
            println!(
                "{:<10} {:<22} {:>12} {:>12} {:>12} {:>9} {:>9}",
                w,
                metric,
                num(ours_med),
                fmt(pt),
                fmt(tf),
                ratio(pt),
                ratio(tf)
            );
        }
    }
    println!("(ratios: ferrovision / other for speed; other / ferrovision for memory)");
    Ok(())
}
