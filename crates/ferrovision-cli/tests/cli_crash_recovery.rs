//! A run directory survives a crash at any point: training is killed (`abort`, as `kill -9`
//! ends a process: no destructors, no flushing) before, during and after each checkpoint and
//! each final write, and `--resume` must always end with the outputs of an uninterrupted run.
//! Also: SIGTERM stops training with a resumable run, a foreign checkpoint is refused, and a
//! second writer is locked out.

mod common;

use common::{fails, ferrovision, ok, scratch, stderr};
use ferrovision_io::crash::CRASH_ENV;
use ferrovision_io::load_safetensors;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const EPOCHS: &str = "3";

/// A short LeNet run on the built-in digits (whole run well under a second), `EPOCHS` long
/// unless `extra` says otherwise.
fn train_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let epochs = if extra.contains(&"--epochs") {
        vec![]
    } else {
        vec!["--epochs", EPOCHS]
    };
    let mut a = vec![
        "train",
        "--out",
        out,
        "--limit",
        "160",
        "--test-limit",
        "96",
        "--verbose",
        "0",
        "--workers",
        "2",
    ];
    a.extend(epochs);
    a.extend_from_slice(extra);
    a
}

fn run_with_crash(args: &[&str], cwd: &Path, crash_at: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrovision"))
        .args(args)
        .current_dir(cwd)
        .env(CRASH_ENV, crash_at)
        .output()
        .expect("runs the binary")
}

/// A model file's tensors (name, values) and metadata (key, value).
type ModelContents = (Vec<(String, Vec<f32>)>, Vec<(String, String)>);

/// A safetensors file's tensors and metadata, with the run id taken out (runs with other
/// settings, such as the reference, have other ids).
fn model_contents(path: &Path) -> ModelContents {
    let f = load_safetensors(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tensors = f
        .tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.to_vec::<f32>().unwrap()))
        .collect();
    let mut meta: Vec<(String, String)> = f.metadata.into_iter().collect();
    for (k, v) in meta.iter_mut() {
        if k == "user" {
            let mut user: Value = serde_json::from_str(v).unwrap();
            user.as_object_mut().unwrap().remove("run_id");
            *v = user.to_string();
        }
    }
    meta.sort();
    (tensors, meta)
}

/// Everything a finished run wrote that does not depend on time or on its id.
fn snapshot(run: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut text = |name: &str| {
        let p = run.join(name);
        let t = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        out.push((name.to_string(), t));
    };
    text("history.json");
    text("log.csv");
    let mut files: Vec<String> = std::fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    out.push(("files".into(), files.join(",")));
    let mut ckpts: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    ckpts.sort();
    for c in &ckpts {
        out.push((
            c.clone(),
            format!("{:?}", model_contents(&run.join("checkpoints").join(c))),
        ));
    }
    out.push((
        "model".into(),
        format!("{:?}", model_contents(&run.join("model.safetensors"))),
    ));
    let mut metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    for timing in ["train_seconds", "epoch_seconds"] {
        metrics.as_object_mut().unwrap().remove(timing);
    }
    out.push(("metrics".into(), metrics.to_string()));
    let stats = std::fs::read_to_string(run.join("pipeline_stats.csv")).unwrap();
    let epochs: Vec<&str> = stats
        .lines()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    out.push(("pipeline_stats epochs".into(), epochs.join(",")));
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    let listed: Vec<&String> = manifest["files"].as_object().unwrap().keys().collect();
    out.push((
        "manifest".into(),
        format!("{} {listed:?}", manifest["epochs"]),
    ));
    out
}

/// Resumes (or, when the crash came before `run.json`, restarts) until the run finishes.
fn finish(run: &str, cwd: &Path) {
    let dir = cwd.join(run);
    let o = if dir.join("run.json").is_file() {
        ferrovision(&train_args(run, &["--resume"]), cwd)
    } else {
        ferrovision(&train_args(run, &[]), cwd)
    };
    ok(o);
}

#[test]
fn a_crash_at_any_point_resumes_to_the_uninterrupted_outputs() {
    let tmp = scratch();
    ok(ferrovision(&train_args("reference", &[]), &tmp));
    let want = snapshot(&tmp.join("reference"));
    // Before, during (temp file written, not renamed) and after each commit and final write.
    let points = [
        "before-rename:run.json",
        "run-config-written",
        "before-rename:pipeline_stats.csv@1",
        "before-rename:epoch-001.safetensors",
        "after-rename:epoch-001.safetensors",
        "epoch-committed@1",
        "before-rename:history.json@1",
        "after-rename:history.json@1",
        "before-rename:log.csv@1",
        "after-rename:log.csv@1",
        "after-rename:pipeline_stats.csv@2",
        "before-rename:epoch-002.safetensors",
        "epoch-committed@2",
        "before-rename:log.csv@2",
        "before-rename:epoch-003.safetensors",
        "after-rename:epoch-003.safetensors",
        "before-rename:history.json@3",
        "after-rename:log.csv@3",
        "before-rename:model.safetensors",
        "final-model-written",
        "before-rename:history.json@4",
        "before-rename:history.png",
        "after-rename:history.png",
        "before-rename:metrics.json",
        "after-rename:metrics.json",
        "before-rename:manifest.json",
    ];
    for (i, point) in points.iter().enumerate() {
        let run = format!("crash{i}");
        let o = run_with_crash(&train_args(&run, &[]), &tmp, point);
        assert!(
            !o.status.success() && stderr(&o).contains(&format!("crash point {point}")),
            "{point}: the crash point was not reached ({}): {}",
            o.status,
            stderr(&o)
        );
        finish(&run, &tmp);
        let got = snapshot(&tmp.join(&run));
        for ((name, w), (_, g)) in want.iter().zip(&got) {
            assert_eq!(
                w, g,
                "crash at {point}: {name} differs from the uninterrupted run"
            );
        }
        assert_eq!(want.len(), got.len(), "crash at {point}");
    }
    // Crashes while resuming, one after another, still end in the same place.
    let run = "chain";
    let args = train_args(run, &[]);
    assert!(!run_with_crash(&args, &tmp, "epoch-committed@1")
        .status
        .success());
    let resume = train_args(run, &["--resume"]);
    for point in [
        "before-rename:epoch-002.safetensors",
        "before-rename:metrics.json",
    ] {
        let o = run_with_crash(&resume, &tmp, point);
        assert!(
            stderr(&o).contains("crash point"),
            "{point}: {}",
            stderr(&o)
        );
    }
    finish(run, &tmp);
    assert_eq!(snapshot(&tmp.join(run)), want);
    // A finished run says so instead of training again.
    let err = fails(ferrovision(&train_args(run, &["--resume"]), &tmp));
    assert!(err.contains("the run is complete (3 epoch(s))"), "{err}");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_foreign_or_misnamed_checkpoint_is_refused_and_nothing_is_overwritten() {
    let tmp = scratch();
    ok(ferrovision(&train_args("mine", &[]), &tmp));
    ok(ferrovision(&train_args("other", &["--seed", "7"]), &tmp));
    let run = tmp.join("mine");
    let ckpts = run.join("checkpoints");
    // Another run's model dropped in as a later checkpoint.
    std::fs::copy(
        tmp.join("other/checkpoints/epoch-003.safetensors"),
        ckpts.join("epoch-009.safetensors"),
    )
    .unwrap();
    let before = std::fs::read(ckpts.join("epoch-003.safetensors")).unwrap();
    let err = fails(ferrovision(
        &train_args("mine", &["--resume", "--epochs", "12"]),
        &tmp,
    ));
    assert!(
        err.contains("epoch-009.safetensors") && err.contains("not written by this run"),
        "{err}"
    );
    // The same run's checkpoint under another epoch's name.
    std::fs::copy(
        ckpts.join("epoch-002.safetensors"),
        ckpts.join("epoch-009.safetensors"),
    )
    .unwrap();
    let err = fails(ferrovision(
        &train_args("mine", &["--resume", "--epochs", "12"]),
        &tmp,
    ));
    assert!(err.contains("its name says 9"), "{err}");
    assert_eq!(
        std::fs::read(ckpts.join("epoch-003.safetensors")).unwrap(),
        before
    );
    assert!(!ckpts.join("epoch-010.safetensors").exists());
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_second_writer_is_locked_out_with_the_holders_pid() {
    let tmp = scratch();
    ok(ferrovision(&train_args("run", &[]), &tmp));
    // Hold the run's lock as a running `train` does.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(tmp.join("run/run.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    std::fs::write(tmp.join("run/run.lock"), "4242").unwrap();
    let err = fails(ferrovision(
        &train_args("run", &["--resume", "--epochs", "5"]),
        &tmp,
    ));
    assert!(
        err.contains("in use by another ferrovision process (pid 4242)"),
        "{err}"
    );
    drop(lock);
    ok(ferrovision(
        &train_args("run", &["--resume", "--epochs", "4"]),
        &tmp,
    ));
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Starts a long `train` into `out`, waits for its first checkpoint and sends SIGTERM.
#[cfg(unix)]
fn train_and_terminate(args: &[&str], tmp: &Path, out: &str) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_ferrovision"))
        .args(args)
        .current_dir(tmp)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let first = tmp.join(out).join("checkpoints/epoch-001.safetensors");
    let t0 = std::time::Instant::now();
    while !first.exists() {
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    child.wait_with_output().unwrap()
}

/// SIGTERM stops training after the current step, saves the suspended epoch's progress, exits
/// 143 with the resume command, and `--resume` ends exactly as the uninterrupted run.
#[cfg(unix)]
#[test]
fn sigterm_stops_training_with_a_resumable_run() {
    let tmp = scratch();
    let args = |out: &'static str, extra: &[&'static str]| -> Vec<&'static str> {
        let mut a = vec![
            "train",
            "--out",
            out,
            "--epochs",
            "40",
            "--limit",
            "800",
            "--test-limit",
            "96",
            "--verbose",
            "0",
        ];
        a.extend_from_slice(extra);
        a
    };
    ok(ferrovision(&args("reference", &[]), &tmp));
    let want = tmp.join("reference");
    // The signal lands mid-epoch almost always (25 steps an epoch); retry the rare miss.
    let mut mid_epoch = false;
    for (attempt, out) in ["stopped0", "stopped1", "stopped2", "stopped3"]
        .iter()
        .enumerate()
    {
        let o = train_and_terminate(&args(out, &[]), &tmp, out);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(143), "{err}");
        assert!(
            err.contains("interrupted by SIGTERM during epoch")
                && err.contains("--resume --epochs 40")
                && !err.contains("panicked"),
            "{err}"
        );
        let got = tmp.join(out);
        assert!(!got.join("model.safetensors").exists());
        let partial = got.join("checkpoints/partial.safetensors");
        if err.contains("saved the epoch's progress after step") {
            assert!(partial.is_file(), "{err}");
            mid_epoch = true;
            // A crash right after the suspended epoch is committed (before the partial
            // checkpoint is removed): the next resume must take the newer full checkpoint.
            let o = run_with_crash(&args(out, &["--resume"]), &tmp, "epoch-committed");
            assert!(stderr(&o).contains("crash point"), "{}", stderr(&o));
            assert!(partial.is_file());
        }
        ok(ferrovision(&args(out, &["--resume"]), &tmp));
        assert!(
            !partial.exists(),
            "the partial checkpoint outlived its epoch"
        );
        assert_eq!(
            model_contents(&want.join("model.safetensors")),
            model_contents(&got.join("model.safetensors")),
            "attempt {attempt}"
        );
        for f in ["log.csv", "history.json"] {
            assert_eq!(
                std::fs::read_to_string(want.join(f)).unwrap(),
                std::fs::read_to_string(got.join(f)).unwrap(),
                "{f}, attempt {attempt}"
            );
        }
        if mid_epoch {
            break;
        }
    }
    assert!(mid_epoch, "SIGTERM never landed mid-epoch in 4 attempts");
    let _ = std::fs::remove_dir_all(&tmp);
}
