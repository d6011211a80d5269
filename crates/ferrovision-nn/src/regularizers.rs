//! Weight and activity penalties (Keras `regularizers`): L1, L2 and L1L2.

use crate::Result;
use ferrovision_tensor::Tensor;

/// `l1 * sum(|w|) + l2 * sum(w^2)` (Keras semantics: L2 has no factor 1/2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Regularizer {
    pub l1: f32,
    pub l2: f32,
}

impl Regularizer {
    /// L1 penalty.
    pub fn l1(l1: f32) -> Self {
        Regularizer { l1, l2: 0.0 }
    }

    /// L2 penalty.
    pub fn l2(l2: f32) -> Self {
        Regularizer { l1: 0.0, l2 }
    }

    /// Both penalties.
    pub fn l1_l2(l1: f32, l2: f32) -> Self {
        Regularizer { l1, l2 }
    }

    /// The penalty for `x` as a scalar tensor (differentiable).
    pub fn penalty(&self, x: &Tensor) -> Result<Tensor> {
        let mut total: Option<Tensor> = None;
        if self.l1 != 0.0 {
            total = Some(x.abs()?.sum_all()?.mul_scalar(self.l1)?);
        }
        if self.l2 != 0.0 {
            let p = x.square()?.sum_all()?.mul_scalar(self.l2)?;
            total = Some(match total {
                Some(t) => t.add(&p)?,
                None => p,
            });
        }
        Ok(total.unwrap_or_else(|| Tensor::scalar(0.0f32)))
    }

    /// JSON form for configs.
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({"l1": self.l1, "l2": self.l2})
    }

    /// Parses [`Regularizer::to_json`] output; `null` means none. Missing factors are 0; a
    /// factor that is not a finite number >= 0 is an error.
    pub fn from_json(v: &serde_json::Value) -> Result<Option<Self>> {
        if v.is_null() {
            return Ok(None);
        }
        let Some(obj) = v.as_object() else {
            return Err(crate::Error::config(format!(
                "bad regularizer config {v}: expected an object like {{\"l1\": 0.0, \"l2\": 0.01}}"
            )));
        };
        let get = |k: &str| -> Result<f32> {
            match obj.get(k) {
                None | Some(serde_json::Value::Null) => Ok(0.0),
                Some(x) => match x.as_f64() {
                    Some(f) if f.is_finite() && f >= 0.0 => Ok(f as f32),
                    _ => Err(crate::Error::config(format!(
                        "bad regularizer config {v}: '{k}' must be a finite number >= 0"
                    ))),
                },
            }
        };
        Ok(Some(Regularizer::l1_l2(get("l1")?, get("l2")?)))
    }
}

/// Saved as [`Regularizer::to_json`] writes it (an `Option<Regularizer>` field saves `null`
/// for none).
impl serde::Serialize for Regularizer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// Read as [`Regularizer::from_json`] reads it.
impl<'de> serde::Deserialize<'de> for Regularizer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Regularizer::from_json(&v)
            .map_err(serde::de::Error::custom)?
            .ok_or_else(|| serde::de::Error::custom("expected a regularizer, got null"))
    }
}
