//! Functional models: graphs of layers with several inputs/outputs, branches and shared layers.

/// Placeholder while the graph builder is written.
pub struct Functional;
/// Graph builder.
pub struct Graph;
/// A node of a graph.
#[derive(Debug, Clone, Copy)]
pub struct NodeId(pub usize);

impl Functional {
    /// Rebuilds from config.
    pub fn from_config(_cfg: &serde_json::Value) -> crate::Result<crate::Sequential> {
        Err(crate::Error::config(
            "Functional models are not available yet",
        ))
    }
}
