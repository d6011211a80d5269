//! Shared checks of the reader tests: exact comparison with the expected tensors the reference
//! scripts (reference/make_import_*_fixtures.py) wrote, and the crash tests.
#![allow(dead_code)]

use ferrovision_import::ImportedWeights;
use ferrovision_tensor::{DType, Tensor};
use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};

/// `reference/fixtures/import/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../reference/fixtures/import")
        .join(name)
}

/// `$FERROVISION_HOME` (default `~/.ferrovision`) joined with `rel`, if that file exists;
/// otherwise prints why the test is skipped.
pub fn model_cache_file(rel: &str) -> Option<PathBuf> {
    let home = std::env::var_os("FERROVISION_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".ferrovision")))?;
    let p = home.join(rel);
    if p.exists() {
        Some(p)
    } else {
        println!(
            "skipped: {} is missing (run scripts/fetch_models.sh to fetch it)",
            p.display()
        );
        None
    }
}

/// The shared data directory (`FERROVISION_DATA`, or `shared/data` found walking up from the
/// crate, as the other crates' tests find it), or None (with a printed reason) when absent.
pub fn data_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FERROVISION_DATA") {
        let p = PathBuf::from(p);
        return p.is_dir().then_some(p);
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let cand = dir.join("shared/data");
        if cand.is_dir() {
            return Some(cand);
        }
        if !dir.pop() {
            println!("skipped: shared/data not found (set FERROVISION_DATA)");
            return None;
        }
    }
}

/// A tensor's values as f64 plus a bit-exact key per element (so -0.0 and NaN compare exactly).
fn values(t: &Tensor) -> Vec<(f64, u64)> {
    match t.dtype() {
        DType::F32 => t
            .to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(|v| (v as f64, v.to_bits() as u64))
            .collect(),
        DType::F16 => t
            .to_vec::<f16>()
            .unwrap()
            .into_iter()
            .map(|v| (v.to_f64(), v.to_bits() as u64))
            .collect(),
        DType::BF16 => t
            .to_vec::<bf16>()
            .unwrap()
            .into_iter()
            .map(|v| (v.to_f64(), v.to_bits() as u64))
            .collect(),
        DType::I64 => t
            .to_vec::<i64>()
            .unwrap()
            .into_iter()
            .map(|v| (v as f64, v as u64))
            .collect(),
        DType::I32 => t
            .to_vec::<i32>()
            .unwrap()
            .into_iter()
            .map(|v| (v as f64, v as i64 as u64))
            .collect(),
        DType::U8 => t
            .to_vec::<u8>()
            .unwrap()
            .into_iter()
            .map(|v| (v as f64, v as u64))
            .collect(),
        DType::Bool => t
            .to_vec::<bool>()
            .unwrap()
            .into_iter()
            .map(|v| (v as u8 as f64, v as u64))
            .collect(),
    }
}

fn chunks<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    b.chunks_exact(N).map(|c| c.try_into().unwrap())
}

/// Expected values of a safetensors tensor, with the dtype a reader must produce for it
/// (F64 is read as f32, as the readers convert it).
fn expected(dtype: Dtype, b: &[u8]) -> (DType, Vec<(f64, u64)>) {
    match dtype {
        Dtype::F32 => (
            DType::F32,
            chunks::<4>(b)
                .map(f32::from_le_bytes)
                .map(|v| (v as f64, v.to_bits() as u64))
                .collect(),
        ),
        Dtype::F64 => (
            DType::F32,
            chunks::<8>(b)
                .map(|c| f64::from_le_bytes(c) as f32)
                .map(|v| (v as f64, v.to_bits() as u64))
                .collect(),
        ),
        Dtype::F16 => (
            DType::F16,
            chunks::<2>(b)
                .map(f16::from_le_bytes)
                .map(|v| (v.to_f64(), v.to_bits() as u64))
                .collect(),
        ),
        Dtype::I64 => (
            DType::I64,
            chunks::<8>(b)
                .map(i64::from_le_bytes)
                .map(|v| (v as f64, v as u64))
                .collect(),
        ),
        Dtype::I32 => (
            DType::I32,
            chunks::<4>(b)
                .map(i32::from_le_bytes)
                .map(|v| (v as f64, v as i64 as u64))
                .collect(),
        ),
        Dtype::U8 => (DType::U8, b.iter().map(|&v| (v as f64, v as u64)).collect()),
        other => panic!("fixture dtype {other:?} not handled"),
    }
}

/// Asserts that `got` holds exactly the tensors of the safetensors fixture `want`: same names
/// in the same order (`__metadata__["order"]`), shapes, dtypes and bit-identical values.
pub fn assert_matches_safetensors(got: &ImportedWeights, want: &Path) {
    let bytes = std::fs::read(want).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let order: Vec<String> =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["order"]).unwrap();
    let names: Vec<&str> = got.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, order, "names and order of {}", got.path.display());
    for (name, t) in &got.tensors {
        let view = st.tensor(name).unwrap();
        assert_eq!(t.shape(), view.shape(), "shape of '{name}'");
        let (dtype, want_vals) = expected(view.dtype(), view.data());
        assert_eq!(t.dtype(), dtype, "dtype of '{name}'");
        let got_vals = values(t);
        for (i, (g, w)) in got_vals.iter().zip(&want_vals).enumerate() {
            assert_eq!(g.1, w.1, "'{name}'[{i}]: got {}, want {}", g.0, w.0);
        }
    }
}

/// Asserts that `got` matches a `{order, tensors: {name: [shape, sum, first4]}}` summary: names
/// in order, shapes and the first four values exactly, and the sum up to the rounding of a
/// different summation order (the reference sums pairwise in f64).
pub fn assert_matches_summary(got: &ImportedWeights, want: &Path) {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(want).unwrap()).unwrap();
    let order: Vec<&str> = json["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let names: Vec<&str> = got.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, order, "names and order of {}", got.path.display());
    for (name, t) in &got.tensors {
        let w = &json["tensors"][name.as_str()];
        let shape: Vec<usize> = w[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape(), shape.as_slice(), "shape of '{name}'");
        let vals = values(t);
        let first: Vec<f64> = w[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let got_first: Vec<f64> = vals.iter().take(4).map(|v| v.0).collect();
        assert_eq!(got_first, first, "first values of '{name}'");
        let sum: f64 = vals.iter().map(|v| v.0).sum();
        let abs: f64 = vals.iter().map(|v| v.0.abs()).sum();
        let want_sum = w[1].as_f64().unwrap();
        assert!(
            (sum - want_sum).abs() <= 1e-10 * abs.max(1.0),
            "sum of '{name}': got {sum}, want {want_sum}"
        );
    }
}

/// Runs `read` on `bytes` truncated at `cuts` offsets spread over the file, and with single
/// bytes flipped at `flips` positions, written to `scratch`; every call must return (Ok or a
/// typed error), never panic. Returns how many runs returned an error.
pub fn assert_no_panic_on_damage(
    bytes: &[u8],
    scratch: &Path,
    cuts: usize,
    flips: usize,
    read: impl Fn(&Path) -> bool,
) -> usize {
    let mut errors = 0;
    let mut run = |data: &[u8], what: String| {
        std::fs::write(scratch, data).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(scratch)));
        match r {
            Ok(ok) => errors += usize::from(!ok),
            Err(_) => panic!("reader panicked on {what}"),
        }
    };
    let n = bytes.len();
    for k in 0..cuts {
        let cut = k * n / cuts;
        run(
            &bytes[..cut],
            format!("the file truncated at {cut} of {n} bytes"),
        );
    }
    // A deterministic spread of positions (a multiplicative hash), each byte inverted.
    for k in 0..flips {
        let pos = (k as u64 * 2_654_435_761 % n as u64) as usize;
        let mut d = bytes.to_vec();
        d[pos] ^= 0xFF;
        run(&d, format!("byte {pos} of {n} flipped"));
    }
    errors
}

/// A fresh scratch folder for one test.
pub fn scratch_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrovision-import-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
