//! Built-in layers (one per file) and the registry that rebuilds layers from saved configs.

mod activation;
mod adaptive_pooling;
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
pub use adaptive_pooling::AdaptiveAveragePooling2D;
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

use crate::registry::{Boxed, Registry};
use crate::{Error, Layer, Result};
use serde_json::Value;
use std::sync::OnceLock;

/// Builds a layer from its config (what [`Layer::config`] returned).
pub type LayerFactory = fn(&Value) -> Result<Box<dyn Layer>>;

impl<L: Layer + 'static> Boxed<dyn Layer> for L {
    fn boxed(self) -> Box<dyn Layer> {
        Box::new(self)
    }
}

/// The process-wide layer registry, built-ins (and `Sequential`/`Functional`, so models nest)
/// registered on first use.
pub fn layer_registry() -> &'static Registry<dyn Layer> {
    static REG: OnceLock<Registry<dyn Layer>> = OnceLock::new();
    REG.get_or_init(|| {
        let r = Registry::new("layer", "layers::register_layer");
        fn reg<L: Layer + 'static>(r: &Registry<dyn Layer>, class: &str, f: fn(&Value) -> Result<L>) {
            r.register(class, move |v: &Value| f(v).map(Boxed::boxed));
        }
        reg(&r, "Dense", Dense::from_config);
        reg(&r, "Conv1D", Conv1D::from_config);
        reg(&r, "Conv2D", Conv2D::from_config);
        reg(&r, "Conv3D", Conv3D::from_config);
        reg(&r, "Conv1DTranspose", Conv1DTranspose::from_config);
        reg(&r, "Conv2DTranspose", Conv2DTranspose::from_config);
        reg(&r, "Conv3DTranspose", Conv3DTranspose::from_config);
        reg(&r, "DepthwiseConv2D", DepthwiseConv2D::from_config);
        reg(&r, "SeparableConv2D", SeparableConv2D::from_config);
        reg(&r, "MaxPooling1D", MaxPooling1D::from_config);
        reg(&r, "MaxPooling2D", MaxPooling2D::from_config);
        reg(&r, "MaxPooling3D", MaxPooling3D::from_config);
        reg(&r, "AveragePooling1D", AveragePooling1D::from_config);
        reg(&r, "AveragePooling2D", AveragePooling2D::from_config);
        reg(&r, "AveragePooling3D", AveragePooling3D::from_config);
        reg(&r, "GlobalAveragePooling1D", GlobalAveragePooling1D::from_config);
        reg(&r, "GlobalAveragePooling2D", GlobalAveragePooling2D::from_config);
        reg(&r, "GlobalAveragePooling3D", GlobalAveragePooling3D::from_config);
        reg(&r, "GlobalMaxPooling1D", GlobalMaxPooling1D::from_config);
        reg(&r, "GlobalMaxPooling2D", GlobalMaxPooling2D::from_config);
        reg(&r, "GlobalMaxPooling3D", GlobalMaxPooling3D::from_config);
        reg(&r, "AdaptiveAveragePooling2D", AdaptiveAveragePooling2D::from_config);
        reg(&r, "UpSampling2D", UpSampling2D::from_config);
        reg(&r, "ZeroPadding1D", ZeroPadding1D::from_config);
        reg(&r, "ZeroPadding2D", ZeroPadding2D::from_config);
        reg(&r, "ZeroPadding3D", ZeroPadding3D::from_config);
        reg(&r, "Cropping1D", Cropping1D::from_config);
        reg(&r, "Cropping2D", Cropping2D::from_config);
        reg(&r, "Cropping3D", Cropping3D::from_config);
        reg(&r, "Flatten", Flatten::from_config);
        reg(&r, "Reshape", Reshape::from_config);
        reg(&r, "Permute", Permute::from_config);
        reg(&r, "Dropout", Dropout::from_config);
        reg(&r, "SpatialDropout1D", SpatialDropout1D::from_config);
        reg(&r, "SpatialDropout2D", SpatialDropout2D::from_config);
        reg(&r, "SpatialDropout3D", SpatialDropout3D::from_config);
        reg(&r, "BatchNormalization", BatchNormalization::from_config);
        reg(&r, "LayerNormalization", LayerNormalization::from_config);
        reg(&r, "Activation", ActivationLayer::from_config);
        reg(&r, "Add", Add::from_config);
        reg(&r, "Subtract", Subtract::from_config);
        reg(&r, "Multiply", Multiply::from_config);
        reg(&r, "Average", Average::from_config);
        reg(&r, "Maximum", Maximum::from_config);
        reg(&r, "Minimum", Minimum::from_config);
        reg(&r, "Concatenate", Concatenate::from_config);
        reg(&r, "Sequential", crate::Sequential::from_config);
        reg(&r, "Functional", crate::Functional::from_config);
        r.register("Lambda", |config: &Value| {
            Err(Error::config(format!(
                "Lambda layer '{}' cannot be rebuilt from a saved config: its function is code, not data; rebuild the model in code and load its weights",
                config["name"].as_str().unwrap_or("")
            )))
        });
        r
    })
}

/// Registers a custom layer class so saved models using it can be loaded (see
/// [`Registry::register_config`] to register with a serde-derived config struct).
pub fn register_layer(
    class_name: &str,
    factory: impl Fn(&Value) -> Result<Box<dyn Layer>> + Send + Sync + 'static,
) {
    layer_registry().register(class_name, factory);
}

/// Rebuilds an (unbuilt) layer from its class name and config.
pub fn layer_from_config(class_name: &str, config: &Value) -> Result<Box<dyn Layer>> {
    layer_registry().build(class_name, config)
}
