//! The end of a headless network (`include_top = false`), shared by every family: the last
//! feature map as is, or globally average- or max-pooled, as Keras applications' `pooling`.

use crate::Pooling;
use ferrovision_nn::layers::{GlobalAveragePooling2D, GlobalMaxPooling2D};
use ferrovision_nn::{Graph, NodeId, Result};

/// Ends a headless network on the feature map `x` as `pooling` says (the pooling layer is
/// named `avgpool` or `maxpool_global`).
pub fn pool_features(g: &mut Graph, x: NodeId, pooling: Pooling) -> Result<NodeId> {
    match pooling {
        Pooling::None => Ok(x),
        Pooling::Avg => g.apply(GlobalAveragePooling2D::new().named("avgpool"), &[x]),
        Pooling::Max => g.apply(GlobalMaxPooling2D::new().named("maxpool_global"), &[x]),
    }
}
