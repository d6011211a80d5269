//! The PyTorch reader against PyTorch itself: `reference/make_import_torch_fixtures.py` (torch
//! 2.15.0) wrote the `.pt` files with `torch.save` and, in `torch_expected.safetensors`, every
//! tensor `torch.load` returns from them (as exact f32 values, with each torch dtype in the
//! metadata). Every tensor must match exactly, in every container (zip, legacy, pickle
//! protocol 4, big-endian zip, deflated zip); crafted pickles must be refused with an error
//! naming the global; truncated or corrupted files must give errors, never panics. The real
//! EfficientNet-Lite0 file of the local model cache is compared with `torch.load`'s summary.

use ferrovision_import::{torch, Error, ImportedWeights, SourceFormat};
use ferrovision_io::safetensors::{load_safetensors, SafetensorsFile};
use ferrovision_tensor::DType;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../reference/fixtures/import")
        .join(name)
}

fn expected() -> SafetensorsFile {
    let p = fixture("torch_expected.safetensors");
    load_safetensors(&p).unwrap_or_else(|e| panic!("{e}"))
}

fn dtype_of(torch_dtype: &str) -> DType {
    match torch_dtype {
        "torch.float32" | "torch.float64" => DType::F32,
        "torch.float16" => DType::F16,
        "torch.bfloat16" => DType::BF16,
        "torch.int64" => DType::I64,
        "torch.int32" => DType::I32,
        "torch.uint8" => DType::U8,
        "torch.bool" => DType::Bool,
        other => panic!("fixture dtype {other}"),
    }
}

/// Every tensor of `got` equals the expected tensor `<group>/<name>` (dtype, shape, values),
/// and `got` has exactly the expected names.
fn assert_matches(got: &ImportedWeights, group: &str) {
    let want = expected();
    let prefix = format!("{group}/");
    let mut want_names: Vec<&str> = want
        .tensors
        .iter()
        .filter_map(|(n, _)| n.strip_prefix(&prefix))
        .collect();
    let mut got_names: Vec<&str> = got.tensors.iter().map(|(n, _)| n.as_str()).collect();
    want_names.sort();
    got_names.sort();
    assert_eq!(got_names, want_names, "{}", got.path.display());
    for (name, t) in &got.tensors {
        let key = format!("{prefix}{name}");
        let w = want.get(&key).unwrap();
        let dtype = dtype_of(&want.metadata[&key]);
        assert_eq!(t.dtype(), dtype, "{key} dtype");
        assert_eq!(t.shape(), w.shape(), "{key} shape");
        assert!(t.is_contiguous(), "{key} is returned contiguous");
        let (g, w) = (t.to_f64_vec().unwrap(), w.to_f64_vec().unwrap());
        assert_eq!(g, w, "{key} values");
    }
}

fn read(name: &str) -> ImportedWeights {
    torch::read(&fixture(name)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn zip_state_dict_equals_torch_load() {
    let w = read("torch_state_zip.pt");
    assert_eq!(w.format, SourceFormat::TorchZip);
    assert_matches(&w, "state");
    // The file's order (the state dict's) is kept.
    let names: Vec<&str> = w.tensors.iter().take(3).map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["conv.weight", "conv.bias", "bn.weight"]);
    // The transposed offset view of `base` shares its storage in the file.
    let view = w.get("view_t").unwrap().to_vec::<f32>().unwrap();
    assert_eq!(&view[..4], &[4.0 / 8.0, 8.0 / 8.0, 12.0 / 8.0, 5.0 / 8.0]);
    assert_eq!(
        w.get("bn.num_batches_tracked").unwrap().item().unwrap(),
        17.0
    );
}

#[test]
fn legacy_state_dict_equals_torch_load() {
    let w = read("torch_state_legacy.pt");
    assert_eq!(w.format, SourceFormat::TorchLegacy);
    assert_matches(&w, "state");
}

#[test]
fn pickle_protocol_4_state_dict_equals_torch_load() {
    assert_matches(&read("torch_state_proto4.pt"), "state");
}

#[test]
fn big_endian_zip_equals_torch_load() {
    assert_matches(&read("torch_state_zip_be.pt"), "state");
}

#[test]
fn deflated_zip_equals_torch_load() {
    assert_matches(&read("torch_state_zip_deflate.pt"), "state");
}

#[test]
fn checkpoint_is_flattened_with_dotted_paths() {
    let w = read("torch_checkpoint_zip.pt");
    assert_matches(&w, "ckpt");
    assert!(w.get("state_dict.fc.weight").is_some());
    assert!(w.get("optimizer.state.0.momentum_buffer").is_some());
}

fn refused(name: &str) -> String {
    let path = fixture(name);
    match torch::read(&path) {
        Err(e @ Error::Format { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "the error names the file: {msg}");
            println!("{msg}");
            msg
        }
        Err(e) => panic!("{name}: unexpected error kind {e:?}"),
        Ok(w) => panic!("{name} was read: {:?}", w.tensors.len()),
    }
}

#[test]
fn crafted_pickles_and_unsupported_dtypes_are_refused_by_name() {
    for (file, global) in [
        ("evil_os_system.pt", "'os.system'"),
        ("evil_eval_legacy.pt", "'builtins.eval'"),
        ("evil_nested_global.pt", "'subprocess.Popen'"),
        ("model_pickle.pt", "'torch.nn.modules.linear.Linear'"),
    ] {
        let msg = refused(file);
        assert!(msg.contains(global), "{file}: {msg}");
        assert!(msg.contains("refusing the global"), "{file}: {msg}");
    }
    let msg = refused("torch_uint16_zip.pt");
    assert!(
        msg.contains("tensor 'u': dtype torch.uint16 is not supported"),
        "{msg}"
    );
    let msg = refused("evil_opcode.pt");
    assert!(msg.contains("0xff is not a pickle opcode"), "{msg}");
}

/// Reads `data` catching panics; `Err(())` on a panic.
fn read_no_panic(path: &Path, data: &[u8]) -> Result<bool, ()> {
    std::panic::catch_unwind(|| torch::read_bytes(path, data).is_ok()).map_err(|_| ())
}

#[test]
fn truncated_and_corrupted_files_give_errors_not_panics() {
    for name in [
        "torch_state_zip.pt",
        "torch_state_legacy.pt",
        "torch_state_proto4.pt",
        "torch_state_zip_deflate.pt",
        "torch_checkpoint_zip.pt",
    ] {
        let path = fixture(name);
        let data = std::fs::read(&path).unwrap();
        assert_eq!(read_no_panic(&path, &data), Ok(true));
        // Every proper prefix is an error: the zip's directory is at the end, the legacy
        // stream's last storage is cut.
        for cut in 0..data.len() {
            assert_eq!(
                read_no_panic(&path, &data[..cut]),
                Ok(false),
                "{name} truncated to {cut} bytes"
            );
        }
        // Every byte flipped: an error or a file that still reads, never a panic.
        let (mut ok, mut err) = (0, 0);
        for i in 0..data.len() {
            let mut d = data.clone();
            d[i] ^= 0xff;
            match read_no_panic(&path, &d) {
                Ok(true) => ok += 1,
                Ok(false) => err += 1,
                Err(()) => panic!("{name}: panic with byte {i} flipped"),
            }
        }
        println!(
            "{name}: {} bytes flipped one at a time: {ok} still read, {err} refused",
            data.len()
        );
        assert!(err > data.len() / 2, "{name}: most flips must be detected");
    }
}

fn home() -> PathBuf {
    std::env::var_os("FERROVISION_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ferrovision")))
        .unwrap_or_default()
}

#[test]
fn real_efficientnet_lite0_file_equals_torch_load_summary() {
    let path = home().join("models/efficientnet_lite0/efficientnet-lite0-57934424.pth");
    if !path.exists() {
        println!(
            "SKIPPED: {} is absent (run scripts/fetch_models.sh to fill the model cache)",
            path.display()
        );
        return;
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("efficientnet_lite0_summary.json")).unwrap(),
    )
    .unwrap();
    let start = std::time::Instant::now();
    let w = torch::read(&path).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "read {} tensors ({} bytes) in {:.1} ms",
        w.tensors.len(),
        std::fs::metadata(&path).unwrap().len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(w.format, SourceFormat::TorchLegacy);
    let want = summary["tensors"].as_object().unwrap();
    assert_eq!(w.tensors.len(), summary["count"].as_u64().unwrap() as usize);
    assert_eq!(w.tensors.len(), 296);
    for (name, t) in &w.tensors {
        let s = &want[name.as_str()];
        let shape: Vec<usize> = s["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape(), shape.as_slice(), "{name}");
        assert_eq!(t.dtype(), dtype_of(s["dtype"].as_str().unwrap()), "{name}");
        let v = t.to_f64_vec().unwrap();
        let first: Vec<f64> = s["first"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        // Compared as f32 (the tensors' type): serde_json's float parsing may be 1 ulp off in f64.
        let as_f32 = |x: &[f64]| x.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        assert_eq!(
            as_f32(&v[..first.len()]),
            as_f32(&first),
            "{name} first values"
        );
        let sum: f64 = v.iter().sum();
        let abs: f64 = v.iter().map(|x| x.abs()).sum();
        let want_sum = s["sum"].as_f64().unwrap();
        assert!(
            (sum - want_sum).abs() <= 1e-9 * abs.max(1.0),
            "{name}: sum {sum}, torch {want_sum}"
        );
    }
    // A few names and shapes, spelled out.
    let shape = |n: &str| w.get(n).map(|t| t.shape().to_vec());
    assert_eq!(shape("_conv_stem.weight"), Some(vec![32, 3, 3, 3]));
    assert_eq!(shape("_fc.weight"), Some(vec![1000, 1280]));

    // Cut or corrupted copies of a real file: errors, never panics.
    let data = std::fs::read(&path).unwrap();
    for k in 1..24 {
        let cut = data.len() * k / 24;
        assert_eq!(
            read_no_panic(&path, &data[..cut]),
            Ok(false),
            "cut at {cut}"
        );
        let mut d = data.clone();
        d[cut] ^= 0x55;
        assert!(read_no_panic(&path, &d).is_ok(), "flip at {cut}");
    }
}
