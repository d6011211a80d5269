//! Weights: named, shared handles on engine tensors with a trainable flag and a learning-rate
//! multiplier.

use crate::regularizers::Regularizer;
use ferrovision_tensor::Tensor;
use std::sync::{Arc, RwLock};

/// A layer weight (Keras `Variable`). Cloning gives another handle on the same weight.
///
/// A trainable weight is an engine leaf variable that collects gradients; a frozen or
/// non-trainable one (batch-norm statistics) is a constant. The value is updated in place, so
/// every handle (layer, optimizer, checkpoint) sees the same numbers.
#[derive(Clone)]
pub struct Param(Arc<ParamInner>);

struct ParamInner {
    name: String,
    state: RwLock<ParamState>,
}

struct ParamState {
    value: Tensor,
    trainable: bool,
    regularizer: Option<Regularizer>,
    lr_multiplier: f64,
}

impl Param {
    /// A weight called `name` (local to its layer, e.g. `kernel`) holding `value`.
    pub fn new(name: impl Into<String>, value: Tensor, trainable: bool) -> Self {
        let value = value.detach().requires_grad_(trainable);
        Param(Arc::new(ParamInner {
            name: name.into(),
            state: RwLock::new(ParamState {
                value,
                trainable,
                regularizer: None,
                lr_multiplier: 1.0,
            }),
        }))
    }

    /// Adds a regularization penalty on this weight (added to the training loss).
    pub fn with_regularizer(self, regularizer: Option<Regularizer>) -> Self {
        self.write().regularizer = regularizer;
        self
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, ParamState> {
        self.0.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ParamState> {
        self.0.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The weight's name within its layer (`kernel`, `bias`, `moving_mean`, ...).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The current value (a handle on the live data; a leaf variable when trainable).
    pub fn value(&self) -> Tensor {
        self.read().value.clone()
    }

    /// The shape of the weight.
    pub fn shape(&self) -> Vec<usize> {
        self.read().value.shape().to_vec()
    }

    /// Number of scalars.
    pub fn numel(&self) -> usize {
        self.read().value.numel()
    }

    /// True when the optimizer updates this weight.
    pub fn trainable(&self) -> bool {
        self.read().trainable
    }

    /// Freezes (`false`) or unfreezes (`true`) the weight, keeping its value.
    pub fn set_trainable(&self, trainable: bool) {
        let mut s = self.write();
        if s.trainable != trainable {
            s.value = s.value.detach().requires_grad_(trainable);
            s.trainable = trainable;
        }
    }

    /// The factor every optimizer applies to its scheduled learning rate for this weight
    /// (1 by default; e.g. 0.1 to fine-tune a pretrained backbone more gently).
    pub fn lr_multiplier(&self) -> f64 {
        self.read().lr_multiplier
    }

    /// Sets the learning-rate multiplier (a finite number >= 0).
    pub fn set_lr_multiplier(&self, multiplier: f64) -> crate::Result<()> {
        if !(multiplier.is_finite() && multiplier >= 0.0) {
            return Err(crate::Error::config(format!(
                "weight '{}': learning-rate multiplier must be a finite number >= 0, got {multiplier}",
                self.name()
            )));
        }
        self.write().lr_multiplier = multiplier;
        Ok(())
    }

    /// The regularizer on this weight, if any.
    pub fn regularizer(&self) -> Option<Regularizer> {
        self.read().regularizer
    }

    /// The accumulated gradient.
    pub fn grad(&self) -> Option<Tensor> {
        self.read().value.grad()
    }

    /// Clears the accumulated gradient.
    pub fn zero_grad(&self) {
        self.read().value.zero_grad()
    }

    /// Overwrites the value in place with `data` (must have the same number of elements).
    pub fn assign(&self, data: &[f32]) -> crate::Result<()> {
        let v = self.value();
        if data.len() != v.numel() {
            return Err(crate::Error::config(format!(
                "weight '{}': got {} values, expected {} for shape {:?}",
                self.name(),
                data.len(),
                v.numel(),
                v.shape()
            )));
        }
        v.assign_from_slice_(data)?;
        Ok(())
    }

    /// A copy of the values.
    pub fn to_vec(&self) -> crate::Result<Vec<f32>> {
        Ok(self.value().to_vec::<f32>()?)
    }

    /// True when both handles refer to the same weight.
    pub fn same(&self, other: &Param) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Param({}, {:?}, trainable={})",
            self.name(),
            self.shape(),
            self.trainable()
        )
    }
}
