//! The sgc protocol (`esegece.com`, docs/wire.md §2 and §5.2): JSON-RPC-shaped pub/sub with channels,
//! retained queues, QoS acknowledgments, transactions and RPC to the application.
//!
//! ## Files, in the order a client frame passes through them
//!
//! - [`inbound`]: parse a client frame (both the Delphi and the JS dialect) into an [`Inbound`].
//! - `dispatch`: the server algorithm of docs/wire.md §2.5 (QoS-2 path, ack, transactions, methods).
//! - `protocol::mask`: channel expansion (comma lists, optional `MatchesMask` patterns), shared with
//!   the channel rules.
//! - `delivery`: publish and broadcast: encode once, store retained, fan out through the
//!   hub (`crate::hub`), emit the relay event.
//! - [`frame`]: encoders of every server frame, S1–S11.
//! - [`retained`], [`qos`], [`transaction`], [`rpc`]: the state each feature keeps, pure.
//! - [`hooks`]: the application's closures; `api`: what the application calls.
//! - [`event`]: what goes to and comes from other nodes.
//!
//! The handle [`SgcProtocol`] is cheap to clone (one `Arc`), `Send + Sync`, and is what you
//! register with the server (`Server::protocol(Arc::new(sgc.clone()))`) and keep for the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::hub::{Hub, Member};
use crate::protocol::Protocol;
use crate::relay::{Relay, RelaySlot};
use crate::transport::Connection;

mod api;
pub mod config;
mod delivery;
mod dispatch;
mod errors;
pub mod event;
pub mod frame;
pub mod hooks;
pub mod idempotency;
pub mod inbound;
mod interest;
pub mod qos;
pub mod retained;
pub mod rpc;
pub mod transaction;

pub use api::ChannelInfo;
pub use config::SgcConfig;
pub use errors::RpcError;
pub use event::{SgcBroadcast, SgcEvent, SgcPublish, Targets};
pub use hooks::{PublishRequest, SubscribeRequest};
pub use idempotency::Claim;
pub use inbound::{Inbound, QueueLevel};
pub use retained::{RetainedChannel, RetainedSnapshot};
pub use rpc::{Notification, RpcRequest};

pub use crate::protocol::json::Payload;

/// The subprotocol token of the sgc protocol.
pub const PROTOCOL_NAME: &str = "esegece.com";

/// The sgc protocol: a cheap, cloneable handle (`Send + Sync`). Register a clone with the server
/// and keep one for the application API (publish, broadcast, RPC replies, hooks, relay).
#[derive(Clone)]
pub struct SgcProtocol {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for SgcProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SgcProtocol")
            .field("connections", &self.inner.hub.member_count())
            .field("relay", &self.inner.relay)
            .finish()
    }
}

/// Everything the protocol shares between connections, hooks, the API and the sweeper.
pub(crate) struct Inner {
    /// The options, fixed at construction.
    pub(crate) config: SgcConfig,
    /// `config.qos_name()`, computed once.
    pub(crate) qos_name: &'static str,
    /// This node's sgc connections, their channels and per-connection state.
    pub(crate) hub: Hub<Session>,
    /// Retained messages by channel.
    pub(crate) retained: RwLock<retained::RetainedQueues>,
    /// The application's closures.
    pub(crate) hooks: RwLock<hooks::Hooks>,
    /// Where events for other nodes go, when a cluster is attached.
    pub(crate) relay: RelaySlot<SgcEvent>,
    /// The cluster's interest gate and the first subscriptions waiting for it.
    pub(crate) interest: interest::Interest,
    /// Whether the QoS resend task was started (it is started on the first tracked frame).
    sweeper: AtomicBool,
    /// The protocol's background tasks (the QoS resend sweeper); stopped by [`Protocol::stop`],
    /// which leaves a new set for the next tracked frame (the protocol may be served again).
    tasks: Mutex<crate::tasks::Tasks>,
    /// Publish and delivery counters (`crate::metrics`).
    pub(crate) counters: crate::metrics::PublishCounters,
    /// Idempotency keys of server-side publishes seen within their window.
    pub(crate) idempotency: Mutex<idempotency::IdempotencyStore>,
}

/// The sgc state of one connection; dropped with its hub member on disconnect, which is how QoS
/// state, pending RPCs and open transactions of a closed connection disappear.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// Server frames with an id waiting for the client's ack (QoS ≥ 1).
    pub(crate) unacked: Mutex<qos::Unacked>,
    /// QoS-2 messages between PubRec and PubRel.
    pub(crate) qos2: Mutex<qos::Qos2Inbox>,
    /// Open transactions by channel.
    pub(crate) transactions: Mutex<transaction::Transactions>,
    /// Ids of RPC requests the application has not answered yet.
    pub(crate) rpcs: Mutex<rpc::PendingRpcs>,
}

impl SgcProtocol {
    /// A protocol with these options.
    pub fn new(config: SgcConfig) -> Self {
        let retained = retained::RetainedQueues::new(retained::RetainedCaps {
            level2_cap: config.queue_level2_cap,
            max_channels: config.max_retained_channels,
            max_bytes_per_channel: config.retained_max_bytes_per_channel,
            max_bytes: config.retained_max_bytes,
        });
        Self {
            inner: Arc::new(Inner {
                qos_name: config.qos_name(),
                config,
                hub: Hub::new(),
                retained: RwLock::new(retained),
                hooks: RwLock::new(hooks::Hooks::default()),
                relay: RelaySlot::default(),
                interest: interest::Interest::default(),
                sweeper: AtomicBool::new(false),
                tasks: Mutex::default(),
                counters: crate::metrics::PublishCounters::new(crate::metrics::Protocol::Sgc),
                idempotency: Mutex::new(idempotency::IdempotencyStore::default()),
            }),
        }
    }

    /// The options this protocol runs with.
    pub fn config(&self) -> &SgcConfig {
        &self.inner.config
    }

    /// Attaches the cluster relay: from now on every publish, broadcast and queue clearing done on
    /// this node (by clients or the API) is handed to it after local delivery.
    pub fn attach_relay(&self, relay: Arc<dyn Relay<SgcEvent>>) {
        self.inner.relay.attach(relay);
    }

    /// Detaches the relay: the protocol behaves as a single node again.
    pub fn detach_relay(&self) {
        self.inner.relay.detach();
    }

    /// Whether a relay is attached.
    pub fn relay_attached(&self) -> bool {
        self.inner.relay.is_attached()
    }

    /// Sends an id'd server frame (S1, S9, S10) and, at QoS 1 or more, tracks it for resending
    /// until the client acknowledges `id`.
    ///
    /// The frame is tracked before it is queued, and resends are queued under the same lock, so an
    /// acknowledgment can never be overtaken: once it is processed, no resend of that frame follows.
    pub(crate) fn send_tracked(&self, member: &Member<Session>, id: &str, frame: Bytes) {
        if self.inner.config.qos_level > 0 {
            let cfg = &self.inner.config;
            let forgot = member.data().unacked.lock().track(
                id,
                frame.clone(),
                Instant::now(),
                cfg.qos_max_pending,
                cfg.qos_max_pending_bytes,
            );
            if forgot {
                member.conn().limit_refused(
                    crate::metrics::Limit::QosPendingBytes,
                    "sgc.qos_max_pending_bytes passed: oldest unacknowledged frame forgotten",
                );
            }
            self.ensure_sweeper();
        }
        let _ = member.conn().send_text(frame);
    }

    /// Starts the QoS resend task once, through the protocol's [`crate::tasks::Tasks`]. It holds
    /// only a `Weak` between scans, so it also ends with the last handle of the protocol. Outside
    /// a Tokio runtime nothing is started (and nothing resent); after [`Protocol::stop`] the next
    /// tracked frame starts it again.
    fn ensure_sweeper(&self) {
        if self.inner.sweeper.load(Ordering::Acquire)
            || self.inner.sweeper.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let interval = self.inner.config.qos_interval();
        let timeout = self.inner.config.qos_timeout();
        let started = self.inner.tasks.lock().try_spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let now = Instant::now();
                for member in inner.hub.members() {
                    // Queued under the lock (a short outbox push each): see `send_tracked`.
                    let unacked = member.data().unacked.lock();
                    for frame in unacked.due(now, timeout) {
                        let _ = member.conn().send_text(frame);
                    }
                }
            }
        });
        if !started {
            self.inner.sweeper.store(false, Ordering::Release);
        }
    }
}

impl Protocol for SgcProtocol {
    fn name(&self) -> &'static str {
        PROTOCOL_NAME
    }

    /// `limits.max_message_size_sgc`.
    fn max_message_size(&self, limits: &crate::transport::limits::LimitsConfig) -> usize {
        limits.max_message_size_sgc
    }

    /// S1 first, then the retained messages of channel `""`, then the application's hook.
    fn on_connect(&self, conn: &Connection) {
        let member = self.inner.hub.join(conn, Session::default());
        self.send_session(&member);
        self.replay_retained(conn, "");
        if let Some(h) = self.hook(|h| &h.connect) {
            h(conn);
        }
    }

    fn on_text(&self, conn: &Connection, text: &str) {
        self.handle_text(conn, text);
    }

    fn on_binary(&self, conn: &Connection, data: Bytes) {
        if let Some(h) = self.hook(|h| &h.binary) {
            h(conn, data);
        }
    }

    fn stop(&self) -> crate::protocol::StopFuture<'_> {
        Box::pin(async move {
            let tasks = std::mem::take(&mut *self.inner.tasks.lock());
            tasks.stop(std::time::Duration::ZERO).await;
            self.inner.sweeper.store(false, Ordering::Release);
        })
    }

    fn task_count(&self) -> usize {
        self.inner.tasks.lock().len()
    }

    /// Drops the connection's QoS state, pending RPCs and transactions, unsubscribes it from
    /// everything (firing the unsubscribe hook per channel), then fires the disconnect hook.
    fn on_disconnect(&self, conn: &Connection) {
        if let Some((_member, channels)) = self.inner.hub.leave(conn.id()) {
            for ch in &channels {
                self.interest_maybe_lost(ch);
            }
            if let Some(h) = self.hook(|h| &h.unsubscribed) {
                for ch in &channels {
                    h(conn, ch);
                }
            }
        }
        if let Some(h) = self.hook(|h| &h.disconnect) {
            h(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn qos1() -> SgcConfig {
        SgcConfig {
            qos_level: 1,
            qos_interval_ms: 5,
            qos_timeout_ms: 0,
            ..SgcConfig::default()
        }
    }

    async fn until(mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not met in time"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn one_sweeper_resends_and_ends_with_the_protocol() {
        let metrics = tokio::runtime::Handle::current().metrics();
        let sgc = SgcProtocol::new(qos1());
        let a = Connection::detached("A", Some(PROTOCOL_NAME));
        let b = Connection::detached("B", Some(PROTOCOL_NAME));
        sgc.on_connect(&a);
        sgc.on_connect(&b);
        assert_eq!(metrics.num_alive_tasks(), 1, "one sweeper per protocol");
        let mut seen = 0;
        until(|| {
            seen += a.drain_sent_text().len();
            seen >= 3
        })
        .await;
        sgc.on_text(
            &a,
            r#"{"jsonrpc":"2.0","result":{"method":"sgc@acknowledgment"},"id":"A"}"#,
        );
        assert_eq!(sgc.unacked_count("A"), 0);
        assert_eq!(sgc.unacked_count("B"), 1);
        drop(sgc);
        until(|| metrics.num_alive_tasks() == 0).await;
    }

    #[tokio::test]
    async fn stop_ends_the_sweeper_and_a_later_frame_starts_a_new_one() {
        let sgc = SgcProtocol::new(qos1());
        sgc.on_connect(&Connection::detached("A", Some(PROTOCOL_NAME)));
        assert_eq!(sgc.task_count(), 1);
        sgc.stop().await;
        assert_eq!(sgc.task_count(), 0, "stopped and waited for");
        sgc.on_connect(&Connection::detached("B", Some(PROTOCOL_NAME)));
        assert_eq!(sgc.task_count(), 1, "served again");
        sgc.stop().await;
        assert_eq!(sgc.task_count(), 0);
    }

    #[test]
    fn outside_a_runtime_nothing_is_spawned_and_rules_still_apply() {
        let sgc = SgcProtocol::new(qos1());
        let a = Connection::detached("A", Some(PROTOCOL_NAME));
        sgc.on_connect(&a);
        assert_eq!(
            a.drain_sent_text(),
            [
                r#"{"jsonrpc":"2.0","result":{"method":"sgc@session","message":"A"},"qos":"qosLevel1","id":"A"}"#
            ]
        );
        sgc.on_text(
            &a,
            r#"{"jsonrpc":"2.0","method":"sgc@subscribe","params":{"channel":"c"}}"#,
        );
        sgc.on_text(
            &a,
            r#"{"jsonrpc":"2.0","method":"sgc@publish","params":{"channel":"c","message":"m"}}"#,
        );
        assert_eq!(
            a.drain_sent_text(),
            [
                r#"{"jsonrpc":"2.0","result":{"method":"sgc@subscribe","channel":"c"}}"#,
                r#"{"jsonrpc":"2.0","result":{"method":"sgc@event","channel":"c","message":"m"}}"#,
            ]
        );
        sgc.on_disconnect(&a);
        assert_eq!(sgc.connection_count(), 0);
        assert_eq!(sgc.subscriber_count("c"), 0);
    }
}
