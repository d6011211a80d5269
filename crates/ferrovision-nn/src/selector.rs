//! [`LayerSelector`]: which layers of a network an operation applies to (freezing, learning-rate
//! multipliers), by exact path, path prefix, layer type or all of them, parsed from the short
//! strings the command line takes (`name:X`, `prefix:X` or a bare prefix, `class:X`, `all`).
//!
//! A layer's path is the `/`-separated chain of layer names down to it, as in weight names
//! without the weight (`backbone/layer1/blocks/0/bn1`). The walk stops at a matching layer: what
//! it selects covers its children (a frozen block freezes everything inside it).

use crate::layer::Layer;
use crate::network::{collect_named, join_path, Network};
use crate::{Error, Param, Result};
use std::fmt;
use std::str::FromStr;

/// Selects layers of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSelector {
    /// The layer at exactly this path (`block1/conv1`).
    Name(String),
    /// Every layer whose path is this or lies under it (whole `/` segments).
    Prefix(String),
    /// Every layer of this type, at any depth (`BatchNormalization`, `Conv2D`).
    Class(String),
    /// Every layer.
    All,
}

impl LayerSelector {
    /// True when the layer at `path` is selected.
    pub fn matches(&self, path: &str, layer: &dyn Layer) -> bool {
        match self {
            LayerSelector::Name(n) => path == n,
            LayerSelector::Prefix(p) => {
                path == p
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            }
            LayerSelector::Class(c) => layer.class_name() == c,
            LayerSelector::All => true,
        }
    }

    /// Applies `f` to every selected layer of `net` (not to the children of a selected layer:
    /// it covers them); returns how many were selected, or an error naming the selector when
    /// none was.
    pub fn for_each_mut<N: Network + ?Sized>(
        &self,
        net: &mut N,
        f: &mut dyn FnMut(&str, &mut dyn Layer),
    ) -> Result<usize> {
        let mut count = 0;
        for l in net.layers_mut() {
            let name = l.name().to_string();
            self.walk_mut(&name, l, f, &mut count);
        }
        self.nonempty(count)
    }

    /// The weights of the selected layers (children's included) with their full names, each
    /// once; an error when no layer is selected.
    pub fn weights<N: Network + ?Sized>(&self, net: &N) -> Result<Vec<(String, Param)>> {
        let mut out = Vec::new();
        let mut count = 0;
        for l in net.layers() {
            self.walk(l.name(), l, "", &mut out, &mut count);
        }
        self.nonempty(count)?;
        let mut seen: Vec<(String, Param)> = Vec::with_capacity(out.len());
        for (n, p) in out {
            if !seen.iter().any(|(_, q)| q.same(&p)) {
                seen.push((n, p));
            }
        }
        Ok(seen)
    }

    fn nonempty(&self, count: usize) -> Result<usize> {
        if count == 0 {
            return Err(Error::config(format!("no layer matches '{self}'")));
        }
        Ok(count)
    }

    fn walk_mut(
        &self,
        path: &str,
        layer: &mut dyn Layer,
        f: &mut dyn FnMut(&str, &mut dyn Layer),
        count: &mut usize,
    ) {
        if self.matches(path, layer) {
            f(path, layer);
            *count += 1;
            return;
        }
        for (name, child) in layer.children_mut() {
            self.walk_mut(&join_path(path, &name), child, f, count);
        }
    }

    fn walk(
        &self,
        segment: &str,
        layer: &dyn Layer,
        prefix: &str,
        out: &mut Vec<(String, Param)>,
        count: &mut usize,
    ) {
        let path = join_path(prefix, segment);
        if self.matches(&path, layer) {
            collect_named(segment, layer, prefix, out);
            *count += 1;
            return;
        }
        for (name, child) in layer.children() {
            self.walk(&name, child, &path, out, count);
        }
    }
}

impl FromStr for LayerSelector {
    type Err = Error;

    /// `name:PATH`, `prefix:PATH` (or a bare `PATH`), `class:TYPE`, `all`.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let nonempty = |kind: &str, v: &str| {
            let v = v.trim().trim_end_matches('/');
            if v.is_empty() {
                Err(Error::config(format!(
                    "layer selector '{s}': '{kind}:' needs a value"
                )))
            } else {
                Ok(v.to_string())
            }
        };
        if s == "all" {
            Ok(LayerSelector::All)
        } else if let Some(v) = s.strip_prefix("name:") {
            Ok(LayerSelector::Name(nonempty("name", v)?))
        } else if let Some(v) = s.strip_prefix("prefix:") {
            Ok(LayerSelector::Prefix(nonempty("prefix", v)?))
        } else if let Some(v) = s.strip_prefix("class:") {
            Ok(LayerSelector::Class(nonempty("class", v)?))
        } else {
            Ok(LayerSelector::Prefix(nonempty("prefix", s).map_err(
                |_| {
                    Error::config(
                        "empty layer selector (use name:PATH, prefix:PATH, class:TYPE or all)",
                    )
                },
            )?))
        }
    }
}

impl fmt::Display for LayerSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerSelector::Name(n) => write!(f, "name:{n}"),
            LayerSelector::Prefix(p) => write!(f, "prefix:{p}"),
            LayerSelector::Class(c) => write!(f, "class:{c}"),
            LayerSelector::All => f.write_str("all"),
        }
    }
}
