//! The Presence protocol's side of the seam: [`PresenceEvent`]s as envelope payloads (postcard),
//! remote events applied with their origin, dead peers purged, snapshots for new peers.

use crate::log_text::Printable;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::Outlet;
use super::adapter::Adapter;
use super::envelope::{Envelope, Kind, Origin};
use crate::hub::roster::{Member, RemoteOrigin};
use crate::metrics::{self, Protocol::Presence};
use crate::protocol::json::Payload;
use crate::protocol::presence::{PROTOCOL_NAME, PresenceEvent, PresenceProtocol, SnapshotMember};
use crate::relay::Relay;

/// Most Presence publishes and invitations held per peer while its snapshot is awaited.
const MAX_HELD: usize = 10_000;

/// Relays a [`PresenceProtocol`] through a cluster.
///
/// After a peer comes up (from this node's point of view) its snapshot is asked for. Until it
/// arrives, the peer's state changes are older than it (it is sent after them on the same ordered
/// link) and are dropped, and its publishes and invitations are held and delivered right after the
/// snapshot: a client never sees a message from a member it was not told about.
pub struct PresenceAdapter {
    protocol: PresenceProtocol,
    /// Nodes whose members this node may hold replicas of (purged on detach).
    seen: Mutex<HashSet<Arc<str>>>,
    /// Peers whose snapshot is awaited, with the publishes and invitations held meanwhile.
    awaiting: Mutex<HashMap<Arc<str>, Vec<PresenceEvent>>>,
    /// Since when (or since the last request) each awaited snapshot has been awaited.
    awaited_since: Mutex<HashMap<Arc<str>, std::time::Instant>>,
    /// Where this protocol's events go while attached.
    outlet: Mutex<Option<Arc<Outlet>>>,
    /// Held while a relay event is sent and while a snapshot is taken and sent, so a change is
    /// either in a snapshot or sent after it, never sent before a snapshot that misses it.
    send_lock: Arc<Mutex<()>>,
}

impl PresenceAdapter {
    /// An adapter for `protocol`.
    pub fn new(protocol: PresenceProtocol) -> Arc<Self> {
        Arc::new(Self {
            protocol,
            seen: Mutex::new(HashSet::new()),
            awaiting: Mutex::new(HashMap::new()),
            awaited_since: Mutex::new(HashMap::new()),
            outlet: Mutex::new(None),
            send_lock: Arc::new(Mutex::new(())),
        })
    }
}

struct PresenceRelay {
    outlet: Arc<Outlet>,
    send_lock: Arc<Mutex<()>>,
}

impl Relay<PresenceEvent> for PresenceRelay {
    fn relay(&self, event: &PresenceEvent) {
        let (kind, payload) = encode(event);
        let _ordered = self.send_lock.lock();
        match event {
            PresenceEvent::Invitation { target_node, .. } => {
                self.outlet.send_to(target_node, kind, payload)
            }
            _ => self.outlet.send_all(kind, payload),
        }
    }
}

impl Adapter for PresenceAdapter {
    fn protocol_name(&self) -> &'static str {
        PROTOCOL_NAME
    }

    fn attach(&self, outlet: Arc<Outlet>) {
        *self.outlet.lock() = Some(outlet.clone());
        self.protocol.attach_relay(Arc::new(PresenceRelay {
            outlet,
            send_lock: self.send_lock.clone(),
        }));
    }

    fn detach(&self) {
        self.protocol.detach_relay();
        self.awaiting.lock().clear();
        self.awaited_since.lock().clear();
        // Peers drop their replicas of this node's members: an empty snapshot says "none".
        if let Some(outlet) = self.outlet.lock().take() {
            let (kind, payload) = encode(&PresenceEvent::Snapshot {
                members: Vec::new(),
            });
            outlet.send_all(kind, payload);
        }
        let seen: Vec<Arc<str>> = self.seen.lock().drain().collect();
        for node in seen {
            self.protocol.purge_node(&node);
        }
    }

    fn handles(&self, kind: Kind) -> bool {
        matches!(kind, Kind::PresenceDelta | Kind::PresenceSnapshot)
    }

    fn on_remote(&self, envelope: &Envelope) {
        let Some(event) = decode(&envelope.payload) else {
            metrics::dropped(Presence, "undecodable");
            tracing::debug!(origin = %Printable(&envelope.origin.node_id), "undecodable presence envelope dropped");
            return;
        };
        self.seen.lock().insert(envelope.origin.node_id.clone());
        let origin = RemoteOrigin {
            node_id: envelope.origin.node_id.clone(),
            incarnation: envelope.origin.incarnation,
        };
        let release = {
            let mut awaiting = self.awaiting.lock();
            match awaiting.get_mut(&envelope.origin.node_id) {
                None => None,
                Some(held) => match event {
                    PresenceEvent::Snapshot { .. } => {
                        self.awaited_since.lock().remove(&envelope.origin.node_id);
                        Some(
                            awaiting
                                .remove(&envelope.origin.node_id)
                                .unwrap_or_default(),
                        )
                    }
                    PresenceEvent::Publish { .. } | PresenceEvent::Invitation { .. } => {
                        if held.len() >= MAX_HELD {
                            held.remove(0);
                            metrics::dropped(Presence, "held_overflow");
                            tracing::debug!(origin = %Printable(&origin.node_id), "too many presence messages held for a snapshot: oldest dropped");
                        }
                        held.push(event);
                        return;
                    }
                    _ => {
                        tracing::debug!(origin = %Printable(&origin.node_id), "presence change older than the awaited snapshot dropped");
                        return;
                    }
                },
            }
        };
        self.protocol.apply_remote(&event, &origin);
        for e in release.unwrap_or_default() {
            self.protocol.apply_remote(&e, &origin);
        }
    }

    fn peer_up(&self, peer: &Origin) {
        self.awaiting
            .lock()
            .insert(peer.node_id.clone(), Vec::new());
        self.awaited_since
            .lock()
            .insert(peer.node_id.clone(), std::time::Instant::now());
    }

    fn overdue_snapshots(&self, after: std::time::Duration) -> Vec<Arc<str>> {
        let now = std::time::Instant::now();
        let mut since = self.awaited_since.lock();
        let overdue: Vec<Arc<str>> = since
            .iter()
            .filter(|(_, t)| now.duration_since(**t) > after)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &overdue {
            since.insert(n.clone(), now);
        }
        overdue
    }

    fn peer_down(&self, peer: &Origin) {
        self.seen.lock().remove(&peer.node_id);
        self.awaiting.lock().remove(&peer.node_id);
        self.awaited_since.lock().remove(&peer.node_id);
        let purged = self.protocol.purge_node(&peer.node_id);
        if purged > 0 {
            tracing::info!(peer = %Printable(&peer.node_id), members = purged, "presence members of a departed node purged");
        }
    }

    fn send_snapshot(&self, outlet: &Outlet, node: &str) {
        let _ordered = self.send_lock.lock();
        let (kind, payload) = encode(&self.protocol.snapshot());
        outlet.send_to(node, kind, payload);
    }
}

#[derive(Serialize, Deserialize)]
struct WireMember {
    id: String,
    name: String,
    info: String,
}

#[derive(Serialize, Deserialize)]
enum WirePayload {
    Raw(String),
    Text(String),
}

#[derive(Serialize, Deserialize)]
enum WireEvent {
    MemberNew(WireMember),
    MemberRemove(WireMember),
    ChannelMemberNew(WireMember, String),
    ChannelMemberRemove(WireMember, String),
    Publish {
        channel: String,
        message: WirePayload,
        member: WireMember,
    },
    Invitation {
        channel: String,
        inviter: WireMember,
        target: String,
        target_node: String,
    },
    Snapshot(Vec<(WireMember, Vec<String>)>),
}

fn wm(m: &Member) -> WireMember {
    WireMember {
        id: m.id.to_string(),
        name: m.name.to_string(),
        info: m.info.to_string(),
    }
}

fn mm(w: WireMember) -> Member {
    Member::new(w.id, w.name, w.info)
}

/// Encodes an event as (kind, payload).
pub(crate) fn encode(event: &PresenceEvent) -> (Kind, Bytes) {
    let (kind, wire) = match event {
        PresenceEvent::MemberNew { member } => {
            (Kind::PresenceDelta, WireEvent::MemberNew(wm(member)))
        }
        PresenceEvent::MemberRemove { member } => {
            (Kind::PresenceDelta, WireEvent::MemberRemove(wm(member)))
        }
        PresenceEvent::ChannelMemberNew { member, channel } => (
            Kind::PresenceDelta,
            WireEvent::ChannelMemberNew(wm(member), channel.to_string()),
        ),
        PresenceEvent::ChannelMemberRemove { member, channel } => (
            Kind::PresenceDelta,
            WireEvent::ChannelMemberRemove(wm(member), channel.to_string()),
        ),
        PresenceEvent::Publish {
            channel,
            message,
            member,
        } => (
            Kind::PresenceDelta,
            WireEvent::Publish {
                channel: channel.to_string(),
                message: match message {
                    Payload::Raw(s) => WirePayload::Raw(s.clone()),
                    Payload::Text(s) => WirePayload::Text(s.clone()),
                },
                member: wm(member),
            },
        ),
        PresenceEvent::Invitation {
            channel,
            inviter,
            target,
            target_node,
        } => (
            Kind::PresenceDelta,
            WireEvent::Invitation {
                channel: channel.to_string(),
                inviter: wm(inviter),
                target: target.to_string(),
                target_node: target_node.to_string(),
            },
        ),
        PresenceEvent::Snapshot { members } => (
            Kind::PresenceSnapshot,
            WireEvent::Snapshot(
                members
                    .iter()
                    .map(|s| {
                        (
                            wm(&s.member),
                            s.channels.iter().map(|c| c.to_string()).collect(),
                        )
                    })
                    .collect(),
            ),
        ),
    };
    (
        kind,
        Bytes::from(postcard::to_stdvec(&wire).unwrap_or_default()),
    )
}

/// Decodes a payload; `None` when it is not a presence event.
pub(crate) fn decode(payload: &[u8]) -> Option<PresenceEvent> {
    let wire: WireEvent = postcard::from_bytes(payload).ok()?;
    Some(match wire {
        WireEvent::MemberNew(m) => PresenceEvent::MemberNew { member: mm(m) },
        WireEvent::MemberRemove(m) => PresenceEvent::MemberRemove { member: mm(m) },
        WireEvent::ChannelMemberNew(m, c) => PresenceEvent::ChannelMemberNew {
            member: mm(m),
            channel: Arc::from(c),
        },
        WireEvent::ChannelMemberRemove(m, c) => PresenceEvent::ChannelMemberRemove {
            member: mm(m),
            channel: Arc::from(c),
        },
        WireEvent::Publish {
            channel,
            message,
            member,
        } => PresenceEvent::Publish {
            channel: Arc::from(channel),
            message: match message {
                WirePayload::Raw(s) => Payload::Raw(s),
                WirePayload::Text(s) => Payload::Text(s),
            },
            member: mm(member),
        },
        WireEvent::Invitation {
            channel,
            inviter,
            target,
            target_node,
        } => PresenceEvent::Invitation {
            channel: Arc::from(channel),
            inviter: mm(inviter),
            target: Arc::from(target),
            target_node: Arc::from(target_node),
        },
        WireEvent::Snapshot(members) => PresenceEvent::Snapshot {
            members: members
                .into_iter()
                .map(|(m, chans)| SnapshotMember {
                    member: mm(m),
                    channels: chans.into_iter().map(Arc::from).collect(),
                })
                .collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_awaited_too_long_is_overdue_once_per_period_until_it_arrives() {
        use crate::protocol::presence::{PresenceConfig, PresenceProtocol};
        let adapter = PresenceAdapter::new(PresenceProtocol::new(PresenceConfig::default()));
        let peer = Origin {
            node_id: Arc::from("b"),
            incarnation: 7,
        };
        let after = std::time::Duration::from_millis(20);
        assert!(adapter.overdue_snapshots(after).is_empty());
        adapter.peer_up(&peer);
        assert!(adapter.overdue_snapshots(after).is_empty(), "not yet");
        std::thread::sleep(after * 2);
        assert_eq!(adapter.overdue_snapshots(after), [Arc::from("b")]);
        assert!(
            adapter.overdue_snapshots(after).is_empty(),
            "asked again: the wait restarts"
        );
        let (kind, payload) = encode(&PresenceEvent::Snapshot {
            members: Vec::new(),
        });
        adapter.on_remote(&Envelope {
            kind,
            origin: peer.clone(),
            seq: 1,
            payload,
        });
        std::thread::sleep(after * 2);
        assert!(adapter.overdue_snapshots(after).is_empty(), "arrived");
    }

    #[test]
    fn every_event_round_trips() {
        let m = Member::new("G1", "alice", "line\r\n");
        let events = vec![
            PresenceEvent::MemberNew { member: m.clone() },
            PresenceEvent::MemberRemove { member: m.clone() },
            PresenceEvent::ChannelMemberNew {
                member: m.clone(),
                channel: Arc::from("room"),
            },
            PresenceEvent::ChannelMemberRemove {
                member: m.clone(),
                channel: Arc::from("room"),
            },
            PresenceEvent::Publish {
                channel: Arc::from(""),
                message: Payload::Raw("{\"a\":1}".into()),
                member: m.clone(),
            },
            PresenceEvent::Invitation {
                channel: Arc::from("room"),
                inviter: m.clone(),
                target: Arc::from("G2"),
                target_node: Arc::from("n2"),
            },
            PresenceEvent::Snapshot {
                members: vec![SnapshotMember {
                    member: m,
                    channels: vec![Arc::from("a"), Arc::from("b")],
                }],
            },
        ];
        for e in events {
            let (_, bytes) = encode(&e);
            assert_eq!(decode(&bytes), Some(e));
        }
        assert_eq!(decode(b"\xff\xff\xff"), None);
    }
}
