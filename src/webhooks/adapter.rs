//! The webhooks' side of the cluster seam: a crashed node's events computed on every survivor
//! and sent by one ([`super::takeover`]), the "delivered" notices, and the connection lists the
//! nodes tell each other ([`super::connections`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::connections::Notice;
use super::event::{self, Event, EventType, Subject};
use super::takeover::SetKey;
use super::{Inner, WebhooksAdapter};
use crate::cluster::envelope::{Envelope, Kind, Origin};
use crate::cluster::membership::DownReason;
use crate::cluster::{Adapter, Outlet};
use crate::log_text::Printable;
use crate::protocol::presence::NodeHoldings;

/// The events of a crashed node, in the order they are sent: for each member (in arrival order)
/// its channel leaves then its own leave, then its connections closed (sorted), then the channels
/// it alone occupied (sorted).
pub(crate) fn crashed_node_events(
    node: &Arc<str>,
    incarnation: u64,
    held: &NodeHoldings,
    connections: &[Arc<str>],
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
    let mut connections = connections.to_vec();
    connections.sort();
    for c in connections {
        out.push(make(EventType::ConnectionClosed, Subject::Connection(c)));
    }
    for c in &held.sole_channels {
        out.push(make(EventType::ChannelVacated, Subject::Channel(c.clone())));
    }
    out
}

impl Inner {
    /// Node `peer` is gone for `reason`; `live` are the nodes still live. Called before the
    /// cluster's adapters purge it: the Presence replica still holds its members.
    fn peer_gone(&self, peer: &Origin, reason: DownReason, live: &[Origin]) {
        // A node that says bye reports its own departures; a local stop is not a death.
        if matches!(reason, DownReason::Bye | DownReason::LocalStop) {
            return;
        }
        let held = match &*self.presence.lock() {
            Some(p) => p.node_holdings(&peer.node_id),
            None => NodeHoldings::default(),
        };
        let connections = self.replica.lock().of(&peer.node_id);
        let events: Vec<String> = crashed_node_events(
            &peer.node_id,
            peer.incarnation,
            &held,
            &connections,
            &self.node,
            event::now_ms(),
        )
        .into_iter()
        .filter(|e| self.config.wants(e.kind))
        .map(|e| e.to_json())
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
            for json in events {
                self.sender
                    .shared()
                    .push(json, self.deadline(), Some(set.clone()));
            }
        }
    }

    /// This node's queue finished `sets`: the other survivors may drop their copies.
    pub(super) fn sets_delivered(&self, sets: Vec<SetKey>) {
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
        matches!(kind, Kind::WebhooksDelivered | Kind::WebhooksConnections)
    }

    fn on_remote(&self, envelope: &Envelope) {
        let origin = &envelope.origin;
        if envelope.kind == Kind::WebhooksConnections {
            let Some(notice) = Notice::decode(&envelope.payload) else {
                tracing::debug!(origin = %Printable(&origin.node_id), "undecodable webhooks notice dropped");
                return;
            };
            let refused =
                self.inner
                    .replica
                    .lock()
                    .apply(&origin.node_id, origin.incarnation, notice);
            if refused > 0 {
                crate::metrics::webhook_dropped("replica_full", refused);
            }
            return;
        }
        match decode_set(&envelope.payload) {
            Some(set) => self.inner.takeover.lock().delivered(&set),
            None => {
                tracing::debug!(origin = %Printable(&origin.node_id), "undecodable webhooks notice dropped")
            }
        }
    }

    fn before_peer_down(
        &self,
        peer: &Origin,
        reason: DownReason,
        live: &[Origin],
        connected: bool,
    ) {
        if !connected {
            // Every peer looks dead to a node that lost Redis: reporting them would announce
            // every member of the cluster gone. Their departures are not reported.
            tracing::warn!(
                node = %Printable(&peer.node_id),
                "this node is cut off from its backplane: the departed node's webhooks are not reported (it may be alive)"
            );
            return;
        }
        self.inner.peer_gone(peer, reason, live);
    }

    fn peer_down(&self, peer: &Origin) {
        self.inner.replica.lock().forget(&peer.node_id);
    }

    fn send_snapshot(&self, outlet: &Outlet, node: &str) {
        if !self.inner.config.wants(EventType::ConnectionClosed) {
            return;
        }
        let local = self.inner.local_conns.lock();
        let all = Notice::All(local.iter().map(|c| c.to_string()).collect());
        outlet.send_to(node, Kind::WebhooksConnections, Bytes::from(all.encode()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::roster::Member;
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
        let conns = [Arc::from("G2"), Arc::from("G1")];
        let events = crashed_node_events(&node, 3, &held, &conns, &by, 10);
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
                ("connection_closed", "G1".to_owned()),
                ("connection_closed", "G2".to_owned()),
                ("channel_vacated", "z".to_owned()),
            ]
        );
        // Another survivor computes the same ids.
        let other: Arc<str> = Arc::from("c");
        let again = crashed_node_events(&node, 3, &held, &conns, &other, 99);
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
