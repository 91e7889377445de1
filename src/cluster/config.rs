//! Options of the cluster: which engine, this node's name, and each engine's settings.

use serde::{Deserialize, Serialize};

use super::mesh::MeshConfig;

/// Which backplane links the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// No backplane: the node runs alone.
    None,
    /// TCP links between nodes, no infrastructure.
    #[default]
    Mesh,
}

impl std::str::FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(EngineKind::None),
            "mesh" => Ok(EngineKind::Mesh),
            other => Err(format!(
                "unknown cluster engine {other:?} (expected none or mesh)"
            )),
        }
    }
}

/// The `[cluster]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `none` or `mesh` (default).
    pub engine: EngineKind,
    /// The mesh engine.
    pub mesh: MeshConfig,
}
