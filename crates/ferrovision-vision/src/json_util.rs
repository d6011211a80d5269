//! Field readers over `serde_json::Value` that turn every malformed entry into a
//! [`VisionError::Format`] naming the file, the entry and what was expected.

use crate::error::{Result, VisionError};
use serde_json::Value;

/// Where a value came from, for error messages: the file and the entry (e.g. `annotations[4]`).
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub entry: String,
}

impl Ctx<'_> {
    pub fn err(&self, msg: impl Into<String>) -> VisionError {
        VisionError::format(self.file, self.entry.clone(), msg)
    }

    pub fn obj<'v>(&self, v: &'v Value) -> Result<&'v serde_json::Map<String, Value>> {
        v.as_object()
            .ok_or_else(|| self.err(format!("expected an object, got {}", kind(v))))
    }

    pub fn field<'v>(&self, v: &'v Value, key: &str) -> Result<&'v Value> {
        self.obj(v)?
            .get(key)
            .ok_or_else(|| self.err(format!("missing field '{key}'")))
    }

    pub fn num(&self, v: &Value, key: &str) -> Result<f64> {
        let f = self.field(v, key)?;
        match f.as_f64() {
            Some(x) if x.is_finite() => Ok(x),
            _ => Err(self.err(format!("field '{key}' must be a finite number, got {f}"))),
        }
    }

    pub fn opt_num(&self, v: &Value, key: &str) -> Result<Option<f64>> {
        match self.obj(v)?.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.num(v, key).map(Some),
        }
    }

    pub fn array<'v>(&self, v: &'v Value, key: &str) -> Result<&'v Vec<Value>> {
        let f = self.field(v, key)?;
        f.as_array()
            .ok_or_else(|| self.err(format!("field '{key}' must be an array, got {}", kind(f))))
    }

    /// Four finite numbers.
    pub fn four(&self, v: &Value, key: &str) -> Result<[f64; 4]> {
        let a = self.array(v, key)?;
        if a.len() != 4 {
            return Err(self.err(format!(
                "field '{key}' must have 4 numbers, got {}",
                a.len()
            )));
        }
        let mut out = [0.0; 4];
        for (o, x) in out.iter_mut().zip(a) {
            *o = match x.as_f64() {
                Some(x) if x.is_finite() => x,
                _ => {
                    return Err(self.err(format!(
                        "field '{key}' must hold finite numbers, got {}",
                        Value::Array(a.clone())
                    )))
                }
            };
        }
        Ok(out)
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses JSON text, naming the file and the line/column of a syntax error.
pub(crate) fn parse(text: &str, file: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        VisionError::format(
            file,
            format!("line {} column {}", e.line(), e.column()),
            format!("invalid JSON: {e}"),
        )
    })
}
