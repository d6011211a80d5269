//! What every optimizer shares: learning rate (or schedule), gradient clipping, decoupled weight
//! decay, the step counter and the per-weight slot buffers, plus the driver that runs one
//! fused in-place update loop per weight.

use super::config::BaseConfig;
use super::LearningRateSchedule;
use crate::{Error, Param, Result};
use ferrovision_tensor::{DType, Tensor};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;

/// Options shared by all optimizers (Keras `BaseOptimizer` arguments) and the step counter.
#[derive(Clone, Debug)]
pub struct OptimizerBase {
    pub(crate) name: String,
    pub(crate) learning_rate: LearningRateSchedule,
    pub(crate) weight_decay: Option<f64>,
    pub(crate) coupled_weight_decay: Option<f64>,
    pub(crate) clipnorm: Option<f64>,
    pub(crate) clipvalue: Option<f64>,
    pub(crate) global_clipnorm: Option<f64>,
    pub(crate) exclude_from_weight_decay: Vec<String>,
    pub(crate) iterations: u64,
    slots: SlotStore,
}

impl OptimizerBase {
    pub(crate) fn new(name: &str, learning_rate: f64) -> Self {
        OptimizerBase {
            name: name.to_string(),
            learning_rate: LearningRateSchedule::Constant(learning_rate),
            weight_decay: None,
            coupled_weight_decay: None,
            clipnorm: None,
            clipvalue: None,
            global_clipnorm: None,
            exclude_from_weight_decay: Vec::new(),
            iterations: 0,
            slots: SlotStore::default(),
        }
    }

    /// The optimizer's name (Keras `name`, e.g. `adam`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The learning rate or its schedule.
    pub fn schedule(&self) -> &LearningRateSchedule {
        &self.learning_rate
    }

    /// Decoupled weight decay (`w -= lr * weight_decay * w` before each update), if set.
    pub fn weight_decay(&self) -> Option<f64> {
        self.weight_decay
    }

    /// Coupled weight decay (L2 added to the gradient, `g += wd * w` after clipping, PyTorch's
    /// `weight_decay`), if set.
    pub fn coupled_weight_decay(&self) -> Option<f64> {
        self.coupled_weight_decay
    }

    /// Per-weight gradient norm clipping, if set.
    pub fn clipnorm(&self) -> Option<f64> {
        self.clipnorm
    }

    /// Element-wise gradient clipping to `[-clipvalue, clipvalue]`, if set.
    pub fn clipvalue(&self) -> Option<f64> {
        self.clipvalue
    }

    /// Clipping of all gradients together by their global norm, if set.
    pub fn global_clipnorm(&self) -> Option<f64> {
        self.global_clipnorm
    }

    /// Substrings of weight names that weight decay skips (Keras
    /// `exclude_from_weight_decay(var_names=...)`).
    pub fn exclude_from_weight_decay(&self) -> &[String] {
        &self.exclude_from_weight_decay
    }

    /// Steps taken.
    pub fn iterations(&self) -> u64 {
        self.iterations
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.learning_rate.validate()?;
        let set = [self.clipnorm, self.clipvalue, self.global_clipnorm]
            .iter()
            .filter(|c| c.is_some())
            .count();
        if set > 1 {
            return Err(Error::config(format!(
                "optimizer '{}': only one of clipnorm, clipvalue and global_clipnorm can be set \
                 (got clipnorm={:?}, clipvalue={:?}, global_clipnorm={:?})",
                self.name, self.clipnorm, self.clipvalue, self.global_clipnorm
            )));
        }
        for (key, v) in [
            ("clipnorm", self.clipnorm),
            ("clipvalue", self.clipvalue),
            ("global_clipnorm", self.global_clipnorm),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return Err(Error::config(format!(
                        "optimizer '{}': '{key}' must be a finite number > 0, got {v}",
                        self.name
                    )));
                }
            }
        }
        if let Some(wd) = self.weight_decay {
            if !wd.is_finite() {
                return Err(Error::config(format!(
                    "optimizer '{}': 'weight_decay' must be a finite number, got {wd}",
                    self.name
                )));
            }
        }
        if let Some(wd) = self.coupled_weight_decay {
            if !(wd.is_finite() && wd >= 0.0) {
                return Err(Error::config(format!(
                    "optimizer '{}': 'coupled_weight_decay' must be a finite number >= 0, got {wd}",
                    self.name
                )));
            }
        }
        Ok(())
    }

    /// The shared keys of the config (Keras names).
    pub(crate) fn to_config(&self) -> BaseConfig {
        BaseConfig {
            name: self.name.clone(),
            learning_rate: self.learning_rate.clone(),
            weight_decay: self.weight_decay,
            coupled_weight_decay: self.coupled_weight_decay,
            clipnorm: self.clipnorm,
            global_clipnorm: self.global_clipnorm,
            clipvalue: self.clipvalue,
            exclude_from_weight_decay: self.exclude_from_weight_decay.clone(),
        }
    }

    /// Takes the shared keys of a read config.
    pub(crate) fn apply_config(&mut self, c: BaseConfig) {
        self.name = c.name;
        self.learning_rate = c.learning_rate;
        self.weight_decay = c.weight_decay;
        self.coupled_weight_decay = c.coupled_weight_decay;
        self.clipnorm = c.clipnorm;
        self.global_clipnorm = c.global_clipnorm;
        self.clipvalue = c.clipvalue;
        self.exclude_from_weight_decay = c.exclude_from_weight_decay;
    }

    fn decays(&self, weight: &str) -> bool {
        (self.weight_decay.is_some_and(|wd| wd != 0.0)
            || self.coupled_weight_decay.is_some_and(|wd| wd != 0.0))
            && !self
                .exclude_from_weight_decay
                .iter()
                .any(|pat| weight.contains(pat.as_str()))
    }

    /// One optimizer step over `params` with `rule` (see [`crate::Optimizer::step`]).
    pub(crate) fn apply<R: Rule>(
        &mut self,
        rule: &mut R,
        params: &[(String, Param)],
    ) -> Result<()> {
        self.validate()?;
        rule.validate(self)?;
        if params.is_empty() {
            // Keras: an empty gradient list is a no-op that does not count a step.
            return Ok(());
        }
        if self.slots.pending_check {
            self.slots.check_loaded(params, R::CLASS)?;
        }
        let mut any_grad = false;
        let mut global_sq = 0.0f64;
        for (name, p) in params {
            if let Some(g) = p.grad() {
                any_grad = true;
                if self.global_clipnorm.is_some() {
                    global_sq += g.sum_squares_f64().map_err(|e| weight_err(name, e))?;
                }
            }
        }
        if !any_grad {
            return Err(Error::config(format!(
                "{} step: no gradients for any of the {} weights ({}); call backward() on the loss first",
                R::CLASS,
                params.len(),
                names_preview(params)
            )));
        }
        let lr = self.learning_rate.value(self.iterations);
        let global_scale = match self.global_clipnorm {
            // Keras clip_by_global_norm: NaN when the norm is not finite, so the failure shows.
            Some(c) => {
                let norm = global_sq.sqrt();
                if norm.is_finite() {
                    c * (1.0 / norm).min(1.0 / c)
                } else {
                    f64::NAN
                }
            }
            None => 1.0,
        };
        let (lo, hi) = match self.clipvalue {
            Some(v) => (-v as f32, v as f32),
            None => (f32::NEG_INFINITY, f32::INFINITY),
        };
        rule.prepare(lr, self.iterations + 1);
        for (name, p) in params {
            let Some(grad) = p.grad() else { continue };
            let value = p.value();
            let idx = self.slots.lookup(name, value.shape(), rule)?;
            if self.slots.entries[idx].decay.is_none() {
                let d = self.decays(name);
                self.slots.entries[idx].decay = Some(d);
            }
            let entry = &mut self.slots.entries[idx];
            let mut scale = global_scale;
            if let Some(c) = self.clipnorm {
                let norm = grad
                    .sum_squares_f64()
                    .map_err(|e| weight_err(name, e))?
                    .sqrt();
                // Keras: g * clipnorm / max(norm, clipnorm).
                scale *= c / norm.max(c);
            }
            // The weight's own learning rate; exactly the scheduled one at multiplier 1.
            let mult = p.lr_multiplier();
            let lr_w = if mult == 1.0 { lr } else { lr * mult };
            let decays = entry.decay == Some(true);
            let mut ctx = StepCtx {
                lr: lr_w as f32,
                lr_scale: mult as f32,
                decay: match (decays, self.weight_decay) {
                    (true, Some(wd)) => (wd * lr_w) as f32,
                    _ => 0.0,
                },
                scale: scale as f32,
                lo,
                hi,
            };
            // A gradient aliasing its own weight would deadlock the two locks below.
            let mut grad = if grad.same_storage(&value) {
                let copy = grad.to_vec::<f32>().map_err(|e| weight_err(name, e))?;
                Tensor::from_vec(copy, grad.shape())?
            } else {
                grad
            };
            if let (true, Some(l2)) = (decays, self.coupled_weight_decay.filter(|&w| w != 0.0)) {
                // Coupled decay joins the clipped gradient (PyTorch: clipping happens before
                // `step`, which adds `wd * w`); the rule then sees an unclipped gradient.
                let g = grad.to_vec::<f32>().map_err(|e| weight_err(name, e))?;
                let w = value.to_vec::<f32>().map_err(|e| weight_err(name, e))?;
                if g.len() == w.len() {
                    let l2 = l2 as f32;
                    let g: Vec<f32> = g.iter().zip(&w).map(|(&g, &w)| ctx.g(g) + l2 * w).collect();
                    grad = Tensor::from_vec(g, value.shape())?;
                    (ctx.scale, ctx.lo, ctx.hi) = (1.0, f32::NEG_INFINITY, f32::INFINITY);
                }
            }
            if grad.numel() != value.numel() {
                return Err(Error::config(format!(
                    "weight '{name}': gradient has {} values, the weight {}",
                    grad.numel(),
                    value.numel()
                )));
            }
            let bufs = &mut entry.bufs;
            let done = value
                .update_with_grad_(&grad, "optimizer update", |w, g| {
                    if update_chunked(&*rule, &ctx, w, g, bufs) {
                        Ok(())
                    } else {
                        Err(Error::config(format!(
                            "{}: internal error, weight '{name}' has {} slots",
                            R::CLASS,
                            bufs.len()
                        )))
                    }
                })
                .map_err(|e| weight_err(name, e))?;
            done?;
        }
        self.iterations += 1;
        Ok(())
    }

    pub(crate) fn state<R: Rule>(&self, rule: &R) -> Vec<(String, Tensor)> {
        let names = rule.slot_names();
        let mut out = Vec::new();
        for e in &self.slots.entries {
            for (slot, buf) in names.iter().zip(&e.bufs) {
                // Cannot fail: every buffer has the element count of its shape.
                if let Ok(t) = Tensor::from_vec(buf.clone(), &e.shape) {
                    out.push((format!("{}/{}", e.name, slot), t));
                }
            }
        }
        out
    }

    pub(crate) fn load_state<R: Rule>(
        &mut self,
        rule: &mut R,
        iterations: u64,
        state: &[(String, Tensor)],
    ) -> Result<()> {
        let names = rule.slot_names();
        let expected = || {
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        let mut entries: Vec<SlotEntry> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut filled: Vec<Vec<bool>> = Vec::new();
        for (key, t) in state {
            let bad = |msg: String| Error::config(format!("{} state '{key}': {msg}", R::CLASS));
            let Some((weight, slot)) = key.rsplit_once('/') else {
                return Err(bad("expected a name '<weight name>/<slot>'".into()));
            };
            let Some(si) = names.iter().position(|s| *s == slot) else {
                return Err(bad(format!(
                    "unknown slot '{slot}' (this optimizer's slots: {})",
                    expected()
                )));
            };
            if weight.is_empty() {
                return Err(bad("empty weight name".into()));
            }
            if t.dtype() != DType::F32 {
                return Err(bad(format!("expected f32 values, got {:?}", t.dtype())));
            }
            let data = t.to_vec::<f32>()?;
            let idx = match index.get(weight) {
                Some(&i) => i,
                None => {
                    index.insert(weight.to_string(), entries.len());
                    entries.push(SlotEntry {
                        name: weight.to_string(),
                        shape: t.shape().to_vec(),
                        decay: None,
                        bufs: vec![Vec::new(); names.len()],
                    });
                    filled.push(vec![false; names.len()]);
                    entries.len() - 1
                }
            };
            let e = &mut entries[idx];
            if e.shape != t.shape() {
                return Err(bad(format!(
                    "shape {:?} differs from the other slots of '{weight}' ({:?})",
                    t.shape(),
                    e.shape
                )));
            }
            if filled[idx][si] {
                return Err(bad("given twice".into()));
            }
            filled[idx][si] = true;
            e.bufs[si] = data;
        }
        for (e, f) in entries.iter().zip(&filled) {
            if let Some(missing) = f.iter().position(|x| !x) {
                return Err(Error::config(format!(
                    "{} state: weight '{}' lacks slot '{}' (expected slots: {})",
                    R::CLASS,
                    e.name,
                    names[missing],
                    expected()
                )));
            }
        }
        // Against the weights this optimizer has already seen.
        for e in &entries {
            if let Some(&i) = self.slots.index.get(&e.name) {
                let old = &self.slots.entries[i].shape;
                if *old != e.shape {
                    return Err(Error::config(format!(
                        "{} state: slots of '{}' have shape {:?}, but the weight has shape {:?}",
                        R::CLASS,
                        e.name,
                        e.shape,
                        old
                    )));
                }
            }
        }
        self.slots = SlotStore {
            pending_check: !entries.is_empty(),
            entries,
            index,
        };
        self.iterations = iterations;
        rule.reset(iterations);
        Ok(())
    }
}

fn weight_err(name: &str, e: impl Into<Error>) -> Error {
    match e.into() {
        Error::Config(msg) if msg.contains(name) => Error::Config(msg),
        other => Error::config(format!("optimizer update of weight '{name}': {other}")),
    }
}

fn names_preview(params: &[(String, Param)]) -> String {
    let mut s: Vec<&str> = params.iter().take(5).map(|(n, _)| n.as_str()).collect();
    if params.len() > 5 {
        s.push("...");
    }
    s.join(", ")
}

/// Elements per task of a parallel update: large enough that the fork/join cost is small
/// against streaming the weight, gradient and slots.
const UPDATE_CHUNK: usize = 1 << 16;

/// Runs `rule.update` over `w`, `g` and the slots in chunks of [`UPDATE_CHUNK`] elements,
/// in parallel when there are several. Every rule is elementwise, so the result does not
/// depend on the chunking or the thread count. False when the slot count or a slot's length
/// is wrong.
fn update_chunked<R: Rule>(
    rule: &R,
    c: &StepCtx,
    w: &mut [f32],
    g: &[f32],
    bufs: &mut [Vec<f32>],
) -> bool {
    if bufs.iter().any(|b| b.len() != w.len()) || g.len() != w.len() {
        return false;
    }
    if w.len() <= UPDATE_CHUNK || ferrovision_tensor::parallel::num_threads() <= 1 {
        let mut slots: Vec<&mut [f32]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
        return update_simd(rule, c, w, g, &mut slots);
    }
    let mut slot_chunks: Vec<_> = bufs
        .iter_mut()
        .map(|b| b.chunks_mut(UPDATE_CHUNK))
        .collect();
    let jobs: Vec<_> = w
        .chunks_mut(UPDATE_CHUNK)
        .zip(g.chunks(UPDATE_CHUNK))
        .map(|(wc, gc)| {
            let slots: Vec<&mut [f32]> =
                slot_chunks.iter_mut().filter_map(|it| it.next()).collect();
            (wc, gc, slots)
        })
        .collect();
    use ferrovision_tensor::parallel::prelude::*;
    jobs.into_par_iter()
        .map(|(wc, gc, mut slots)| update_simd(rule, c, wc, gc, &mut slots))
        .collect::<Vec<bool>>()
        .into_iter()
        .all(|ok| ok)
}

ferrovision_tensor::multiversion! {
    /// Runs `rule.update` compiled for the widest vector ISA the engine selects
    /// (`ferrovision_tensor::kernels::isa()`, so `FERROVISION_ISA` and `set_isa_override` apply):
    /// the crate is built for baseline x86-64 (SSE2), and the square roots and divisions of the
    /// adaptive optimizers run faster with AVX-512 or AVX2. `Rule::update` is
    /// `#[inline(always)]`, so each level gets its own copy of the loop.
    fn update_simd<R: Rule>(
        rule: &R,
        c: &StepCtx,
        w: &mut [f32],
        g: &[f32],
        slots: &mut [&mut [f32]],
    ) -> bool {
        rule.update(c, w, g, slots)
    }
}

/// Per-step scalars handed to the update loops.
pub(crate) struct StepCtx {
    /// Learning rate of this step for this weight (the schedule's times its multiplier).
    pub lr: f32,
    /// The weight's learning-rate multiplier (for rules that fold the learning rate into
    /// per-step constants in `prepare`, such as Adam).
    pub lr_scale: f32,
    /// `learning_rate * weight_decay` for this weight (0 when it does not decay).
    pub decay: f32,
    /// Gradient scale from norm clipping (1 without).
    pub scale: f32,
    /// Value clipping bounds (infinite without).
    pub lo: f32,
    pub hi: f32,
}

impl StepCtx {
    /// The clipped gradient. Comparisons instead of min/max keep a NaN gradient NaN.
    #[inline(always)]
    pub fn g(&self, g: f32) -> f32 {
        let g = g * self.scale;
        if g > self.hi {
            self.hi
        } else if g < self.lo {
            self.lo
        } else {
            g
        }
    }

    /// The weight after decoupled weight decay (exact no-op when the decay is 0).
    #[inline(always)]
    pub fn w(&self, w: f32) -> f32 {
        w - w * self.decay
    }
}

/// An update rule: its slots and one fused in-place loop per weight. Its serde form is the
/// optimizer-specific part of the config (the hyper-parameters, Keras key names).
pub(crate) trait Rule: Send + Sync + Serialize + DeserializeOwned {
    /// Keras class name (`Adam`).
    const CLASS: &'static str;
    /// Names of the per-weight slots, in buffer order.
    fn slot_names(&self) -> &'static [&'static str];
    /// Initial value of slot `i` (Adagrad's accumulator starts at 0.1).
    fn slot_init(&self, _slot: usize) -> f32 {
        0.0
    }
    /// Checks the hyper-parameters (and the shared options this optimizer requires).
    fn validate(&self, base: &OptimizerBase) -> Result<()>;
    /// Computes per-step scalars (bias corrections) before the weights are updated; `step` is
    /// 1 for the first update.
    fn prepare(&mut self, _lr: f64, _step: u64) {}
    /// Recomputes step-dependent internal state after a restore.
    fn reset(&mut self, _iterations: u64) {}
    /// Updates `w` in place from `g`; returns false when the slot count is wrong.
    fn update(&self, c: &StepCtx, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) -> bool;
}

#[derive(Clone, Debug)]
struct SlotEntry {
    name: String,
    shape: Vec<usize>,
    /// Whether weight decay applies (decided on first use from the name).
    decay: Option<bool>,
    bufs: Vec<Vec<f32>>,
}

#[derive(Clone, Debug, Default)]
struct SlotStore {
    entries: Vec<SlotEntry>,
    index: HashMap<String, usize>,
    /// Set by `load_state`: the next step checks the restored weights against its weights.
    pending_check: bool,
}

impl SlotStore {
    fn lookup<R: Rule>(&mut self, name: &str, shape: &[usize], rule: &R) -> Result<usize> {
        if let Some(&i) = self.index.get(name) {
            let e = &self.entries[i];
            if e.shape != shape {
                return Err(Error::config(format!(
                    "{}: optimizer state of weight '{name}' has shape {:?}, but the weight has shape {:?}",
                    R::CLASS,
                    e.shape,
                    shape
                )));
            }
            return Ok(i);
        }
        let n: usize = shape.iter().product();
        let bufs = (0..rule.slot_names().len())
            .map(|s| vec![rule.slot_init(s); n])
            .collect();
        self.index.insert(name.to_string(), self.entries.len());
        self.entries.push(SlotEntry {
            name: name.to_string(),
            shape: shape.to_vec(),
            decay: None,
            bufs,
        });
        Ok(self.entries.len() - 1)
    }

    fn check_loaded(&mut self, params: &[(String, Param)], class: &str) -> Result<()> {
        for e in &self.entries {
            let Some((_, p)) = params.iter().find(|(n, _)| *n == e.name) else {
                return Err(Error::config(format!(
                    "{class}: the restored optimizer state has slots for weight '{}', which is not among \
                     the {} weights being trained ({})",
                    e.name,
                    params.len(),
                    names_preview(params)
                )));
            };
            let shape = p.shape();
            if shape != e.shape {
                return Err(Error::config(format!(
                    "{class}: restored optimizer state of weight '{}' has shape {:?}, but the weight has shape {:?}",
                    e.name, e.shape, shape
                )));
            }
        }
        self.pending_check = false;
        Ok(())
    }
}
