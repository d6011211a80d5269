//! Built-in layers (one per file) and the registry that rebuilds layers from saved configs.

mod activation;
mod batch_norm;
mod common;
mod conv;
mod conv_transpose;
mod dense;
mod depthwise_conv;
mod dropout;
mod flatten;
mod global_pooling;
mod lambda;
mod layer_norm;
mod merge;
mod padding;
mod permute;
mod pooling;
mod reshape;
mod separable_conv;
mod upsampling;

pub use activation::ActivationLayer;
pub use batch_norm::BatchNormalization;
pub use common::{Dims, PaddingMode};
pub use conv::{Conv, Conv1D, Conv2D, Conv3D};
pub use conv_transpose::{Conv1DTranspose, Conv2DTranspose, Conv3DTranspose, ConvTranspose};
pub use dense::Dense;
pub use depthwise_conv::DepthwiseConv2D;
pub use dropout::{Dropout, SpatialDropout, SpatialDropout1D, SpatialDropout2D, SpatialDropout3D};
pub use flatten::Flatten;
pub use global_pooling::{
    GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D, GlobalMaxPooling1D,
    GlobalMaxPooling2D, GlobalMaxPooling3D, GlobalPooling,
};
pub use lambda::Lambda;
pub use layer_norm::LayerNormalization;
pub use merge::{Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract};
pub use padding::{
    Cropping, Cropping1D, Cropping2D, Cropping3D, ZeroPadding, ZeroPadding1D, ZeroPadding2D,
    ZeroPadding3D,
};
pub use permute::Permute;
pub use pooling::{
    AveragePooling1D, AveragePooling2D, AveragePooling3D, MaxPooling1D, MaxPooling2D, MaxPooling3D,
    Pooling,
};
pub use reshape::Reshape;
pub use separable_conv::SeparableConv2D;
pub use upsampling::{Interpolation, UpSampling2D};

use crate::{Error, Layer, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Builds a layer from its config (what [`Layer::config`] returned).
pub type LayerFactory = fn(&Value) -> Result<Box<dyn Layer>>;

fn registry() -> &'static Mutex<HashMap<String, LayerFactory>> {
    static REG: OnceLock<Mutex<HashMap<String, LayerFactory>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Registers a custom layer class so saved models using it can be loaded.
pub fn register_layer(class_name: &str, factory: LayerFactory) {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(class_name.to_string(), factory);
}

fn boxed<L: Layer + 'static>(r: Result<L>) -> Result<Box<dyn Layer>> {
    r.map(|l| Box::new(l) as Box<dyn Layer>)
}

/// Rebuilds an (unbuilt) layer from its class name and config.
pub fn layer_from_config(class_name: &str, config: &Value) -> Result<Box<dyn Layer>> {
    match class_name {
        "Dense" => boxed(Dense::from_config(config)),
        "Conv1D" => boxed(Conv1D::from_config(config)),
        "Conv2D" => boxed(Conv2D::from_config(config)),
        "Conv3D" => boxed(Conv3D::from_config(config)),
        "Conv1DTranspose" => boxed(Conv1DTranspose::from_config(config)),
        "Conv2DTranspose" => boxed(Conv2DTranspose::from_config(config)),
        "Conv3DTranspose" => boxed(Conv3DTranspose::from_config(config)),
        "DepthwiseConv2D" => boxed(DepthwiseConv2D::from_config(config)),
        "SeparableConv2D" => boxed(SeparableConv2D::from_config(config)),
        "MaxPooling1D" => boxed(MaxPooling1D::from_config(config)),
        "MaxPooling2D" => boxed(MaxPooling2D::from_config(config)),
        "MaxPooling3D" => boxed(MaxPooling3D::from_config(config)),
        "AveragePooling1D" => boxed(AveragePooling1D::from_config(config)),
        "AveragePooling2D" => boxed(AveragePooling2D::from_config(config)),
        "AveragePooling3D" => boxed(AveragePooling3D::from_config(config)),
        "GlobalAveragePooling1D" => boxed(GlobalAveragePooling1D::from_config(config)),
        "GlobalAveragePooling2D" => boxed(GlobalAveragePooling2D::from_config(config)),
        "GlobalAveragePooling3D" => boxed(GlobalAveragePooling3D::from_config(config)),
        "GlobalMaxPooling1D" => boxed(GlobalMaxPooling1D::from_config(config)),
        "GlobalMaxPooling2D" => boxed(GlobalMaxPooling2D::from_config(config)),
        "GlobalMaxPooling3D" => boxed(GlobalMaxPooling3D::from_config(config)),
        "UpSampling2D" => boxed(UpSampling2D::from_config(config)),
        "ZeroPadding1D" => boxed(ZeroPadding1D::from_config(config)),
        "ZeroPadding2D" => boxed(ZeroPadding2D::from_config(config)),
        "ZeroPadding3D" => boxed(ZeroPadding3D::from_config(config)),
        "Cropping1D" => boxed(Cropping1D::from_config(config)),
        "Cropping2D" => boxed(Cropping2D::from_config(config)),
        "Cropping3D" => boxed(Cropping3D::from_config(config)),
        "Flatten" => boxed(Flatten::from_config(config)),
        "Reshape" => boxed(Reshape::from_config(config)),
        "Permute" => boxed(Permute::from_config(config)),
        "Dropout" => boxed(Dropout::from_config(config)),
        "SpatialDropout1D" => boxed(SpatialDropout1D::from_config(config)),
        "SpatialDropout2D" => boxed(SpatialDropout2D::from_config(config)),
        "SpatialDropout3D" => boxed(SpatialDropout3D::from_config(config)),
        "BatchNormalization" => boxed(BatchNormalization::from_config(config)),
        "LayerNormalization" => boxed(LayerNormalization::from_config(config)),
        "Activation" => boxed(ActivationLayer::from_config(config)),
        "Add" => boxed(Add::from_config(config)),
        "Subtract" => boxed(Subtract::from_config(config)),
        "Multiply" => boxed(Multiply::from_config(config)),
        "Average" => boxed(Average::from_config(config)),
        "Maximum" => boxed(Maximum::from_config(config)),
        "Minimum" => boxed(Minimum::from_config(config)),
        "Concatenate" => boxed(Concatenate::from_config(config)),
        "Lambda" => Err(Error::config(format!(
            "Lambda layer '{}' cannot be rebuilt from a saved config: its function is code, not data; rebuild the model in code and load its weights",
            config["name"].as_str().unwrap_or("")
        ))),
        "Sequential" => boxed(crate::Sequential::from_config(config)),
        "Functional" => boxed(crate::Functional::from_config(config)),
        other => {
            let factory = registry()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(other)
                .copied();
            match factory {
                Some(f) => f(config),
                None => Err(Error::config(format!(
                    "unknown layer class '{other}' (register custom layers with layers::register_layer)"
                ))),
            }
        }
    }
}
