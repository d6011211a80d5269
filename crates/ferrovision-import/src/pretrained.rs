//! Zoo architectures with pretrained weights: Keras applications' `weights=` and
//! torchvision's `weights=` in one call.
//!
//! [`build_pretrained`] builds the zoo model (`ferrovision_models::build`), resolves the
//! weights argument through the local cache ([`crate::hub::resolve`]: a file path or a cache
//! name), reads the file in whatever format it is ([`crate::read_weights`]) and maps it onto
//! the network by the naming of its format ([`naming_for`]): PyTorch checkpoints and ONNX
//! models (whose initializers `torch.onnx.export` names by the state-dict keys) by PyTorch keys
//! and layouts, Keras HDF5 and TF.js files by Keras names and layouts, safetensors written by ferrovision (`convert`, `save_weights`, model
//! files) by our own names. A headless model (`include_top = false`) takes a full checkpoint
//! and leaves the classifier's tensors out; every weight of the network must still be found with
//! its shape, or nothing is assigned.

use crate::remap::{load_into, Naming};
use crate::{hub, read_weights, Error, Result, SourceFormat};
use ferrovision_models::ModelOptions;
use ferrovision_nn::{Network, NetworkExt};
use std::path::PathBuf;

/// How tensors of a file of `format` are named.
pub fn naming_for(format: SourceFormat) -> Naming {
    match format {
        SourceFormat::Safetensors => Naming::ferrovision(),
        SourceFormat::KerasH5 | SourceFormat::Tfjs => Naming::keras(),
        SourceFormat::TorchZip | SourceFormat::TorchLegacy | SourceFormat::Onnx => Naming::torch(),
    }
}

/// Loads the weights `weights` (a path or a cache name) into `net`; `allow_unused` lets a
/// headless network leave the file's classifier out. Returns the file used.
pub fn load_pretrained(net: &dyn Network, weights: &str, allow_unused: bool) -> Result<PathBuf> {
    let path = hub::resolve(weights)?;
    let imported = read_weights(&path)?;
    let mut naming = naming_for(imported.format);
    naming.allow_unused = allow_unused;
    load_into(net, &imported, &naming)?;
    Ok(path)
}

/// Builds the zoo architecture `arch` with `opts` and loads `weights` into it (see the module
/// header). A cache name made for another architecture is an error.
pub fn build_pretrained(
    arch: &str,
    opts: &ModelOptions,
    weights: &str,
) -> Result<Box<dyn Network>> {
    if let Some(entry) = hub::catalog(weights) {
        if entry.arch != arch && !std::path::Path::new(weights).is_file() {
            return Err(Error::mapping(
                weights,
                format!(
                    "the cached weights '{}' are for the architecture '{}', not '{arch}'",
                    entry.name, entry.arch
                ),
            ));
        }
    }
    let net = ferrovision_models::build(arch, opts)?;
    load_pretrained(net.as_ref(), weights, !opts.include_top)?;
    Ok(net)
}

/// Loads the backbone of `arch` (every weight the headless model built with `opts` has) from
/// `weights` into `net`, a model of that architecture with any head (e.g. a new classifier
/// for other classes), leaving the head's weights as they are. Returns the names loaded.
pub fn load_backbone(
    net: &dyn Network,
    arch: &str,
    opts: &ModelOptions,
    weights: &str,
) -> Result<Vec<String>> {
    let headless = ferrovision_models::build(arch, &opts.clone().include_top(false))?;
    let names: Vec<String> = headless
        .named_weights()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let path = hub::resolve(weights)?;
    let imported = read_weights(&path)?;
    let mut naming = naming_for(imported.format);
    naming.allow_unused = true;
    naming.only = Some(names.iter().cloned().collect());
    load_into(net, &imported, &naming)?;
    Ok(names)
}
