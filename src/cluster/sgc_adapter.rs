//! The sgc protocol's side of the seam: [`SgcEvent`]s as envelope payloads, retained queues for
//! newly seen peers. A publish travels as a small postcard header followed by the message value
//! exactly as written JSON, so a receiving node never parses it and slices it out without a copy.
//!
//! The header of a publish or broadcast carries its send time (microseconds since the Unix epoch
//! by the origin's clock, taken once per relayed event): the receiver records the delivery lag
//! (`wscluster_backplane_delivery_lag_seconds`, `docs/metrics.md`) once it has fanned the message
//! out. Node clocks may differ: the lag is only as good as their synchronisation (NTP), and a
//! negative one is recorded as 0 and counted.

use crate::log_text::Printable;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::adapter::Adapter;
use super::envelope::{Envelope, Kind, Origin};
use super::gate_timer::{self, GateOwner, GateTimer};
use super::interest::{InterestMsg, InterestTable};
use super::{ChannelRouting, Outlet};
use crate::metrics::{self, Protocol::Sgc};
use crate::protocol::sgc::{
    PROTOCOL_NAME, QueueLevel, RetainedChannel, RetainedSnapshot, SgcBroadcast, SgcEvent,
    SgcProtocol, SgcPublish, Targets,
};
use crate::relay::{InterestGate, InterestReady, Relay};

/// How long a first local subscription waits for peers to acknowledge the new interest before it
/// is confirmed anyway (a peer that does not answer in time is logged).
const GATE_TIMEOUT: Duration = Duration::from_secs(1);

/// Relays an [`SgcProtocol`] through a cluster, with interest routing.
pub struct SgcAdapter {
    protocol: SgcProtocol,
    routing: Arc<Routing>,
    /// Cross-node delivery lag of the publishes and broadcasts received.
    lag: metrics::LagHistogram,
}

/// Which traffic crosses to which peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A channel's live traffic only to peers with subscribers for it (with subscription gating).
    Interest,
    /// Everything to every peer.
    Everything,
}

/// The interest table and the outlet, behind one mutex: sends happen under it so that an
/// interest acknowledgment and the publishes routed by what it acknowledged leave in order.
struct Routing {
    /// This routing's own `Arc`, for timers that must not keep it alive.
    me: Weak<Routing>,
    mode: Mode,
    state: Mutex<RoutingState>,
    /// The deadlines of the gates opened (one task serves them).
    timer: GateTimer,
}

#[derive(Default)]
struct RoutingState {
    table: InterestTable,
    outlet: Option<Arc<Outlet>>,
}

impl SgcAdapter {
    /// An adapter for `protocol`, with interest routing.
    pub fn new(protocol: SgcProtocol) -> Arc<Self> {
        Self::with_interest_routing(protocol, true)
    }

    /// An adapter for `protocol`; without interest routing every publish crosses to every node.
    pub fn with_interest_routing(protocol: SgcProtocol, interest_routing: bool) -> Arc<Self> {
        let mode = if interest_routing {
            Mode::Interest
        } else {
            Mode::Everything
        };
        Arc::new(Self {
            protocol,
            routing: Arc::new_cyclic(|me| Routing {
                me: me.clone(),
                mode,
                state: Mutex::new(RoutingState::default()),
                timer: GateTimer::default(),
            }),
            lag: metrics::LagHistogram::default(),
        })
    }
}

impl Relay<SgcEvent> for Routing {
    fn relay(&self, event: &SgcEvent) {
        let (kind, payload) = encode(event);
        let st = self.state.lock();
        let Some(outlet) = &st.outlet else {
            return;
        };
        // Retained publishes go everywhere (every node keeps the queues); so do publishes and
        // broadcasts to "" (every connection) and keyed publishes (every node remembers the
        // key); a channel's live traffic only where it is wanted.
        let routed = match event {
            SgcEvent::Publish(p) if p.queue == QueueLevel::Level0 && !p.channel.is_empty() => {
                Some(&p.channel)
            }
            SgcEvent::Broadcast(b) if !b.channel.is_empty() => Some(&b.channel),
            _ => None,
        };
        match (routed, outlet.channel_routing()) {
            (Some(channel), ChannelRouting::PerPeer) if self.mode == Mode::Interest => {
                for peer in st.table.route(channel) {
                    outlet.send_to(&peer, kind, payload.clone());
                }
            }
            (Some(channel), ChannelRouting::Engine) => outlet.send_channel(channel, kind, payload),
            _ => outlet.send_all(kind, payload),
        }
    }
}

impl InterestGate for Routing {
    fn channel_added(&self, channel: &str, ready: InterestReady) {
        if let Some(outlet) = self.engine_outlet() {
            return outlet.channel_added(channel, ready);
        }
        let token = {
            let mut st = self.state.lock();
            if st.outlet.is_none() {
                drop(st);
                ready();
                return;
            }
            match st.table.open_gate(channel, ready) {
                Err(ready) => {
                    drop(st);
                    ready();
                    return;
                }
                Ok((msg, token)) => {
                    let payload = encode_interest(&msg);
                    if let Some(outlet) = &st.outlet {
                        for peer in st.table.peers() {
                            outlet.send_to(&peer, Kind::Interest, payload.clone());
                        }
                    }
                    token
                }
            }
        };
        self.expire_later(token);
    }

    fn channel_removed(&self, channel: &str) {
        if let Some(outlet) = self.engine_outlet() {
            return outlet.channel_removed(channel);
        }
        let st = self.state.lock();
        if let Some(outlet) = &st.outlet {
            outlet.send_all(
                Kind::Interest,
                encode_interest(&InterestMsg::Remove(channel.to_owned())),
            );
        }
    }
}

impl Routing {
    /// The outlet, when its engine routes channels itself (then interest is the engine's).
    fn engine_outlet(&self) -> Option<Arc<Outlet>> {
        let st = self.state.lock();
        st.outlet
            .as_ref()
            .filter(|o| o.channel_routing() == ChannelRouting::Engine)
            .cloned()
    }

    /// Whether interest is exchanged with peers (mesh interest routing).
    fn per_peer_interest(&self) -> bool {
        self.mode == Mode::Interest
            && self
                .state
                .lock()
                .outlet
                .as_ref()
                .is_some_and(|o| o.channel_routing() == ChannelRouting::PerPeer)
    }

    /// Bounds the wait of gate `token` (acknowledgments open it earlier): one timer task per
    /// adapter, run through the cluster's tasks; when it cannot run (cluster stopped, no
    /// runtime) the gates queued so far expire at once.
    fn expire_later(&self, token: u64) {
        if !self.timer.schedule(token, GATE_TIMEOUT) {
            return;
        }
        let outlet = self.state.lock().outlet.clone();
        let started = outlet.is_some_and(|o| o.spawn(gate_timer::run(self.me.clone())));
        if !started {
            for token in self.timer.not_started() {
                let ready = self.state.lock().table.expire(token);
                if let Some(ready) = ready {
                    ready();
                }
            }
        }
    }
}

impl GateOwner for Routing {
    fn gate_timer(&self) -> &GateTimer {
        &self.timer
    }

    fn expire_gate(&self, token: u64) {
        let ready = self.state.lock().table.expire(token);
        if let Some(ready) = ready {
            tracing::warn!(
                token,
                "peers did not acknowledge a new channel interest in time"
            );
            ready();
        }
    }
}

impl Adapter for SgcAdapter {
    fn protocol_name(&self) -> &'static str {
        PROTOCOL_NAME
    }

    fn attach(&self, outlet: Arc<Outlet>) {
        let routing = outlet.channel_routing();
        self.routing.state.lock().outlet = Some(outlet.clone());
        self.protocol.attach_relay(self.routing.clone());
        if routing == ChannelRouting::Engine {
            self.protocol.attach_interest_gate(self.routing.clone());
            // Channels that already have subscribers (the gate only hears of new ones).
            for channel in self.protocol.local_interest() {
                outlet.channel_added(&channel, Box::new(|| {}));
            }
        } else if self.routing.per_peer_interest() {
            self.protocol.attach_interest_gate(self.routing.clone());
        }
    }

    fn detach(&self) {
        self.protocol.detach_relay();
        self.routing.state.lock().outlet = None;
        self.protocol.detach_interest_gate();
    }

    fn handles(&self, kind: Kind) -> bool {
        matches!(
            kind,
            Kind::SgcPublish
                | Kind::SgcPublishOnce
                | Kind::SgcBroadcast
                | Kind::SgcClearQueue
                | Kind::SgcRetainedSnapshot
                | Kind::Interest
        )
    }

    fn on_remote(&self, envelope: &Envelope) {
        match envelope.kind {
            Kind::SgcRetainedSnapshot => match decode_snapshot(&envelope.payload) {
                Some(s) => self.protocol.import_retained(&s),
                None => {
                    metrics::dropped(Sgc, "undecodable");
                    tracing::debug!(origin = %Printable(&envelope.origin.node_id), "undecodable retained snapshot dropped")
                }
            },
            Kind::Interest => {
                let Ok(msg) = postcard::from_bytes::<InterestMsg>(&envelope.payload) else {
                    metrics::dropped(Sgc, "undecodable");
                    tracing::debug!(origin = %Printable(&envelope.origin.node_id), "undecodable interest message dropped");
                    return;
                };
                let opened = {
                    let mut st = self.routing.state.lock();
                    let (reply, opened) = st.table.receive(&envelope.origin.node_id, msg);
                    if let (Some(reply), Some(outlet)) = (reply, &st.outlet) {
                        outlet.send_to(
                            &envelope.origin.node_id,
                            Kind::Interest,
                            encode_interest(&reply),
                        );
                    }
                    opened
                };
                opened.into_iter().for_each(|ready| ready());
            }
            kind => match decode_stamped(kind, &envelope.payload) {
                Some((event, sent_us)) => {
                    self.protocol.apply_remote(&event);
                    self.lag.record(sent_us);
                }
                None => {
                    metrics::dropped(Sgc, "undecodable");
                    tracing::debug!(origin = %Printable(&envelope.origin.node_id), ?kind, "undecodable sgc envelope dropped")
                }
            },
        }
    }

    fn peer_up(&self, peer: &Origin) {
        self.routing.state.lock().table.peer_up(&peer.node_id);
    }

    fn peer_down(&self, peer: &Origin) {
        let opened = self.routing.state.lock().table.peer_down(&peer.node_id);
        opened.into_iter().for_each(|ready| ready());
    }

    fn send_snapshot(&self, outlet: &Outlet, node: &str) {
        // Taken before the routing lock (the interest set is read under the protocol's interest
        // mutex, which is held while the routing lock is taken elsewhere); a receiver applies the
        // interest changes it got while waiting for this set on top of it (`InterestTable`).
        let interest: Vec<String> = self
            .protocol
            .local_interest()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let retained = self.protocol.retained_snapshot();
        let per_peer = self.routing.per_peer_interest();
        let _ordered = self.routing.state.lock();
        if per_peer {
            outlet.send_to(
                node,
                Kind::Interest,
                encode_interest(&InterestMsg::Full(interest)),
            );
        }
        if !retained.channels.is_empty() {
            outlet.send_to(node, Kind::SgcRetainedSnapshot, encode_snapshot(&retained));
        }
    }
}

fn encode_interest(msg: &InterestMsg) -> Bytes {
    Bytes::from(postcard::to_stdvec(msg).unwrap_or_default())
}

#[derive(Serialize, Deserialize)]
struct PublishHead<'a> {
    channel: &'a str,
    queue: u8,
    include: Vec<&'a str>,
    exclude: Vec<&'a str>,
    /// Send time, microseconds since the Unix epoch (origin's clock).
    sent_us: u64,
}

/// A keyed publish: the key and its publish id, then the publish head.
#[derive(Serialize, Deserialize)]
struct OnceHead<'a> {
    key: &'a str,
    id: u64,
    #[serde(borrow)]
    publish: PublishHead<'a>,
}

#[derive(Serialize, Deserialize)]
struct BroadcastHead<'a> {
    channel: &'a str,
    qos: Option<&'a str>,
    id: Option<&'a str>,
    include: Vec<&'a str>,
    exclude: Vec<&'a str>,
    /// Send time, microseconds since the Unix epoch (origin's clock).
    sent_us: u64,
}

fn queue_code(q: QueueLevel) -> u8 {
    match q {
        QueueLevel::Level0 => 0,
        QueueLevel::Level1 => 1,
        QueueLevel::Level2 => 2,
    }
}

fn queue_level(c: u8) -> QueueLevel {
    match c {
        1 => QueueLevel::Level1,
        2 => QueueLevel::Level2,
        _ => QueueLevel::Level0,
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn head_then(head: Vec<u8>, message: &Bytes) -> Bytes {
    let mut out = BytesMut::with_capacity(head.len() + message.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(message);
    out.freeze()
}

/// Encodes an event as (kind, payload).
pub(crate) fn encode(event: &SgcEvent) -> (Kind, Bytes) {
    match event {
        SgcEvent::Publish(p) => {
            let head = PublishHead {
                channel: &p.channel,
                queue: queue_code(p.queue),
                include: strs(&p.targets.include),
                exclude: strs(&p.targets.exclude),
                sent_us: metrics::now_micros(),
            };
            (
                Kind::SgcPublish,
                head_then(postcard::to_stdvec(&head).unwrap_or_default(), &p.message),
            )
        }
        SgcEvent::PublishOnce {
            key,
            id,
            publish: p,
        } => {
            let head = OnceHead {
                key,
                id: *id,
                publish: PublishHead {
                    channel: &p.channel,
                    queue: queue_code(p.queue),
                    include: strs(&p.targets.include),
                    exclude: strs(&p.targets.exclude),
                    sent_us: metrics::now_micros(),
                },
            };
            (
                Kind::SgcPublishOnce,
                head_then(postcard::to_stdvec(&head).unwrap_or_default(), &p.message),
            )
        }
        SgcEvent::Broadcast(b) => {
            let head = BroadcastHead {
                channel: &b.channel,
                qos: b.qos.as_deref(),
                id: b.id.as_deref(),
                include: strs(&b.targets.include),
                exclude: strs(&b.targets.exclude),
                sent_us: metrics::now_micros(),
            };
            (
                Kind::SgcBroadcast,
                head_then(postcard::to_stdvec(&head).unwrap_or_default(), &b.message),
            )
        }
        SgcEvent::ClearQueue { channel } => (
            Kind::SgcClearQueue,
            Bytes::from(postcard::to_stdvec(&**channel).unwrap_or_default()),
        ),
    }
}

fn targets(include: Vec<&str>, exclude: Vec<&str>) -> Targets {
    Targets {
        include: include.into_iter().map(str::to_owned).collect(),
        exclude: exclude.into_iter().map(str::to_owned).collect(),
    }
}

/// Decodes a payload of `kind`; `None` when it is not a valid sgc event.
#[cfg(test)]
pub(crate) fn decode(kind: Kind, payload: &Bytes) -> Option<SgcEvent> {
    decode_stamped(kind, payload).map(|(event, _)| event)
}

/// Decodes a payload of `kind` with its send time (0 for events that carry none); `None` when it
/// is not a valid sgc event.
pub(crate) fn decode_stamped(kind: Kind, payload: &Bytes) -> Option<(SgcEvent, u64)> {
    match kind {
        Kind::SgcPublish => {
            let (head, rest) = postcard::take_from_bytes::<PublishHead<'_>>(payload).ok()?;
            let message = payload.slice(payload.len() - rest.len()..);
            let event = SgcEvent::Publish(SgcPublish {
                channel: Arc::from(head.channel),
                message,
                queue: queue_level(head.queue),
                targets: targets(head.include, head.exclude),
            });
            Some((event, head.sent_us))
        }
        Kind::SgcPublishOnce => {
            let (once, rest) = postcard::take_from_bytes::<OnceHead<'_>>(payload).ok()?;
            let message = payload.slice(payload.len() - rest.len()..);
            let head = once.publish;
            let event = SgcEvent::PublishOnce {
                key: Arc::from(once.key),
                id: once.id,
                publish: SgcPublish {
                    channel: Arc::from(head.channel),
                    message,
                    queue: queue_level(head.queue),
                    targets: targets(head.include, head.exclude),
                },
            };
            Some((event, head.sent_us))
        }
        Kind::SgcBroadcast => {
            let (head, rest) = postcard::take_from_bytes::<BroadcastHead<'_>>(payload).ok()?;
            let message = payload.slice(payload.len() - rest.len()..);
            let event = SgcEvent::Broadcast(SgcBroadcast {
                channel: Arc::from(head.channel),
                message,
                qos: head.qos.map(Arc::from),
                id: head.id.map(Arc::from),
                targets: targets(head.include, head.exclude),
            });
            Some((event, head.sent_us))
        }
        Kind::SgcClearQueue => {
            let channel: &str = postcard::from_bytes(payload).ok()?;
            let event = SgcEvent::ClearQueue {
                channel: Arc::from(channel),
            };
            Some((event, 0))
        }
        _ => None,
    }
}

pub(super) fn encode_snapshot(s: &RetainedSnapshot) -> Bytes {
    let wire: Vec<(&str, Vec<&[u8]>)> = s
        .channels
        .iter()
        .map(|c| {
            (
                c.channel.as_str(),
                c.messages.iter().map(|m| &m[..]).collect(),
            )
        })
        .collect();
    Bytes::from(postcard::to_stdvec(&wire).unwrap_or_default())
}

pub(super) fn decode_snapshot(payload: &[u8]) -> Option<RetainedSnapshot> {
    let wire: Vec<(&str, Vec<&[u8]>)> = postcard::from_bytes(payload).ok()?;
    Some(RetainedSnapshot {
        channels: wire
            .into_iter()
            .map(|(c, ms)| RetainedChannel {
                channel: c.to_owned(),
                messages: ms.into_iter().map(Bytes::copy_from_slice).collect(),
            })
            .collect(),
    })
}

#[cfg(test)]
#[path = "sgc_adapter_tests.rs"]
mod tests;
