//! Lifecycle webhooks: connections opened and closed, Presence members and channel memberships
//! coming and going, Presence channels occupied and vacated, POSTed as signed JSON batches to one
//! URL (`[webhooks]`), at least once.
//!
//! - [`event`]: the event types, their JSON and their ids; [`config`]: the options.
//! - [`queue`] and [`takeover`]: the decisions, sans I/O (what is sent, dropped, retried; which
//!   survivor reports a crashed node's events).
//! - [`client`] and `sender`: the I/O (one POST; the task that drains the queue).
//!
//! Each node reports what happens on it, from the protocols' application events (the protocols
//! know nothing of webhooks). A node that stops cleanly reports its own clients' departures before
//! it exits. A node that crashes cannot: every survivor computes its events from the Presence
//! replica before purging it, and one survivor sends them ([`takeover`]), through the cluster
//! [`Adapter`] this module provides ([`Webhooks::adapter`]).

pub mod client;
pub mod config;
pub mod event;
pub mod queue;
mod sender;
pub mod takeover;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::cluster::envelope::{Envelope, Kind, Origin};
use crate::cluster::membership::DownReason;
use crate::cluster::{Adapter, Outlet};
use crate::hub::roster::Member;
use crate::log_text::Printable;
use crate::protocol::presence::{AppEvent, NodeHoldings, PresenceProtocol};
use crate::protocol::sgc::SgcProtocol;
use crate::transport::Connection;

pub use config::WebhooksConfig;
pub use event::{Event, EventType, Subject};
pub use sender::signature;
use takeover::{SetKey, Takeover};

/// The events of a crashed node, in the order they are sent: for each member (in arrival order)
/// its channel leaves then its own leave, then the channels it alone occupied.
pub fn crashed_node_events(
    node: &Arc<str>,
    incarnation: u64,
    held: &NodeHoldings,
    reported_by: &Arc<str>,
    time_ms: u64,
) -> Vec<Event> {
    let make = |kind, subject: Subject| Event {
        id: event::event_id(node, incarnation, kind, &subject, event::IdSource::Takeover),
        kind,
        time_ms,
        node: node.clone(),
        reported_by: Some(reported_by.clone()),
        subject,
    };
    let mut out = Vec::new();
    for m in &held.members {
        let mut channels = m.channels.clone();
        channels.sort();
        for c in channels {
            out.push(make(
                EventType::ChannelMemberLeft,
                Subject::ChannelMember(m.member.clone(), c),
            ));
        }
        out.push(make(
            EventType::MemberLeft,
            Subject::Member(m.member.clone()),
        ));
    }
    for c in &held.sole_channels {
        out.push(make(EventType::ChannelVacated, Subject::Channel(c.clone())));
    }
    out
}

struct Inner {
    config: WebhooksConfig,
    node: Arc<str>,
    /// Drawn at start: local event ids differ from one run of the node to the next.
    incarnation: u64,
    seq: AtomicU64,
    sender: sender::Sender,
    takeover: Mutex<Takeover>,
    outlet: Mutex<Option<Arc<Outlet>>>,
    presence: Mutex<Option<PresenceProtocol>>,
}

/// The webhooks of one node. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("node", &self.inner.node)
            .field("url", &self.inner.config.url)
            .finish()
    }
}

impl Webhooks {
    /// Starts the sender of node `node` on the current runtime; `Ok(None)` when `config` has no
    /// URL. The error says why the URL or CA file cannot be used.
    pub fn start(config: &WebhooksConfig, node: &str) -> Result<Option<Self>, String> {
        if !config.enabled() {
            return Ok(None);
        }
        let target = client::Target::parse(&config.url)?;
        let client = client::Client::new(
            target,
            &config.ca_file,
            Duration::from_millis(config.timeout_ms.max(1)),
        )?;
        let node: Arc<str> = Arc::from(node);
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let weak = weak.clone();
            let sets_done: sender::SetsDone = Box::new(move |sets| {
                if let Some(inner) = weak.upgrade() {
                    inner.sets_delivered(sets);
                }
            });
            Inner {
                config: config.clone(),
                node: node.clone(),
                incarnation: fastrand::u64(..),
                seq: AtomicU64::new(0),
                sender: sender::Sender::start(
                    sender::Settings {
                        client,
                        secret: config.effective_secret().as_bytes().to_vec(),
                        max_batch: config.max_batch.max(1),
                        queue_bytes: config.queue_bytes,
                    },
                    sets_done,
                ),
                takeover: Mutex::new(Takeover::new(node.clone(), config.queue_bytes)),
                outlet: Mutex::new(None),
                presence: Mutex::new(None),
            }
        });
        Ok(Some(Self { inner }))
    }

    /// Reports the sgc connections opened and closed on this node (installs the protocol's
    /// `on_connected` and `on_disconnected` hooks).
    pub fn observe_sgc(&self, sgc: &SgcProtocol) {
        let w = Arc::downgrade(&self.inner);
        sgc.on_connected(move |c| {
            if let Some(i) = w.upgrade() {
                i.local(EventType::ConnectionOpened, Subject::Connection(c.id_arc()));
            }
        });
        let w = Arc::downgrade(&self.inner);
        sgc.on_disconnected(move |c| {
            if let Some(i) = w.upgrade() {
                i.local(EventType::ConnectionClosed, Subject::Connection(c.id_arc()));
            }
        });
    }

    /// Reports the Presence connections, members, channel memberships and channels of this node
    /// (installs the protocol's event handler), and reads its replica when a node crashes.
    pub fn observe_presence(&self, presence: &PresenceProtocol) {
        *self.inner.presence.lock() = Some(presence.clone());
        let w = Arc::downgrade(&self.inner);
        presence.on_event(move |e| {
            if let Some(i) = w.upgrade() {
                i.presence_event(e);
            }
        });
    }

    /// The cluster side: attach it to the node's [`crate::Cluster`] so crashed nodes' events are
    /// reported by one survivor.
    pub fn adapter(&self) -> Arc<dyn Adapter> {
        Arc::new(WebhooksAdapter {
            inner: self.inner.clone(),
        })
    }

    /// Delivers what is queued until `deadline`, then stops the sender (the node is stopping).
    pub async fn shutdown(&self, deadline: tokio::time::Instant) {
        self.inner.sender.stop(deadline).await;
    }

    /// Events waiting to be delivered.
    pub fn queued(&self) -> usize {
        self.inner.sender.shared().queued()
    }
}

fn local_conn(c: &Option<Connection>) -> bool {
    c.is_some()
}

impl Inner {
    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.config.retry_max_ms)
    }

    /// Queues an event that happened on this node.
    fn local(&self, kind: EventType, subject: Subject) {
        if !self.config.wants(kind) {
            return;
        }
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let e = Event {
            id: event::event_id(
                &self.node,
                self.incarnation,
                kind,
                &subject,
                event::IdSource::Local(n),
            ),
            kind,
            time_ms: event::now_ms(),
            node: self.node.clone(),
            reported_by: None,
            subject,
        };
        self.sender
            .shared()
            .push(e.to_json(), self.deadline(), None);
    }

    /// Presence events caused on this node (those with a local connection); changes replicated
    /// from other nodes are theirs to report.
    fn presence_event(&self, e: &AppEvent) {
        let m = |m: &Member| m.clone();
        match e {
            AppEvent::Connected { connection } => self.local(
                EventType::ConnectionOpened,
                Subject::Connection(connection.id_arc()),
            ),
            AppEvent::Disconnected { connection } => self.local(
                EventType::ConnectionClosed,
                Subject::Connection(connection.id_arc()),
            ),
            AppEvent::NewMember { connection, member } if local_conn(connection) => {
                self.local(EventType::MemberJoined, Subject::Member(m(member)))
            }
            AppEvent::RemoveMember { connection, member } if local_conn(connection) => {
                self.local(EventType::MemberLeft, Subject::Member(m(member)))
            }
            AppEvent::NewChannelMember {
                connection,
                channel,
                member,
            } if local_conn(connection) => self.local(
                EventType::ChannelMemberJoined,
                Subject::ChannelMember(m(member), channel.clone()),
            ),
            AppEvent::RemoveChannelMember {
                connection,
                channel,
                member,
            } if local_conn(connection) => self.local(
                EventType::ChannelMemberLeft,
                Subject::ChannelMember(m(member), channel.clone()),
            ),
            AppEvent::NewChannel {
                connection,
                channel,
            } if local_conn(connection) => self.local(
                EventType::ChannelOccupied,
                Subject::Channel(channel.clone()),
            ),
            AppEvent::ChannelFreed {
                connection,
                channel,
            } if local_conn(connection) => {
                self.local(EventType::ChannelVacated, Subject::Channel(channel.clone()))
            }
            _ => {}
        }
    }

    /// Node `peer` is gone for `reason`; `live` are the nodes still live.
    fn peer_gone(&self, peer: &Origin, reason: DownReason, live: &[Origin]) {
        // A node that says bye reports its own departures; a local stop is not a death.
        if matches!(reason, DownReason::Bye | DownReason::LocalStop) {
            return;
        }
        let held = match &*self.presence.lock() {
            Some(p) => p.node_holdings(&peer.node_id),
            None => NodeHoldings::default(),
        };
        let events: Vec<Event> = crashed_node_events(
            &peer.node_id,
            peer.incarnation,
            &held,
            &self.node,
            event::now_ms(),
        )
        .into_iter()
        .filter(|e| self.config.wants(e.kind))
        .collect();
        let live: Vec<Arc<str>> = live.iter().map(|o| o.node_id.clone()).collect();
        let key = SetKey {
            node: peer.node_id.clone(),
            incarnation: peer.incarnation,
        };
        // Kept a little longer than the sender retries, so a takeover can still find them.
        let keep_for = Duration::from_millis(
            self.config
                .retry_max_ms
                .saturating_add(self.config.timeout_ms.saturating_mul(2)),
        );
        let decision = self
            .takeover
            .lock()
            .node_died(key, events, &live, Instant::now(), keep_for);
        if decision.dropped > 0 {
            crate::metrics::webhook_dropped("queue_full", decision.dropped);
        }
        for (set, events) in decision.send {
            tracing::info!(
                node = %Printable(&set.node),
                events = events.len(),
                "reporting the lifecycle webhooks of a departed node"
            );
            for e in events {
                self.sender
                    .shared()
                    .push(e.to_json(), self.deadline(), Some(set.clone()));
            }
        }
    }

    /// This node's queue finished `sets`: the other survivors may drop their copies.
    fn sets_delivered(&self, sets: Vec<SetKey>) {
        let outlet = self.outlet.lock().clone();
        for set in sets {
            self.takeover.lock().delivered(&set);
            if let Some(o) = &outlet {
                o.send_all(Kind::WebhooksDelivered, encode_set(&set));
            }
        }
    }
}

fn encode_set(set: &SetKey) -> Bytes {
    Bytes::from(postcard::to_stdvec(&(set.node.as_ref(), set.incarnation)).unwrap_or_default())
}

fn decode_set(payload: &[u8]) -> Option<SetKey> {
    let (node, incarnation): (String, u64) = postcard::from_bytes(payload).ok()?;
    Some(SetKey {
        node: Arc::from(node),
        incarnation,
    })
}

/// The webhooks' side of the cluster seam: crashed nodes' events, and "delivered" notices.
struct WebhooksAdapter {
    inner: Arc<Inner>,
}

impl Adapter for WebhooksAdapter {
    fn protocol_name(&self) -> &'static str {
        "webhooks"
    }

    fn attach(&self, outlet: Arc<Outlet>) {
        *self.inner.outlet.lock() = Some(outlet);
    }

    fn detach(&self) {
        *self.inner.outlet.lock() = None;
    }

    fn handles(&self, kind: Kind) -> bool {
        kind == Kind::WebhooksDelivered
    }

    fn on_remote(&self, envelope: &Envelope) {
        match decode_set(&envelope.payload) {
            Some(set) => self.inner.takeover.lock().delivered(&set),
            None => tracing::debug!(
                origin = %Printable(&envelope.origin.node_id),
                "undecodable webhooks notice dropped"
            ),
        }
    }

    fn before_peer_down(&self, peer: &Origin, reason: DownReason, live: &[Origin]) {
        self.inner.peer_gone(peer, reason, live);
    }

    fn peer_down(&self, _peer: &Origin) {}

    fn send_snapshot(&self, _outlet: &Outlet, _node: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::presence::SnapshotMember;

    #[test]
    fn a_crashed_node_s_events_are_its_channel_leaves_leaves_and_vacated_channels() {
        let held = NodeHoldings {
            incarnation: Some(3),
            members: vec![
                SnapshotMember {
                    member: Member::new("m1", "alice", ""),
                    channels: vec![Arc::from("z"), Arc::from("a")],
                },
                SnapshotMember {
                    member: Member::new("m2", "bob", ""),
                    channels: Vec::new(),
                },
            ],
            sole_channels: vec![Arc::from("z")],
        };
        let node: Arc<str> = Arc::from("b");
        let by: Arc<str> = Arc::from("a");
        let events = crashed_node_events(&node, 3, &held, &by, 10);
        let kinds: Vec<(&str, String)> = events
            .iter()
            .map(|e| {
                (
                    e.kind.name(),
                    match &e.subject {
                        Subject::ChannelMember(m, c) => format!("{}@{c}", m.id),
                        Subject::Member(m) => m.id.to_string(),
                        Subject::Channel(c) => c.to_string(),
                        Subject::Connection(c) => c.to_string(),
                    },
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("channel_member_left", "m1@a".to_owned()),
                ("channel_member_left", "m1@z".to_owned()),
                ("member_left", "m1".to_owned()),
                ("member_left", "m2".to_owned()),
                ("channel_vacated", "z".to_owned()),
            ]
        );
        // Another survivor computes the same ids.
        let other: Arc<str> = Arc::from("c");
        let again = crashed_node_events(&node, 3, &held, &other, 99);
        let ids = |v: &[Event]| v.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&events), ids(&again));
    }

    #[test]
    fn set_notices_round_trip() {
        let s = SetKey {
            node: Arc::from("n1"),
            incarnation: 42,
        };
        assert_eq!(decode_set(&encode_set(&s)), Some(s));
        assert_eq!(decode_set(b"\xff"), None);
    }
}
