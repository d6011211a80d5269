//! Callbacks: Keras reference behaviour (reference/fixtures/nn_callbacks.json, made by
//! reference/make_nn_callbacks_fixtures.py) and every callback in a real `Model::fit`.

mod callbacks_support;

use callbacks_support::*;
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{Error, NetworkExt};
use ferrovision_train::callbacks::{
    format_template, history_csv, py_float_repr, CSVLogger, EarlyStopping, LambdaCallback,
    LearningRateScheduler, Mode, ModelCheckpoint, ProgbarLogger, ReduceLROnPlateau, SaveFreq,
    TerminateOnNaN, TrainParams,
};
use ferrovision_train::{Callback, FitOptions, Logs, Model};
use serde_json::Value;
use std::sync::{Arc, Mutex};

fn params(epochs: usize) -> TrainParams {
    TrainParams {
        epochs,
        initial_epoch: 0,
        steps: Some(1),
        verbose: 0,
    }
}

fn quiet(epochs: usize) -> FitOptions {
    FitOptions {
        epochs,
        batch_size: 4,
        shuffle: false,
        verbose: 0,
        ..FitOptions::default()
    }
}

fn mode_of(case: &Value) -> Mode {
    match case.get("mode").and_then(Value::as_str) {
        Some("min") => Mode::Min,
        Some("max") => Mode::Max,
        _ => Mode::Auto,
    }
}

fn f(case: &Value, key: &str) -> Option<f64> {
    case.get(key).and_then(Value::as_f64)
}

fn values(case: &Value) -> Vec<f64> {
    case["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn logs1(key: &str, v: f64) -> Logs {
    let mut l = Logs::new();
    l.insert(key, v);
    l
}

#[test]
fn early_stopping_matches_keras() {
    let fx = load_json("nn_callbacks.json");
    for case in fx["early_stopping"].as_array().unwrap() {
        let monitor = case["monitor"].as_str().unwrap();
        let mut es = EarlyStopping::new(monitor)
            .mode(mode_of(case))
            .patience(case["patience"].as_u64().unwrap() as usize)
            .min_delta(f(case, "min_delta").unwrap_or(0.0))
            .start_from_epoch(
                case.get("start_from_epoch")
                    .map_or(0, |v| v.as_u64().unwrap()) as usize,
            )
            .restore_best_weights(case.get("restore_best_weights").is_some_and(|v| v == true));
        if let Some(b) = f(case, "baseline") {
            es = es.baseline(b);
        }
        let mut model = marker_model();
        let vals = values(case);
        es.on_train_begin(&mut model, &params(vals.len())).unwrap();
        let mut run = 0;
        for (epoch, v) in vals.iter().enumerate() {
            set_marker(&model, epoch as f32);
            es.on_epoch_end(&mut model, epoch, &logs1(monitor, *v))
                .unwrap();
            run = epoch + 1;
            if model.stop_training {
                break;
            }
        }
        es.on_train_end(&mut model, &Logs::new()).unwrap();
        assert_eq!(run as u64, case["epochs_run"].as_u64().unwrap(), "{case}");
        assert_eq!(
            es.stopped_epoch().unwrap_or(0) as u64,
            case["stopped_epoch"].as_u64().unwrap(),
            "{case}"
        );
        assert_eq!(
            es.best_epoch().unwrap() as u64,
            case["best_epoch"].as_u64().unwrap(),
            "{case}"
        );
        assert_eq!(
            marker(&model) as f64,
            case["final_weight"].as_f64().unwrap(),
            "{case}"
        );
    }
}

#[test]
fn reduce_lr_matches_keras() {
    let fx = load_json("nn_callbacks.json");
    for case in fx["reduce_lr"].as_array().unwrap() {
        let monitor = case["monitor"].as_str().unwrap();
        let mut cb = ReduceLROnPlateau::new(monitor)
            .mode(mode_of(case))
            .factor(f(case, "factor").unwrap())
            .patience(case["patience"].as_u64().unwrap() as usize)
            .cooldown(case.get("cooldown").map_or(0, |v| v.as_u64().unwrap()) as usize)
            .min_lr(f(case, "min_lr").unwrap_or(0.0))
            .min_delta(f(case, "min_delta").unwrap_or(1e-4));
        let mut model = marker_model();
        model
            .optimizer_mut()
            .unwrap()
            .set_learning_rate(f(case, "lr").unwrap());
        let vals = values(case);
        cb.on_train_begin(&mut model, &params(vals.len())).unwrap();
        for (epoch, (v, want)) in vals.iter().zip(case["lrs"].as_array().unwrap()).enumerate() {
            cb.on_epoch_end(&mut model, epoch, &logs1(monitor, *v))
                .unwrap();
            let got = model.optimizer().unwrap().learning_rate();
            let want = want.as_f64().unwrap();
            // Keras keeps the rate in float32.
            assert!(
                ((got - want) / want).abs() < 1e-6,
                "epoch {epoch}: lr {got}, Keras {want} in {case}"
            );
        }
    }
}

#[test]
fn checkpoint_best_only_matches_keras() {
    let fx = load_json("nn_callbacks.json");
    for (i, case) in fx["checkpoint_best"].as_array().unwrap().iter().enumerate() {
        let dir = temp_dir(&format!("ckpt-keras-{i}"));
        let monitor = case["monitor"].as_str().unwrap();
        let template = format!("{}/w-{{epoch:02d}}.weights.h5", dir.display());
        let mut cb = ModelCheckpoint::new(template)
            .monitor(monitor)
            .mode(mode_of(case))
            .save_best_only(true)
            .save_weights_only(true);
        if let Some(t) = f(case, "initial_value_threshold") {
            cb = cb.initial_value_threshold(t);
        }
        let mut model = marker_model();
        let vals = values(case);
        cb.on_train_begin(&mut model, &params(vals.len())).unwrap();
        for (epoch, v) in vals.iter().enumerate() {
            cb.on_epoch_begin(&mut model, epoch).unwrap();
            cb.on_epoch_end(&mut model, epoch, &logs1(monitor, *v))
                .unwrap();
        }
        let got: Vec<String> = cb
            .saved_paths()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let want: Vec<String> = case["saved"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, want, "{case}");
        for p in cb.saved_paths() {
            assert!(p.is_file(), "{} was not written", p.display());
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn templates_match_python_format() {
    let fx = load_json("nn_callbacks.json");
    for case in fx["templates"].as_array().unwrap() {
        let mut logs = Logs::new();
        for (k, v) in case["logs"].as_object().unwrap() {
            logs.insert(k.as_str(), v.as_f64().unwrap());
        }
        let got = format_template(
            case["template"].as_str().unwrap(),
            case["epoch"].as_u64().unwrap() as usize,
            None,
            &logs,
        )
        .unwrap();
        assert_eq!(got, case["result"].as_str().unwrap(), "{case}");
    }
}

#[test]
fn template_errors_are_clear() {
    let logs = logs1("loss", 0.5);
    let e = format_template("w-{val_loss:.2f}", 1, None, &logs).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("'val_loss'") && msg.contains("loss"), "{msg}");
    let e = format_template("w-{loss:d}", 1, None, &logs).unwrap_err();
    assert!(e.to_string().contains("format code 'd'"), "{e}");
    let e = format_template("w-{epoch", 1, None, &logs).unwrap_err();
    assert!(e.to_string().contains("unclosed"), "{e}");
    let e = format_template("w-{loss:>10q}", 1, None, &logs).unwrap_err();
    assert!(e.to_string().contains("unsupported format spec"), "{e}");
    assert_eq!(
        format_template("{epoch}-{batch:03d}", 2, Some(7), &logs).unwrap(),
        "2-007"
    );
}

#[test]
fn float_repr_matches_python() {
    let fx = load_json("nn_callbacks.json");
    for pair in fx["float_repr"].as_array().unwrap() {
        let v = pair[0].as_f64().unwrap();
        assert_eq!(py_float_repr(v), pair[1].as_str().unwrap(), "{v:e}");
    }
}

#[test]
fn csv_logger_matches_keras() {
    let fx = load_json("nn_callbacks.json");
    let dir = temp_dir("csv-keras");
    for case in fx["csv"].as_array().unwrap() {
        let path = dir.join(format!("{}.csv", case["name"].as_str().unwrap()));
        let sep = case["separator"].as_str().unwrap().chars().next().unwrap();
        let epochs: Vec<Logs> = case["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let mut l = Logs::new();
                for (k, v) in e.as_object().unwrap() {
                    l.insert(k.as_str(), v.as_f64().unwrap());
                }
                l
            })
            .collect();
        let mut model = marker_model();
        for (append, first, want) in [(false, 0, "plain"), (true, epochs.len(), "appended")] {
            let mut cb = CSVLogger::new(&path).separator(sep).append(append);
            cb.on_train_begin(&mut model, &params(4)).unwrap();
            for (i, l) in epochs.iter().enumerate() {
                cb.on_epoch_end(&mut model, first + i, l).unwrap();
            }
            cb.on_train_end(&mut model, &Logs::new()).unwrap();
            // Keras' excel dialect ends rows with \r\n; we write \n.
            let keras = case[want].as_str().unwrap().replace("\r\n", "\n");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), keras, "{case}");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// SGD at lr 2.0 on this data diverges: the loss grows every epoch after the first.
#[test]
fn early_stopping_in_fit_stops_and_restores_best_weights() {
    let (x, y) = linear_data();
    let mut model = tiny_model(2.0);
    let es = Arc::new(Mutex::new(
        EarlyStopping::new("loss")
            .patience(2)
            .restore_best_weights(true),
    ));
    let seen: Arc<Mutex<Vec<Vec<f32>>>> = Arc::default();
    let rec = seen.clone();
    let record = LambdaCallback::new().on_epoch_end(move |m, _e, _l| {
        let w: Vec<f32> = m
            .network()
            .get_weights()?
            .iter()
            .flat_map(|t| t.to_vec::<f32>().unwrap())
            .collect();
        rec.lock().unwrap().push(w);
        Ok(())
    });
    let h = model
        .fit(
            &x,
            &y,
            quiet(20),
            vec![Box::new(record), Box::new(es.clone())],
        )
        .unwrap();
    let losses = h.get("loss");
    let es = es.lock().unwrap();
    let best = es.best_epoch().unwrap();
    let stopped = es.stopped_epoch().expect("training should stop early");
    assert!(losses.len() < 20, "{losses:?}");
    assert_eq!(stopped + 1, losses.len());
    assert_eq!(stopped, best + 2, "patience 2 after the best epoch");
    let min = losses.iter().cloned().fold(f64::INFINITY, f64::min);
    assert_eq!(losses[best], min);
    let final_w: Vec<f32> = model
        .network()
        .get_weights()
        .unwrap()
        .iter()
        .flat_map(|t| t.to_vec::<f32>().unwrap())
        .collect();
    assert_eq!(final_w, seen.lock().unwrap()[best]);
    assert_ne!(final_w, *seen.lock().unwrap().last().unwrap());
}

#[test]
fn schedulers_set_the_learning_rate_used_by_fit() {
    let (x, y) = linear_data();
    let mut model = tiny_model(0.1);
    let sched = LearningRateScheduler::new(|epoch, lr| if epoch == 0 { 0.08 } else { lr * 0.5 });
    let h = model.fit(&x, &y, quiet(4), vec![Box::new(sched)]).unwrap();
    assert_eq!(h.get("lr"), vec![0.08, 0.04, 0.02, 0.01]);

    // ReduceLROnPlateau with a min_delta no epoch can beat: a reduction every 2 epochs after
    // the first, floored at min_lr.
    let mut model = tiny_model(0.1);
    let cb = ReduceLROnPlateau::new("loss")
        .factor(0.5)
        .patience(2)
        .min_delta(100.0)
        .min_lr(0.03);
    let h = model.fit(&x, &y, quiet(8), vec![Box::new(cb)]).unwrap();
    let lrs = h.get("lr");
    let want = [0.1, 0.1, 0.1, 0.05, 0.05, 0.03, 0.03, 0.03];
    for (g, w) in lrs.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{lrs:?}");
    }
    assert_eq!(model.optimizer().unwrap().learning_rate(), 0.03);
}

#[test]
fn scheduler_rejects_bad_rates() {
    let (x, y) = linear_data();
    let mut model = tiny_model(0.1);
    let sched = LearningRateScheduler::new(|_, _| f64::NAN);
    let e = model
        .fit(&x, &y, quiet(2), vec![Box::new(sched)])
        .unwrap_err();
    assert!(
        matches!(e, Error::Config(_)) && e.to_string().contains("NaN"),
        "{e}"
    );
    let cb = ReduceLROnPlateau::new("loss").factor(1.5);
    let e = model.fit(&x, &y, quiet(2), vec![Box::new(cb)]).unwrap_err();
    assert!(e.to_string().contains("factor"), "{e}");
    let cb = EarlyStopping::new("lr");
    let e = model.fit(&x, &y, quiet(2), vec![Box::new(cb)]).unwrap_err();
    assert!(e.to_string().contains("Mode::Min"), "{e}");
}

/// Reads the `dense/kernel` weights in a safetensors checkpoint.
fn saved_kernel(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("dense/kernel").unwrap();
    t.data()
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn checkpoint_in_fit_names_and_contents() {
    let (x, y) = linear_data();
    let dir = temp_dir("ckpt-fit");
    let kernels: Arc<Mutex<Vec<Vec<f32>>>> = Arc::default();
    let rec = kernels.clone();
    let record = LambdaCallback::new().on_epoch_end(move |m, _e, _l| {
        rec.lock()
            .unwrap()
            .push(m.network().get_weights()?[0].to_vec::<f32>()?);
        Ok(())
    });
    let every2 = Arc::new(Mutex::new(
        ModelCheckpoint::new(format!(
            "{}/sub/w-{{epoch:02d}}-{{loss:.4f}}.safetensors",
            dir.display()
        ))
        .save_weights_only(true)
        .save_freq(SaveFreq::Epochs(2)),
    ));
    let batches = Arc::new(Mutex::new(
        ModelCheckpoint::new(format!("{}/b{{epoch}}-{{batch}}.ckpt", dir.display()))
            .save_freq(SaveFreq::Batches(3)),
    ));
    let mut model = tiny_model(0.05);
    let h = model
        .fit(
            &x,
            &y,
            quiet(4),
            vec![
                Box::new(record),
                Box::new(every2.clone()),
                Box::new(batches.clone()),
            ],
        )
        .unwrap();
    let losses = h.get("loss");
    let every2 = every2.lock().unwrap();
    let names: Vec<String> = every2
        .saved_paths()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![
            format!("w-02-{:.4}.safetensors", losses[1]),
            format!("w-04-{:.4}.safetensors", losses[3]),
        ]
    );
    let kernels = kernels.lock().unwrap();
    assert_eq!(saved_kernel(&every2.saved_paths()[0]), kernels[1]);
    assert_eq!(saved_kernel(&every2.saved_paths()[1]), kernels[3]);
    // 4 batches per epoch, a save every 3 batches: after batches 3, 6, 9, 12, 15 (1-based,
    // counted across epochs) = epoch 1 batch 3, 2/2, 3/1, 3/4, 4/3.
    let names: Vec<String> = batches
        .lock()
        .unwrap()
        .saved_paths()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "b1-3.ckpt",
            "b2-2.ckpt",
            "b3-1.ckpt",
            "b3-4.ckpt",
            "b4-3.ckpt"
        ]
    );
    assert!(dir.join("b3-4.ckpt").is_file());
    // No temp files are left behind by the atomic writes.
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".safetensors"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn checkpoint_errors() {
    let (x, y) = linear_data();
    let dir = temp_dir("ckpt-err");
    let mut model = tiny_model(0.05);
    let cb = ModelCheckpoint::new(format!("{}/w-{{val_loss:.2f}}", dir.display()));
    let e = model.fit(&x, &y, quiet(1), vec![Box::new(cb)]).unwrap_err();
    assert!(e.to_string().contains("no value named 'val_loss'"), "{e}");
    // A failed fit still counts its epoch: start the next ones from a fresh model.
    let mut model = tiny_model(0.05);
    let cb = ModelCheckpoint::new(dir.display().to_string());
    let e = model.fit(&x, &y, quiet(1), vec![Box::new(cb)]).unwrap_err();
    assert!(e.to_string().contains("existing directory"), "{e}");
    let mut model = tiny_model(0.05);
    let cb = ModelCheckpoint::new("x").save_freq(SaveFreq::Epochs(0));
    assert!(model.fit(&x, &y, quiet(1), vec![Box::new(cb)]).is_err());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn csv_logger_in_fit_and_resume() {
    let (x, y) = linear_data();
    let dir = temp_dir("csv-fit");
    let path = dir.join("logs/train.csv");
    let mut model = tiny_model(0.05);
    let opts = FitOptions {
        validation_data: Some((vec![x.clone()], vec![y.clone()])),
        ..quiet(2)
    };
    let h1 = model
        .fit(&x, &y, opts.clone(), vec![Box::new(CSVLogger::new(&path))])
        .unwrap();
    let opts2 = FitOptions { epochs: 3, ..opts };
    let h2 = model
        .fit(
            &x,
            &y,
            opts2,
            vec![Box::new(CSVLogger::new(&path).append(true))],
        )
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "epoch,loss,lr,val_loss");
    assert_eq!(lines.len(), 1 + 3, "{text}");
    let mut all = h1.logs.clone();
    all.extend(h2.logs.clone());
    for (i, (line, logs)) in lines[1..].iter().zip(&all).enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[0], i.to_string());
        assert_eq!(cells[1].parse::<f64>().unwrap(), logs.get("loss").unwrap());
        assert_eq!(cells[2].parse::<f64>().unwrap(), logs.get("lr").unwrap());
        assert_eq!(
            cells[3].parse::<f64>().unwrap(),
            logs.get("val_loss").unwrap()
        );
    }
    // The log rebuilt from the history is the streamed one, byte for byte.
    let mut history = h1.clone();
    history.epochs.extend(h2.epochs.clone());
    history.logs.extend(h2.logs.clone());
    assert_eq!(history_csv(&history), text);
    assert_eq!(history_csv(&ferrovision_train::History::default()), "");
    // A CSV path under a regular file cannot be created: an I/O error naming the path.
    let bad = dir.join("logs/train.csv/nested.csv");
    let e = model
        .fit(&x, &y, quiet(1), vec![Box::new(CSVLogger::new(&bad))])
        .unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("train.csv"),
        "{e}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn terminate_on_nan_stops_after_the_bad_batch() {
    let (x, y) = linear_data();
    let mut xv = x.to_vec::<f32>().unwrap();
    xv[2 * 5] = f32::NAN; // sample 5, in the second batch of 4
    let x = Tensor::from_vec(xv, &[16, 2]).unwrap();
    let batches = Arc::new(Mutex::new(0usize));
    let count = batches.clone();
    let counter = LambdaCallback::new().on_batch_end(move |_, _, _| {
        *count.lock().unwrap() += 1;
        Ok(())
    });
    let t = Arc::new(Mutex::new(TerminateOnNaN::new()));
    let mut model = tiny_model(0.05);
    let h = model
        .fit(
            &x,
            &y,
            quiet(5),
            vec![Box::new(counter), Box::new(t.clone())],
        )
        .unwrap();
    assert_eq!(h.logs.len(), 1);
    assert_eq!(*batches.lock().unwrap(), 2);
    assert_eq!(t.lock().unwrap().stopped_at_batch(), Some(1));
    assert!(h.get("loss")[0].is_nan());

    let mut model = tiny_model(0.05);
    let e = model
        .fit(
            &x,
            &y,
            quiet(5),
            vec![Box::new(TerminateOnNaN::new().raise_error(true))],
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("NaN or Inf loss encountered at batch 1"),
        "{e}"
    );
}

#[test]
fn lambda_callback_sees_every_hook() {
    let (x, y) = linear_data();
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let (a, b, c, d, e, g) = (
        events.clone(),
        events.clone(),
        events.clone(),
        events.clone(),
        events.clone(),
        events.clone(),
    );
    let cb = LambdaCallback::new()
        .on_train_begin(move |_, p| {
            a.lock().unwrap().push(format!("train_begin {}", p.epochs));
            Ok(())
        })
        .on_epoch_begin(move |_, ep| {
            b.lock().unwrap().push(format!("epoch_begin {ep}"));
            Ok(())
        })
        .on_batch_begin(move |_, bt| {
            c.lock().unwrap().push(format!("batch_begin {bt}"));
            Ok(())
        })
        .on_batch_end(move |_, bt, l| {
            assert!(l.get("loss").is_some());
            d.lock().unwrap().push(format!("batch_end {bt}"));
            Ok(())
        })
        .on_epoch_end(move |_, ep, l| {
            assert!(l.get("loss").is_some() && l.get("lr").is_some());
            e.lock().unwrap().push(format!("epoch_end {ep}"));
            Ok(())
        })
        .on_train_end(move |_, l| {
            g.lock()
                .unwrap()
                .push(format!("train_end {}", l.get("loss").is_some()));
            Ok(())
        });
    let mut model = tiny_model(0.05);
    let opts = FitOptions {
        batch_size: 8,
        ..quiet(2)
    };
    model.fit(&x, &y, opts, vec![Box::new(cb)]).unwrap();
    let got = events.lock().unwrap().clone();
    let mut want = vec!["train_begin 2".to_string()];
    for ep in 0..2 {
        want.push(format!("epoch_begin {ep}"));
        for bt in 0..2 {
            want.push(format!("batch_begin {bt}"));
            want.push(format!("batch_end {bt}"));
        }
        want.push(format!("epoch_end {ep}"));
    }
    want.push("train_end true".into());
    assert_eq!(got, want);

    // An error from a closure ends fit with that error.
    let failing = LambdaCallback::new().on_epoch_end(|_, _, _| Err(Error::config("stop here")));
    let e = model
        .fit(&x, &y, quiet(3), vec![Box::new(failing)])
        .unwrap_err();
    assert_eq!(e.to_string(), "stop here");
}

/// `Epoch 2/3 - 4/4 - 0s 12ms/step - loss: 0.1234 - lr: 0.0500 - val_loss: 0.1234`
fn check_line(line: &str, epoch: usize, with_steps: bool, logs: &Logs) {
    let head = format!("Epoch {epoch}/3 - ");
    assert!(line.starts_with(&head), "{line}");
    let rest = &line[head.len()..];
    let rest = if with_steps {
        rest.strip_prefix("4/4 - ")
            .unwrap_or_else(|| panic!("{line}"))
    } else {
        rest
    };
    let parts: Vec<&str> = rest.split(" - ").collect();
    let timing = if with_steps {
        parts[0].to_string()
    } else {
        format!("{} {}", parts[0], parts[1])
    };
    let (secs, per_step) = timing.split_once(' ').unwrap();
    assert!(
        secs.ends_with('s') && secs[..secs.len() - 1].parse::<u64>().is_ok(),
        "{line}"
    );
    assert!(per_step.ends_with("s/step"), "{line}");
    let logs_text = parts[if with_steps { 1 } else { 2 }..].join(" - ");
    let want: Vec<String> = logs.iter().map(|(k, v)| format!("{k}: {v:.4}")).collect();
    assert_eq!(logs_text, want.join(" - "), "{line}");
}

#[test]
fn progbar_lines_per_epoch() {
    let (x, y) = linear_data();
    for verbose in [0u8, 1, 2] {
        let out = Capture::default();
        let mut model = tiny_model(0.05);
        let opts = FitOptions {
            validation_data: Some((vec![x.clone()], vec![y.clone()])),
            ..quiet(3)
        };
        let h = model
            .fit(
                &x,
                &y,
                opts,
                vec![Box::new(ProgbarLogger::to_writer(verbose, out.clone()))],
            )
            .unwrap();
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        if verbose == 0 {
            assert!(text.is_empty(), "{text}");
            continue;
        }
        assert_eq!(lines.len(), 3, "{text}");
        for (i, line) in lines.iter().enumerate() {
            check_line(line, i + 1, verbose == 1, &h.logs[i]);
        }
    }
}

#[test]
fn shared_callbacks_keep_their_state() {
    let (x, y) = linear_data();
    let es = Arc::new(Mutex::new(EarlyStopping::new("loss").patience(100)));
    let as_dyn: Box<dyn Callback> = Box::new(es.clone());
    let mut model: Model = tiny_model(0.05);
    let h = model.fit(&x, &y, quiet(3), vec![as_dyn]).unwrap();
    let es = es.lock().unwrap();
    assert_eq!(es.stopped_epoch(), None);
    assert_eq!(es.best(), h.get("loss").last().copied());
    assert_eq!(model.network().count_params(), 3);
}
