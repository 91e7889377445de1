//! The mesh's side of [`crate::cluster::PeerStatus`]: every peer it keeps state for, and every
//! address it dials where no node answered yet.

use super::MeshEngine;
use crate::cluster::peers::{PeerState, PeerStatus};

impl MeshEngine {
    /// Every peer this engine knows (linked, blipping, recently down) and every address it dials
    /// without an answer yet, sorted by node id then address.
    pub fn peer_statuses(&self) -> Vec<PeerStatus> {
        let st = self.shared.state.lock();
        let live: std::collections::HashSet<_> = st
            .membership
            .live_peers()
            .map(|o| (o.node_id, o.incarnation))
            .collect();
        let mut out: Vec<PeerStatus> = st
            .peers
            .iter()
            .map(|(id, p)| {
                let linked = p.link.as_ref().is_some_and(|l| !l.queue.is_closed());
                let is_live = live.contains(&(id.clone(), p.incarnation));
                PeerStatus {
                    node_id: Some(id.clone()),
                    address: p.listen.clone(),
                    incarnation: Some(p.incarnation),
                    state: match (is_live, linked) {
                        (true, true) => PeerState::Linked,
                        (true, false) => PeerState::Unlinked,
                        (false, _) => PeerState::Down,
                    },
                    unacked_frames: p.window.len(),
                    unacked_bytes: p.window.bytes(),
                }
            })
            .collect();
        for (addr, t) in &st.targets {
            if t.node.is_none() {
                out.push(PeerStatus {
                    node_id: None,
                    address: Some(addr.clone()),
                    incarnation: None,
                    state: PeerState::Unreached,
                    unacked_frames: 0,
                    unacked_bytes: 0,
                });
            }
        }
        out.sort_by(|a, b| (&a.node_id, &a.address).cmp(&(&b.node_id, &b.address)));
        out
    }
}

/// One address the operator gave (`cluster.mesh.peers`, or found through `peers_dns`): whether it
/// is linked, and the last error while it is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredPeer {
    /// The address as given (`host:port`).
    pub address: String,
    /// Linked now.
    pub up: bool,
    /// The error of the last attempt, while the address cannot be reached (`None` when linked or
    /// not tried yet).
    pub error: Option<String>,
}

impl MeshEngine {
    /// The addresses the operator gave (configured peers and the addresses of `peers_dns` names),
    /// sorted, with whether each is linked. Bounded by the configuration (and the DNS answers);
    /// the node's own address is never among them.
    pub fn configured_peers(&self) -> Vec<ConfiguredPeer> {
        let st = self.shared.state.lock();
        let mut out: Vec<ConfiguredPeer> = st
            .targets
            .iter()
            .filter_map(|(addr, t)| {
                let reach = t.reach.as_ref()?;
                Some(ConfiguredPeer {
                    address: addr.clone(),
                    up: reach.is_up(),
                    error: reach.unreachable().map(str::to_owned),
                })
            })
            .collect();
        out.sort_by(|a, b| a.address.cmp(&b.address));
        out
    }
}
