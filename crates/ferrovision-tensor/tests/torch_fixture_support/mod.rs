//! Loading and checking the PyTorch reference fixtures in `reference/fixtures/*.json`, written by
//! `reference/make_torch_fixtures.py` (schema in `reference/README.md`). Shared by
//! `torch_fixtures.rs` (the op comparisons) and `torch_fixtures_smoke.rs` (loader checks).
//!
//! Uses only the core tensor API, so it compiles whatever ops exist.
#![allow(dead_code)]

use ferrovision_tensor::trace::Plan;
use ferrovision_tensor::Tensor;
use serde_json::Value;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Path of a fixture file, e.g. `fixture_path!("conv.json")` (include this module with
/// `#[macro_use]`).
macro_rules! fixture_path {
    ($file:literal) => {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../reference/fixtures/",
            $file
        )
    };
}

/// Relative tolerance of every comparison.
pub const RTOL: f32 = 1e-4;
/// Absolute tolerance, scaled by `max(1, max|reference|)` of the compared tensor so that values
/// near zero (cancellation in sums) are judged against the tensor's magnitude.
pub const ATOL: f32 = 1e-5;

/// The elements of a stored array.
#[derive(Debug, Clone)]
pub enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A stored tensor: `{"shape": [...], "dtype": "f32" | "i64", "data": [...]}` (row-major).
#[derive(Debug, Clone)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Array {
    /// Parses and validates (data length == product of shape).
    pub fn parse(v: &Value, what: &str) -> Result<Array, String> {
        let shape = v
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{what}: missing \"shape\""))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| format!("{what}: shape is not a list of sizes"))?;
        let raw = v
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{what}: missing \"data\""))?;
        let dtype = v.get("dtype").and_then(Value::as_str).unwrap_or("f32");
        let data = match dtype {
            "f32" => Data::F32(
                raw.iter()
                    .map(|x| x.as_f64().map(|x| x as f32))
                    .collect::<Option<Vec<f32>>>()
                    .ok_or_else(|| format!("{what}: non-numeric f32 data"))?,
            ),
            "i64" => Data::I64(
                raw.iter()
                    .map(Value::as_i64)
                    .collect::<Option<Vec<i64>>>()
                    .ok_or_else(|| format!("{what}: non-integer i64 data"))?,
            ),
            other => return Err(format!("{what}: unknown dtype {other:?}")),
        };
        let a = Array { shape, data };
        if a.len() != a.shape.iter().product::<usize>() {
            return Err(format!(
                "{what}: {} values for shape {:?}",
                a.len(),
                a.shape
            ));
        }
        Ok(a)
    }

    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    pub fn is_f32(&self) -> bool {
        matches!(self.data, Data::F32(_))
    }

    /// The f32 values (error for an i64 array).
    pub fn f32s(&self) -> Result<&[f32], String> {
        match &self.data {
            Data::F32(v) => Ok(v),
            Data::I64(_) => Err("expected an f32 array, found i64".into()),
        }
    }

    /// A new tensor with these values (F32 or I64).
    pub fn tensor(&self) -> Result<Tensor, String> {
        match &self.data {
            Data::F32(v) => Tensor::from_vec(v.clone(), &self.shape),
            Data::I64(v) => Tensor::from_vec(v.clone(), &self.shape),
        }
        .map_err(|e| format!("building a tensor of shape {:?}: {e}", self.shape))
    }
}

/// One reference case.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub op: String,
    pub params: Value,
    pub inputs: BTreeMap<String, Array>,
    pub cotangent: Array,
    pub output: Array,
    /// Gradient of `sum(output * cotangent)` for each differentiable input.
    pub grads: BTreeMap<String, Array>,
    /// Op-specific extra results (arrays such as `indices`, `running_mean_after`) and notes.
    pub extra: BTreeMap<String, Value>,
}

/// A whole fixture file.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub file: String,
    pub torch_version: String,
    pub cases: Vec<Case>,
}

fn arrays(v: Option<&Value>, what: &str) -> Result<BTreeMap<String, Array>, String> {
    let Some(v) = v else {
        return Ok(BTreeMap::new());
    };
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{what} is not an object"))?;
    obj.iter()
        .map(|(k, v)| Ok((k.clone(), Array::parse(v, &format!("{what}.{k}"))?)))
        .collect()
}

impl Case {
    fn parse(v: &Value) -> Result<Case, String> {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or("case without a name")?
            .to_string();
        let ctx = |s: &str| format!("case {name}: {s}");
        let op = v
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| ctx("missing op"))?
            .to_string();
        let params = v.get("params").cloned().unwrap_or(Value::Null);
        let inputs = arrays(v.get("inputs"), &ctx("inputs"))?;
        let cotangent = Array::parse(
            v.get("cotangent").ok_or_else(|| ctx("missing cotangent"))?,
            &ctx("cotangent"),
        )?;
        let output = Array::parse(
            v.get("output").ok_or_else(|| ctx("missing output"))?,
            &ctx("output"),
        )?;
        let grads = arrays(v.get("grads"), &ctx("grads"))?;
        let extra = v
            .get("extra")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(Case {
            name,
            op,
            params,
            inputs,
            cotangent,
            output,
            grads,
            extra,
        })
    }

    fn param(&self, key: &str) -> Result<&Value, String> {
        self.params
            .get(key)
            .ok_or_else(|| format!("missing param {key:?}"))
    }

    pub fn has_param(&self, key: &str) -> bool {
        self.params.get(key).is_some_and(|v| !v.is_null())
    }

    pub fn p_usize(&self, key: &str) -> Result<usize, String> {
        self.param(key)?
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| format!("param {key:?} is not a size"))
    }

    pub fn p_usizes(&self, key: &str) -> Result<Vec<usize>, String> {
        self.param(key)?
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|v| v.as_u64().map(|v| v as usize))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| format!("param {key:?} is not a list of sizes"))
    }

    /// A list of `[before, after]` pairs.
    pub fn p_pairs(&self, key: &str) -> Result<Vec<(usize, usize)>, String> {
        let err = || format!("param {key:?} is not a list of [before, after] pairs");
        self.param(key)?
            .as_array()
            .ok_or_else(err)?
            .iter()
            .map(|p| match p.as_array().map(|a| a.as_slice()) {
                Some([b, a]) => Some((b.as_u64()? as usize, a.as_u64()? as usize)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(err)
    }

    pub fn p_isize(&self, key: &str) -> Result<isize, String> {
        self.param(key)?
            .as_i64()
            .map(|v| v as isize)
            .ok_or_else(|| format!("param {key:?} is not an integer"))
    }

    /// An integer or `null`.
    pub fn p_opt_i64(&self, key: &str) -> Result<Option<i64>, String> {
        match self.param(key)? {
            Value::Null => Ok(None),
            v => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("param {key:?} is not an integer or null")),
        }
    }

    pub fn p_f32(&self, key: &str) -> Result<f32, String> {
        self.param(key)?
            .as_f64()
            .map(|v| v as f32)
            .ok_or_else(|| format!("param {key:?} is not a number"))
    }

    pub fn p_bool(&self, key: &str) -> Result<bool, String> {
        self.param(key)?
            .as_bool()
            .ok_or_else(|| format!("param {key:?} is not a bool"))
    }

    pub fn p_str(&self, key: &str) -> Result<&str, String> {
        self.param(key)?
            .as_str()
            .ok_or_else(|| format!("param {key:?} is not a string"))
    }

    /// The stored extra array `key`.
    pub fn extra_array(&self, key: &str) -> Result<Array, String> {
        let v = self
            .extra
            .get(key)
            .ok_or_else(|| format!("missing extra {key:?}"))?;
        Array::parse(v, &format!("extra.{key}"))
    }

    /// Fresh input tensors; those with a stored gradient are leaves with `requires_grad`.
    pub fn leaves(&self) -> Result<Leaves, String> {
        let mut map = BTreeMap::new();
        for (name, a) in &self.inputs {
            let t = a.tensor().map_err(|e| format!("input {name}: {e}"))?;
            let t = if self.grads.contains_key(name) {
                t.requires_grad_(true)
            } else {
                t
            };
            map.insert(name.clone(), t);
        }
        Ok(Leaves(map))
    }
}

/// A case's input tensors by name.
pub struct Leaves(pub BTreeMap<String, Tensor>);

impl Leaves {
    pub fn get(&self, name: &str) -> Result<&Tensor, String> {
        self.0
            .get(name)
            .ok_or_else(|| format!("missing input {name:?}"))
    }

    pub fn opt(&self, name: &str) -> Option<&Tensor> {
        self.0.get(name)
    }
}

/// Reads and parses a fixture file.
pub fn load(path: &str) -> Fixture {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("cannot read {path}: {e} (regenerate with reference/make_torch_fixtures.py)")
    });
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not valid JSON: {e}"));
    let torch_version = v
        .get("torch_version")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let cases = v
        .get("cases")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{path}: no \"cases\" list"))
        .iter()
        .map(|c| Case::parse(c).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect();
    let file = path.rsplit('/').next().unwrap_or(path).to_string();
    Fixture {
        file,
        torch_version,
        cases,
    }
}

/// Checks `got` against `want`: same shape; f32 within `ATOL * max(1, max|want|) + RTOL * |want|`
/// elementwise, i64 exactly equal. The error names the worst element.
pub fn compare(what: &str, got: &Tensor, want: &Array) -> Result<(), String> {
    if got.shape() != want.shape.as_slice() {
        return Err(format!(
            "{what}: shape {:?}, reference {:?}",
            got.shape(),
            want.shape
        ));
    }
    match &want.data {
        Data::I64(w) => {
            let g = got
                .to_vec::<i64>()
                .map_err(|e| format!("{what}: reading i64 values: {e}"))?;
            if let Some(i) = (0..w.len()).find(|&i| g[i] != w[i]) {
                return Err(format!(
                    "{what}: element {i} is {}, reference {}",
                    g[i], w[i]
                ));
            }
            Ok(())
        }
        Data::F32(w) => {
            let g = got
                .to_vec::<f32>()
                .map_err(|e| format!("{what}: reading f32 values: {e}"))?;
            let scale = w.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let atol = ATOL * scale;
            // Error in units of the tolerance; NaN (a NaN result) counts as infinitely off.
            let ratio = |a: f32, b: f32| {
                let r = (a - b).abs() / (atol + RTOL * b.abs());
                if r.is_nan() {
                    f32::INFINITY
                } else {
                    r
                }
            };
            let mut worst: Option<(usize, f32)> = None;
            let mut bad = 0;
            for (i, (&a, &b)) in g.iter().zip(w).enumerate() {
                let r = ratio(a, b);
                if r > 1.0 {
                    bad += 1;
                    if worst.is_none_or(|(_, rw)| r > rw) {
                        worst = Some((i, r));
                    }
                }
            }
            match worst {
                None => Ok(()),
                Some((i, ratio)) => Err(format!(
                    "{what}: {bad} of {} elements off; worst element {i} (index {:?}) is {}, \
                         reference {} ({ratio:.1}x the tolerance)",
                    w.len(),
                    unravel(i, &want.shape),
                    g[i],
                    w[i]
                )),
            }
        }
    }
}

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d].max(1);
        i /= shape[d].max(1);
    }
    idx
}

/// Compares `got` with the case's stored extra array `key`.
pub fn compare_extra(case: &Case, key: &str, got: &Tensor) -> Result<(), String> {
    compare(key, got, &case.extra_array(key)?)
}

/// Checks a forward result: output, then (when the case stores gradients) back-propagates the
/// cotangent and compares the gradient of every stored input.
pub fn check_output_and_grads(case: &Case, leaves: &Leaves, out: &Tensor) -> Result<(), String> {
    compare("output", out, &case.output)?;
    if case.grads.is_empty() {
        return Ok(());
    }
    let cot = case.cotangent.tensor()?;
    out.backward_with(&cot)
        .map_err(|e| format!("backward_with: {e}"))?;
    for (name, want) in &case.grads {
        let g = leaves
            .get(name)?
            .grad()
            .ok_or_else(|| format!("grad {name}: no gradient reached the input"))?;
        compare(&format!("grad {name}"), &g, want)?;
    }
    Ok(())
}

/// Runs every case of a fixture through `forward` (which builds the op's output from the case's
/// inputs, and may check extra results itself), then checks output and gradients. Panics at the
/// end with one line per failing case (errors, mismatches and panics alike).
pub fn run_fixture(fixture: &Fixture, forward: impl Fn(&Case, &Leaves) -> Result<Tensor, String>) {
    assert!(!fixture.cases.is_empty(), "{}: no cases", fixture.file);
    let mut failures = Vec::new();
    for case in &fixture.cases {
        let result = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
            let leaves = case.leaves()?;
            let out = forward(case, &leaves)?;
            check_output_and_grads(case, &leaves, &out)?;
            check_traced_replay(case, &forward)?;
            check_traced_training(case, &forward)
        }));
        let msg = match result {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(p) => {
                let s = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "non-string panic".into());
                format!("panicked: {s}")
            }
        };
        failures.push(format!(
            "  {} [{}] params {}: {msg}",
            case.name, case.op, case.params
        ));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases in {} (torch {}) disagree with PyTorch:\n{}",
        failures.len(),
        fixture.cases.len(),
        fixture.file,
        fixture.torch_version,
        failures.join("\n")
    );
}

/// The harness' string errors, convertible from the engine's (what `trace` needs).
struct TraceErr(String);

impl From<ferrovision_tensor::Error> for TraceErr {
    fn from(e: ferrovision_tensor::Error) -> Self {
        TraceErr(e.to_string())
    }
}

/// The plan of a trace (`kind`: "" or "training "), `None` when it was refused for what traced
/// plans do not cover (ops without a replay: losses, random and training-mode ops; values an op
/// makes outside the recorded ops); any other refusal, and a failed run, is an error.
fn planned(
    traced: Result<(Vec<Tensor>, ferrovision_tensor::Result<Plan>), TraceErr>,
    kind: &str,
) -> Result<Option<Plan>, String> {
    match traced {
        Ok((_, Ok(plan))) => Ok(Some(plan)),
        Ok((_, Err(why))) => {
            let why = why.to_string();
            let covered = [
                "cannot be replayed",
                "outside the recorded ops",
                "made during the trace",
            ];
            if covered.iter().any(|c| why.contains(c)) {
                Ok(None)
            } else {
                Err(format!("traced {kind}plan refused: {why}"))
            }
        }
        Err(TraceErr(e)) => Err(format!("traced {kind}run failed: {e}")),
    }
}

/// Traces the case's forward with its leaves as the plan's inputs and replays it: the replay
/// must equal an eager run bit for bit (single ops fold nothing). A plan may be refused for what
/// traced plans do not cover (ops without a replay: losses, random and training-mode ops; values
/// an op makes outside the recorded ops); any other refusal, such as a replay that errors, is a
/// failure. Every run gets fresh leaves, so ops that update state in place (training-mode batch
/// norm) see what the first run saw.
fn check_traced_replay(
    case: &Case,
    forward: &impl Fn(&Case, &Leaves) -> Result<Tensor, String>,
) -> Result<(), String> {
    let leaves = case.leaves()?;
    let inputs: Vec<Tensor> = leaves.0.values().cloned().collect();
    let traced = ferrovision_tensor::trace::trace(&inputs, |_| {
        forward(case, &leaves).map(|t| vec![t]).map_err(TraceErr)
    });
    let Some(mut plan) = planned(traced, "")? else {
        return Ok(());
    };
    let replayed = eng(plan.run(&inputs))?;
    let eager = forward(case, &case.leaves()?)?;
    let bits = |t: &Tensor| -> Result<Vec<u64>, String> {
        Ok(eng(t.to_f64_vec())?.iter().map(|v| v.to_bits()).collect())
    };
    if replayed[0].shape() != eager.shape() || bits(&replayed[0])? != bits(&eager)? {
        return Err("the traced plan's replay differs from the eager run".into());
    }
    Ok(())
}

/// For a case with gradients: traces its forward as a training plan (the inputs that need a
/// gradient are the plan's weights, the others its inputs) and replays it; the replay's output
/// and the gradients its backward pass gives (seeded with the case's cotangent) must equal an
/// eager run's bit for bit. Refusals as in [`check_traced_replay`].
fn check_traced_training(
    case: &Case,
    forward: &impl Fn(&Case, &Leaves) -> Result<Tensor, String>,
) -> Result<(), String> {
    if case.grads.is_empty() {
        return Ok(());
    }
    let leaves = case.leaves()?;
    let inputs: Vec<Tensor> = leaves
        .0
        .values()
        .filter(|t| !t.requires_grad())
        .cloned()
        .collect();
    let traced = ferrovision_tensor::trace::trace_training(&inputs, |_| {
        forward(case, &leaves).map(|t| vec![t]).map_err(TraceErr)
    });
    let Some(mut plan) = planned(traced, "training ")? else {
        return Ok(());
    };
    let cot = case.cotangent.tensor()?;
    let replayed = eng(plan.run(&inputs))?.remove(0);
    eng(replayed.backward_with(&cot))?;
    let fresh = case.leaves()?;
    let eager = forward(case, &fresh)?;
    eng(eager.backward_with(&cot))?;
    let bits = |t: &Tensor| -> Result<Vec<u64>, String> {
        Ok(eng(t.to_f64_vec())?.iter().map(|v| v.to_bits()).collect())
    };
    if bits(&replayed)? != bits(&eager)? {
        return Err("the training plan's replay differs from the eager run".into());
    }
    for name in case.grads.keys() {
        let (a, b) = (leaves.get(name)?.grad(), fresh.get(name)?.grad());
        let same = match (&a, &b) {
            (Some(a), Some(b)) => bits(a)? == bits(b)?,
            _ => false,
        };
        if !same {
            return Err(format!(
                "grad {name}: the training plan's backward differs from the eager one"
            ));
        }
    }
    Ok(())
}

/// Maps an error of the engine to the harness' string errors.
pub fn eng<T>(r: ferrovision_tensor::Result<T>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}
