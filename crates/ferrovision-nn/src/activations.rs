//! Activation functions by name, as used by `Dense(.., activation)` and the `Activation` layer.

use crate::{Error, Result};
use ferrovision_tensor::Tensor;

/// Every activation the engine provides. Softmax/log-softmax act on the channel axis (axis 1,
/// which is the feature axis of a `[N, C]` tensor and the channel axis of an image).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    Linear,
    Relu,
    Relu6,
    LeakyRelu(f32),
    Elu(f32),
    Selu,
    Gelu,
    GeluTanh,
    Sigmoid,
    HardSigmoid,
    Tanh,
    Softplus,
    Silu,
    HardSilu,
    Softmax,
    LogSoftmax,
    Exponential,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        use Activation::*;
        Ok(match self {
            Linear => x.clone(),
            Relu => x.relu()?,
            Relu6 => x.relu6()?,
            LeakyRelu(a) => x.leaky_relu(a)?,
            Elu(a) => x.elu(a)?,
            Selu => x.selu()?,
            Gelu => x.gelu()?,
            GeluTanh => x.gelu_tanh()?,
            Sigmoid => x.sigmoid()?,
            HardSigmoid => x.hard_sigmoid()?,
            Tanh => x.tanh()?,
            Softplus => x.softplus()?,
            Silu => x.silu()?,
            HardSilu => x.hard_swish()?,
            Softmax => x.softmax(if x.rank() > 1 { 1 } else { 0 })?,
            LogSoftmax => x.log_softmax(if x.rank() > 1 { 1 } else { 0 })?,
            Exponential => x.exp()?,
        })
    }

    /// The Keras name (`"relu"`, `"leaky_relu"`, ...).
    pub fn name(self) -> &'static str {
        use Activation::*;
        match self {
            Linear => "linear",
            Relu => "relu",
            Relu6 => "relu6",
            LeakyRelu(_) => "leaky_relu",
            Elu(_) => "elu",
            Selu => "selu",
            Gelu => "gelu",
            GeluTanh => "gelu_tanh",
            Sigmoid => "sigmoid",
            HardSigmoid => "hard_sigmoid",
            Tanh => "tanh",
            Softplus => "softplus",
            Silu => "silu",
            HardSilu => "hard_silu",
            Softmax => "softmax",
            LogSoftmax => "log_softmax",
            Exponential => "exponential",
        }
    }

    /// The parameter of parametric activations (leaky ReLU slope, ELU alpha).
    pub fn param(self) -> Option<f32> {
        match self {
            Activation::LeakyRelu(a) | Activation::Elu(a) => Some(a),
            _ => None,
        }
    }

    /// Parses a Keras name; `leaky_relu` defaults to slope 0.2 (Keras 3), `elu` to alpha 1.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::from_name_param(name, None)
    }

    /// Parses a name with an optional parameter.
    pub fn from_name_param(name: &str, param: Option<f32>) -> Result<Self> {
        use Activation::*;
        Ok(match name {
            "linear" | "none" | "identity" => Linear,
            "relu" => Relu,
            "relu6" => Relu6,
            "leaky_relu" => LeakyRelu(param.unwrap_or(0.2)),
            "elu" => Elu(param.unwrap_or(1.0)),
            "selu" => Selu,
            "gelu" => Gelu,
            "gelu_tanh" => GeluTanh,
            "sigmoid" => Sigmoid,
            "hard_sigmoid" => HardSigmoid,
            "tanh" => Tanh,
            "softplus" => Softplus,
            "silu" | "swish" => Silu,
            "hard_silu" | "hard_swish" => HardSilu,
            "softmax" => Softmax,
            "log_softmax" => LogSoftmax,
            "exponential" => Exponential,
            other => {
                return Err(Error::config(format!(
                    "unknown activation '{other}'; expected one of linear, relu, relu6, leaky_relu, elu, selu, gelu, gelu_tanh, sigmoid, hard_sigmoid, tanh, softplus, silu, hard_silu, softmax, log_softmax, exponential"
                )))
            }
        })
    }

    /// JSON form stored in layer configs.
    pub fn to_json(self) -> serde_json::Value {
        match self.param() {
            Some(p) => serde_json::json!({"name": self.name(), "param": p}),
            None => serde_json::json!(self.name()),
        }
    }

    /// Parses [`Activation::to_json`] output (or a bare name).
    pub fn from_json(v: &serde_json::Value) -> Result<Self> {
        match v {
            serde_json::Value::String(s) => Self::from_name(s),
            serde_json::Value::Object(o) => {
                let name = o
                    .get("name")
                    .and_then(|n| n.as_str())
                    .ok_or_else(|| Error::config(format!("activation config {v} has no 'name'")))?;
                let param = o.get("param").and_then(|p| p.as_f64()).map(|p| p as f32);
                Self::from_name_param(name, param)
            }
            serde_json::Value::Null => Ok(Activation::Linear),
            _ => Err(Error::config(format!("bad activation config {v}"))),
        }
    }
}

/// Saved as [`Activation::to_json`] writes it (a name, or `{"name", "param"}`).
impl serde::Serialize for Activation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// Read as [`Activation::from_json`] reads it.
impl<'de> serde::Deserialize<'de> for Activation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Activation::from_json(&v).map_err(serde::de::Error::custom)
    }
}
