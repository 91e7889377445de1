//! The mesh as an [`Engine`]: how the cluster starts it and talks to it.

use std::any::Any;
use std::sync::Arc;

use bytes::Bytes;

use super::MeshEngine;
use crate::cluster::ClusterConfig;
use crate::cluster::engine::{Engine, EngineFuture, EngineStart};
use crate::cluster::envelope::{Kind, Origin};
use crate::cluster::peers::PeerStatus;
use crate::error::Result;

/// Starts the mesh for the cluster (its `[cluster.mesh]` settings with the engine-independent
/// options filled in). Without a secret the mesh refuses any address but loopback, and says so
/// when it narrows its default bind to loopback.
pub(crate) async fn start(config: &ClusterConfig, start: EngineStart) -> Result<Arc<dyn Engine>> {
    let before = start.before_start;
    let engine = MeshEngine::start_with(config.mesh_settings(), start.origin, start.handler, |m| {
        before(Arc::new(m.clone()))
    })
    .await?;
    Ok(Arc::new(engine))
}

impl Engine for MeshEngine {
    fn name(&self) -> &'static str {
        "mesh"
    }
    fn describe(&self) -> String {
        let cfg = &self.shared.cfg;
        let loopback_only = if cfg.loopback_for_lack_of_secret() {
            " (loopback only: no cluster secret; to link other machines set one, see \
             `wscluster gen-secret` and --cluster-secret-file)"
        } else {
            ""
        };
        format!(
            "mesh on {} (cluster {}){loopback_only}",
            self.local_addr(),
            cfg.cluster_name
        )
    }
    fn send_all(&self, kind: Kind, payload: Bytes) {
        MeshEngine::send_all(self, kind, payload);
    }
    fn send_to(&self, node: &str, kind: Kind, payload: Bytes) {
        MeshEngine::send_to(self, node, kind, payload);
    }
    fn live_peers(&self) -> Vec<Origin> {
        MeshEngine::live_peers(self)
    }
    fn connected_peer_count(&self) -> usize {
        MeshEngine::connected_peer_count(self)
    }
    fn ready(&self) -> bool {
        MeshEngine::ready(self)
    }
    fn peer_statuses(&self) -> Vec<PeerStatus> {
        MeshEngine::peer_statuses(self)
    }
    fn stop(&self) -> EngineFuture<'_, ()> {
        Box::pin(MeshEngine::stop(self))
    }
    fn task_count(&self) -> usize {
        MeshEngine::task_count(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
