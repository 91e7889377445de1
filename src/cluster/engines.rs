//! The engines the cluster can run on: one registration line each.

use std::sync::Arc;

use super::engine::{Engine, EngineStart};
use super::{ClusterConfig, EngineKind};
use crate::error::Result;

/// Starts the engine `config.engine` names (`None` for the engine `none`).
pub(super) async fn start(
    config: &ClusterConfig,
    start: EngineStart,
) -> Result<Option<Arc<dyn Engine>>> {
    Ok(Some(match config.engine {
        EngineKind::None => return Ok(None),
        EngineKind::Mesh => super::mesh::registration::start(config, start).await?,
        EngineKind::Redis => super::redis::start(config, start).await?,
        EngineKind::RedisCluster => super::redis_cluster::start(config, start).await?,
        EngineKind::Nats => super::nats::start(config, start).await?,
    }))
}
