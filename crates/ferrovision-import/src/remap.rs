//! Mapping imported tensors onto a network's weights: rename rules ([`KeyRemapper`]) and the
//! all-or-nothing loader [`load_into`].
//!
//! A network weight is named `layer/child/weight` (`layer1/0/bn1/moving_variance`). Under
//! [`Convention::Torch`] it expects the source tensor named by
//! [`ferrovision_nn::layout::to_torch_name`] (`layer1.0.bn1.running_var`) and converts it with
//! [`ferrovision_nn::layout::from_torch`] (only a `Dense` kernel changes: PyTorch's
//! `[out, in]` becomes `[in, out]`); under [`Convention::Keras`] it expects Keras' name for it
//! (`conv2d_1/kernel`, as [`crate::keras_h5`] and [`crate::tfjs`] name tensors: our names are
//! Keras' scoping; a `DepthwiseConv2D`'s `kernel` is `depthwise_kernel` in Keras 2 files and
//! `kernel` in Keras 3's, and either is taken) and
//! converts it with [`ferrovision_nn::layout::from_keras`] (channels-last kernels become
//! channels-first); under [`Convention::Ferrovision`] names and layouts are ferrovision's own
//! (a converted safetensors file). A Keras `Dense` that follows a `Flatten` of a feature map
//! expects channels-last order and would need its rows permuted: that case is not converted
//! (the zoo's Keras-named nets pool before their dense layers). Source names pass through two
//! steps first:
//!
//! 1. **prefix**: only tensors under a prefix count (`state_dict.` in a checkpoint that the
//!    PyTorch reader flattened to `state_dict.conv1.weight`, `optimizer.state.0...`). Unless
//!    [`Naming::prefix`] says which, the prefix is chosen among `""`, `state_dict.`,
//!    `model_state_dict.`, `model.`, `net.`, `module.` (DataParallel), `state_dict.module.`,
//!    `model.module.` as the one under which most network weights are found (the first on a
//!    tie);
//! 2. **rename rules** ([`KeyRemapper`]), applied in order to the name without its prefix.
//!
//! Then every network weight must find its tensor, with its shape after the layout adapter,
//! and every tensor under the prefix must be used, except PyTorch's `num_batches_tracked`
//! counters (no ferrovision counterpart). All problems are reported in one
//! [`Error::Mapping`] naming each tensor and weight with both shapes, and then **nothing** is
//! assigned: a network is never left half-loaded.

use crate::{Error, ImportedWeights, Result};
use ferrovision_nn::layout::{from_keras, from_torch, to_torch_name};
use ferrovision_nn::{Network, NetworkExt};
use ferrovision_tensor::Tensor;
use std::collections::{HashMap, HashSet};

/// Ordered rename rules from source names to the names the [`Convention`] expects.
///
/// A rule is `pattern -> replacement`. The pattern must match the *whole* name; each `*` in it
/// matches any run of characters (possibly empty; the earlier `*`s as short as possible). The
/// replacement is literal text in which `$1` .. `$9` insert what the first .. ninth `*`
/// matched. Rules apply in order, each to the result of the previous ones; a rule whose
/// pattern does not match leaves the name as it is.
///
/// ```
/// use ferrovision_import::remap::KeyRemapper;
/// let r = KeyRemapper::new()
///     .rule("features.*.conv.*", "blocks.$1.conv.$2")?
///     .rule("classifier.*", "fc.$1")?;
/// assert_eq!(r.apply("features.3.conv.weight"), "blocks.3.conv.weight");
/// assert_eq!(r.apply("classifier.bias"), "fc.bias");
/// assert_eq!(r.apply("other.weight"), "other.weight");
/// # Ok::<(), ferrovision_import::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct KeyRemapper {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    /// The pattern split at its `*`s.
    parts: Vec<String>,
    replacement: String,
}

impl KeyRemapper {
    /// No rules: names are kept.
    pub fn new() -> Self {
        KeyRemapper::default()
    }

    /// Adds the rule `pattern -> replacement` after the existing ones. An error when the
    /// replacement refers to a `$n` the pattern has no `*` for.
    pub fn rule(mut self, pattern: &str, replacement: &str) -> Result<Self> {
        let parts: Vec<String> = pattern.split('*').map(str::to_string).collect();
        let stars = parts.len() - 1;
        let b = replacement.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            if c == b'$' {
                match b.get(i + 1) {
                    Some(d @ b'1'..=b'9') if ((d - b'0') as usize) <= stars => {}
                    _ => {
                        return Err(Error::mapping(
                            "key remapper",
                            format!(
                                "rule '{pattern}' -> '{replacement}': '$' must be followed by \
                                 1..{stars} (the pattern has {stars} '*')"
                            ),
                        ))
                    }
                }
            }
        }
        self.rules.push(Rule {
            parts,
            replacement: replacement.to_string(),
        });
        Ok(self)
    }

    /// `name` after all rules.
    pub fn apply(&self, name: &str) -> String {
        let mut name = name.to_string();
        for r in &self.rules {
            if let Some(caps) = r.captures(&name) {
                name = r.expand(&caps);
            }
        }
        name
    }
}

impl Rule {
    /// What each `*` matched, if the pattern matches all of `name`.
    fn captures<'n>(&self, name: &'n str) -> Option<Vec<&'n str>> {
        let (first, rest) = self.parts.split_first()?;
        let mut pos = name.strip_prefix(first.as_str()).map(|_| first.len())?;
        let Some((last, middle)) = rest.split_last() else {
            return (pos == name.len()).then(Vec::new);
        };
        let mut caps = Vec::with_capacity(rest.len());
        for lit in middle {
            let at = name[pos..].find(lit.as_str())? + pos;
            caps.push(&name[pos..at]);
            pos = at + lit.len();
        }
        if name.len() < pos + last.len() || !name.ends_with(last.as_str()) {
            return None;
        }
        caps.push(&name[pos..name.len() - last.len()]);
        Some(caps)
    }

    fn expand(&self, caps: &[&str]) -> String {
        let mut out = String::new();
        let mut chars = self.replacement.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek().and_then(|d| d.to_digit(10))) {
                ('$', Some(d)) if d >= 1 => {
                    chars.next();
                    out.push_str(caps.get(d as usize - 1).copied().unwrap_or(""));
                }
                _ => out.push(c),
            }
        }
        out
    }
}

/// Whose names and layouts the source tensors use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Convention {
    /// PyTorch `state_dict` keys and layouts ([`to_torch_name`], [`from_torch`]).
    #[default]
    Torch,
    /// Keras weight names (`conv2d_1/kernel`, `conv_dw_1/depthwise_kernel`) and channels-last
    /// layouts ([`from_keras`]).
    Keras,
    /// ferrovision's own weight names (`conv/kernel`) and stored layouts.
    Ferrovision,
}

/// How source names map onto a network's weights.
#[derive(Debug, Clone, Default)]
pub struct Naming {
    /// Names and layouts of the source.
    pub convention: Convention,
    /// The prefix the weights sit under (`"state_dict."`); `None` picks one (module docs).
    pub prefix: Option<String>,
    /// Rename rules applied to source names after the prefix is removed.
    pub remap: KeyRemapper,
    /// Source tensors no weight uses are allowed (a headless network taking a full
    /// checkpoint: the classifier's tensors are left out); every weight must still be found.
    pub allow_unused: bool,
    /// Load only these weights of the network (by ferrovision name), leaving the others as they
    /// are (a pretrained backbone under a new head); `None` = all of them.
    pub only: Option<std::collections::HashSet<String>>,
}

impl Naming {
    /// PyTorch names and layouts, prefix found automatically, no rename rules.
    pub fn torch() -> Self {
        Naming::default()
    }

    /// Keras names and layouts (Keras HDF5 and TF.js files of Keras models).
    pub fn keras() -> Self {
        Naming {
            convention: Convention::Keras,
            ..Naming::default()
        }
    }

    /// ferrovision names and layouts.
    pub fn ferrovision() -> Self {
        Naming {
            convention: Convention::Ferrovision,
            ..Naming::default()
        }
    }
}

/// Prefixes tried when [`Naming::prefix`] is `None`, in order of preference.
const PREFIXES: &[&str] = &[
    "",
    "state_dict.",
    "model_state_dict.",
    "model.",
    "net.",
    "module.",
    "state_dict.module.",
    "model.module.",
    "weights/",
];

/// Keras' name of the ferrovision weight `name` of a layer of class `class`, and the other
/// name Keras may give it: a depthwise convolution's kernel is `depthwise_kernel` in Keras 2
/// files and `kernel` (our name) in Keras 3's.
fn keras_names(name: &str, class: &str) -> (String, Option<String>) {
    match name.strip_suffix("/kernel") {
        Some(layer) if class == "DepthwiseConv2D" => {
            (format!("{layer}/depthwise_kernel"), Some(name.to_string()))
        }
        _ => (name.to_string(), None),
    }
}

/// Source tensors PyTorch keeps that have no ferrovision counterpart.
fn ignored(name: &str) -> bool {
    name == "num_batches_tracked" || name.ends_with(".num_batches_tracked")
}

/// The source tensors under `prefix`, by their renamed name: `(renamed, (source name, tensor))`.
fn sources<'w>(
    weights: &'w ImportedWeights,
    prefix: &str,
    remap: &KeyRemapper,
) -> Result<HashMap<String, (&'w str, &'w Tensor)>> {
    let mut out: HashMap<String, (&str, &Tensor)> = HashMap::new();
    for (name, t) in &weights.tensors {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let renamed = remap.apply(rest);
        if let Some((other, _)) = out.insert(renamed.clone(), (name.as_str(), t)) {
            return Err(Error::mapping(
                &weights.path,
                format!("source tensors '{other}' and '{name}' both map to '{renamed}'"),
            ));
        }
    }
    Ok(out)
}

/// Copies `weights` into `net`'s weights by `naming` (module docs): every weight must be found
/// with the right shape and every source tensor used, or nothing is assigned and the error
/// lists each missing, extra or mis-shaped tensor with both shapes.
pub fn load_into(net: &dyn Network, weights: &ImportedWeights, naming: &Naming) -> Result<()> {
    let named = net.named_weights();
    // (weight name, the source name it expects after prefix and rules, another name it may
    // have, layer class, weight)
    let mut targets = Vec::with_capacity(named.len());
    for (name, p) in &named {
        if naming
            .only
            .as_ref()
            .is_some_and(|only| !only.contains(name))
        {
            continue;
        }
        let (layer, weight) = name.rsplit_once('/').unwrap_or(("", name.as_str()));
        let class = net.get_layer(layer).map(|l| l.class_name()).unwrap_or("");
        let (key, alias) = match naming.convention {
            Convention::Torch => (to_torch_name(name), None),
            Convention::Keras => keras_names(name, class),
            Convention::Ferrovision => (name.clone(), None),
        };
        targets.push((name.as_str(), key, alias, class, weight, p));
    }
    let prefix = match &naming.prefix {
        Some(p) => p.clone(),
        None => {
            let mut best = (0, "");
            for &p in PREFIXES {
                let found = sources(weights, p, &naming.remap)?;
                let hits = targets
                    .iter()
                    .filter(|t| {
                        found.contains_key(&t.1)
                            || t.2.as_ref().is_some_and(|a| found.contains_key(a))
                    })
                    .count();
                if hits > best.0 {
                    best = (hits, p);
                }
            }
            best.1.to_string()
        }
    };
    let found = sources(weights, &prefix, &naming.remap)?;

    let mut problems = Vec::new();
    let mut used = HashSet::new();
    let mut values = Vec::with_capacity(targets.len());
    for (name, key, alias, class, weight, p) in &targets {
        let want = p.shape();
        let hit = found
            .get(key)
            .or_else(|| alias.as_ref().and_then(|a| found.get(a)));
        let Some(&(src, t)) = hit else {
            problems.push(format!(
                "missing: no tensor '{prefix}{key}' for the network's weight '{name}' (shape {want:?})"
            ));
            continue;
        };
        used.insert(src);
        if !t.dtype().is_float() {
            problems.push(format!(
                "tensor '{src}' has dtype {:?}; the network's weight '{name}' needs floats",
                t.dtype()
            ));
            continue;
        }
        let f32s: Vec<f32> = t.to_f64_vec()?.into_iter().map(|v| v as f32).collect();
        let t32 = Tensor::from_vec(f32s, t.shape())?;
        let converted = match naming.convention {
            Convention::Torch => from_torch(class, weight, &t32),
            Convention::Keras => from_keras(class, weight, &t32),
            Convention::Ferrovision => Ok(t32),
        };
        let converted = match converted {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("tensor '{src}' for weight '{name}': {e}"));
                continue;
            }
        };
        if converted.shape() != want.as_slice() {
            let layout = if converted.shape() != t.shape() {
                format!(" ({:?} in ferrovision's layout)", converted.shape())
            } else {
                String::new()
            };
            problems.push(format!(
                "mis-shaped: tensor '{src}' has shape {:?}{layout}, the network's weight '{name}' has shape {want:?}",
                t.shape()
            ));
            continue;
        }
        values.push((*p, converted));
    }
    for (name, t) in &weights.tensors {
        let Some(rest) = name.strip_prefix(prefix.as_str()) else {
            continue;
        };
        if !naming.allow_unused && !used.contains(name.as_str()) && !ignored(rest) {
            problems.push(format!(
                "extra: tensor '{name}' (shape {:?}) matches no weight of the network",
                t.shape()
            ));
        }
    }
    if !problems.is_empty() {
        const SHOWN: usize = 20;
        let more = problems.len().saturating_sub(SHOWN);
        let mut msg = format!(
            "{} problem(s) mapping {} tensors (prefix '{prefix}') onto {} weights, nothing \
             assigned: {}",
            problems.len(),
            found.len(),
            targets.len(),
            problems[..problems.len().min(SHOWN)].join("; ")
        );
        if more > 0 {
            msg.push_str(&format!("; and {more} more"));
        }
        return Err(Error::mapping(&weights.path, msg));
    }
    for (p, v) in values {
        p.assign(&v.to_vec::<f32>()?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_capture_and_rules_chain() {
        let r = KeyRemapper::new()
            .rule("module.*", "$1")
            .unwrap()
            .rule("*.gamma", "$1.weight")
            .unwrap()
            .rule("a*b*c", "[$2|$1]")
            .unwrap();
        assert_eq!(r.apply("module.bn.gamma"), "bn.weight");
        assert_eq!(r.apply("axxbyyc"), "[yy|xx]");
        assert_eq!(r.apply("abc"), "[|]");
        assert_eq!(r.apply("xabc"), "xabc");
        assert_eq!(r.apply("module"), "module");
        // A pattern without `*` renames one exact name.
        let r = KeyRemapper::new().rule("fc.weight", "head.weight").unwrap();
        assert_eq!(r.apply("fc.weight"), "head.weight");
        assert_eq!(r.apply("fc.weight2"), "fc.weight2");
        // Overlapping literals: prefix and suffix must not share characters.
        let r = KeyRemapper::new().rule("ab*ba", "$1").unwrap();
        assert_eq!(r.apply("aba"), "aba");
        assert_eq!(r.apply("abba"), "");
    }

    #[test]
    fn replacement_must_refer_to_existing_stars() {
        assert!(KeyRemapper::new().rule("a.*", "$2").is_err());
        assert!(KeyRemapper::new().rule("a", "$").is_err());
        assert!(KeyRemapper::new().rule("a.*.*", "$2.$1").is_ok());
    }
}
