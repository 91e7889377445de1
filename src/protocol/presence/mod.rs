//! The Presence protocol (`presence.esegece.com`, docs/wire.md §3 and §5.3).
//!
//! - [`frame`]: pure parse of inbound frames and encoders of every outbound frame.
//! - [`errors`]: the error codes and texts.
//! - `requests`: the rules applied to client frames; `remote`: events from other nodes.
//! - [`crate::hub::roster`]: the state (members, channels, memberships, origins).
//! - `effects`: frames, application events and relay events a change produces, carried out after
//!   the state lock is released.
//! - `ack`: the optional server-side acknowledgment mode.
//!
//! Choices the wire reference leaves open are listed in `docs/presence.md`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

mod ack;
mod config;
mod effects;
pub mod errors;
mod event;
pub mod frame;
mod hooks;
mod remote;
mod requests;

pub use crate::hub::roster::{Member, Origin, RemoteOrigin};
pub use config::{AckConfig, PresenceConfig};
pub use errors::PresenceError;
pub use event::{NodeHoldings, PresenceEvent, SnapshotMember};
pub use hooks::{AppEvent, ChannelHook, EventHandler, NewMemberHook, PublishHook};

use self::ack::AckTracker;
use self::effects::Effects;
use self::hooks::Hooks;
use crate::hub::roster::Roster;
use crate::protocol::Protocol;
use crate::protocol::json::Payload;
use crate::relay::{Relay, RelaySlot};
use crate::transport::Connection;

/// The subprotocol token of the Presence protocol.
pub const PROTOCOL_NAME: &str = "presence.esegece.com";

/// The Presence protocol: a cheap, cloneable handle (one `Arc`) shared by the server, the
/// application and the cluster.
#[derive(Clone)]
pub struct PresenceProtocol {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PresenceProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceProtocol")
            .field("roster", &self.inner.state.read().roster)
            .field("relay", &self.inner.relay)
            .finish()
    }
}

/// Everything behind the handle.
pub(crate) struct Inner {
    /// Fixed at construction.
    pub(crate) config: PresenceConfig,
    /// Roster and live connections. Held only for short, non-blocking sections; never while
    /// calling application code.
    pub(crate) state: RwLock<State>,
    /// Installed by the application; read (and the needed closure cloned) per use.
    pub(crate) hooks: RwLock<Hooks>,
    /// The cluster seam.
    pub(crate) relay: RelaySlot<PresenceEvent>,
    /// The acknowledgment mode's bookkeeping; `None` when the mode is off.
    pub(crate) acks: Option<Arc<AckTracker>>,
    /// Publish and delivery counters (`crate::metrics`).
    pub(crate) counters: crate::metrics::PublishCounters,
}

/// The protocol's state.
#[derive(Default)]
pub(crate) struct State {
    /// Members (local and remote), channels, memberships.
    pub(crate) roster: Roster,
    /// Live Presence connections by key, from `on_connect` to `on_disconnect`.
    pub(crate) conns: HashMap<u64, Connection>,
}

impl State {
    /// The live connections with these keys.
    pub(crate) fn conns_of(&self, keys: &[u64]) -> Vec<Connection> {
        keys.iter()
            .filter_map(|k| self.conns.get(k).cloned())
            .collect()
    }
}

impl Inner {
    /// Queues `frame` to every connection in `to`: the same bytes for all, or one copy per
    /// receiver with its own id in acknowledgment mode.
    pub(crate) fn deliver(&self, to: &[Connection], frame: &Bytes) {
        match &self.acks {
            None => {
                for c in to {
                    if c.send_text(frame.clone()).is_err() {
                        tracing::debug!(
                            conn = c.id(),
                            "presence: frame not queued, connection closing"
                        );
                    }
                }
            }
            Some(acks) => {
                for c in to {
                    acks.send(c, frame);
                }
            }
        }
    }
}

impl PresenceProtocol {
    /// A protocol with these options.
    pub fn new(config: PresenceConfig) -> Self {
        let acks = config
            .acknowledgment
            .enabled
            .then(|| AckTracker::new(config.acknowledgment.clone(), config.encode_base64));
        Self {
            inner: Arc::new(Inner {
                config,
                state: RwLock::new(State::default()),
                hooks: RwLock::new(Hooks::default()),
                relay: RelaySlot::default(),
                acks,
                counters: crate::metrics::PublishCounters::new(crate::metrics::Protocol::Presence),
            }),
        }
    }

    /// The options this protocol runs with.
    pub fn config(&self) -> &PresenceConfig {
        &self.inner.config
    }

    /// Applies channel rules (`[[auth.rules]]`) to joins (refused with error 10, like
    /// `OnBeforeNewChannelMember`) and publishes (error 20, like `OnBeforePublishMsg`), before the
    /// application's hooks. Empty rules allow everything.
    pub fn channel_rules(&self, rules: Arc<crate::protocol::access::ChannelRules>) {
        self.inner.hooks.write().rules = (!rules.is_empty()).then_some(rules);
    }

    /// Installs `OnBeforeNewMember`: return `false` to refuse a `member@new` (error 2).
    pub fn on_before_new_member(
        &self,
        hook: impl Fn(&Connection, &Member) -> bool + Send + Sync + 'static,
    ) {
        self.inner.hooks.write().before_new_member = Some(Arc::new(hook));
    }

    /// Installs `OnBeforeNewChannel(conn, channel, member)`: return `false` to refuse a join that
    /// would create the channel (error 6).
    pub fn on_before_new_channel(
        &self,
        hook: impl Fn(&Connection, &str, &Member) -> bool + Send + Sync + 'static,
    ) {
        self.inner.hooks.write().before_new_channel = Some(Arc::new(hook));
    }

    /// Installs `OnBeforeNewChannelMember(conn, channel, member)`: return `false` to refuse a
    /// join (error 10).
    pub fn on_before_join_channel(
        &self,
        hook: impl Fn(&Connection, &str, &Member) -> bool + Send + Sync + 'static,
    ) {
        self.inner.hooks.write().before_join_channel = Some(Arc::new(hook));
    }

    /// Installs `OnBeforePublishMsg(conn, message, channel, member)`: return `false` to refuse a
    /// publish (error 20).
    pub fn on_before_publish(
        &self,
        hook: impl Fn(&Connection, &Payload, &str, &Member) -> bool + Send + Sync + 'static,
    ) {
        self.inner.hooks.write().before_publish = Some(Arc::new(hook));
    }

    /// Installs `OnBeforeSendMembers(conn, channel, member)`: return `false` to refuse a
    /// `get@members` (error 30).
    pub fn on_before_send_members(
        &self,
        hook: impl Fn(&Connection, &str, &Member) -> bool + Send + Sync + 'static,
    ) {
        self.inner.hooks.write().before_send_members = Some(Arc::new(hook));
    }

    /// Installs the handler of every [`AppEvent`] (replacing an earlier one).
    pub fn on_event(&self, handler: impl Fn(&AppEvent) + Send + Sync + 'static) {
        self.inner.hooks.write().on_event = Some(Arc::new(handler));
    }

    /// `Broadcast(text, channel)`: a `publish@msg` from the server, with an empty member
    /// (`{"id":"","name":"","info":""}`), to `channel`'s members, or to every member when
    /// `channel` is empty. `text` is written raw when it is a JSON object or array. Reaches the
    /// members on other nodes through the relay. Returns the number of local receivers.
    pub fn broadcast(&self, text: &str, channel: &str) -> usize {
        let message = Payload::from_text(text);
        let mut fx = Effects::new(&self.inner);
        let member = Member::with_id("");
        let to = {
            let st = self.inner.state.read();
            let keys = if channel.is_empty() {
                st.roster.local_connections()
            } else {
                st.roster.channel_connections(channel)
            };
            st.conns_of(&keys)
        };
        let n = to.len();
        self.inner
            .counters
            .published(crate::metrics::Origin::Local, 1, n);
        fx.send(to, |b64| frame::publish(&message, channel, &member, b64));
        let channel: Arc<str> = Arc::from(channel);
        fx.event(|| AppEvent::Publish {
            connection: None,
            channel: channel.clone(),
            member: member.clone(),
            message: message.clone(),
        });
        fx.relay(|| PresenceEvent::Publish {
            channel,
            message,
            member,
        });
        fx.apply(&self.inner);
        n
    }

    /// The members of `channel` in join order (local and remote); `None` when it does not exist.
    pub fn channel_members(&self, channel: &str) -> Option<Vec<Member>> {
        let list = self.inner.state.read().roster.channel_members(channel)?;
        Some(list.iter().map(effects::owned).collect())
    }

    /// Every member, local and remote, in arrival order.
    pub fn members(&self) -> Vec<Member> {
        let list = self.inner.state.read().roster.members();
        list.iter().map(effects::owned).collect()
    }

    /// Every channel with its member count, sorted by name.
    pub fn channels(&self) -> Vec<(String, usize)> {
        let list = self.inner.state.read().roster.channels();
        list.into_iter().map(|(n, c)| (n.to_string(), c)).collect()
    }

    /// The member with this id.
    pub fn member(&self, id: &str) -> Option<Member> {
        self.inner
            .state
            .read()
            .roster
            .member(id)
            .map(effects::owned)
    }

    /// Where the member with this id lives.
    pub fn member_origin(&self, id: &str) -> Option<Origin> {
        self.inner.state.read().roster.origin(id).cloned()
    }

    /// The member bound to this connection, if it created one.
    pub fn member_of(&self, conn: &Connection) -> Option<Member> {
        self.inner
            .state
            .read()
            .roster
            .member_of_connection(conn.key())
            .map(effects::owned)
    }

    /// The number of members, local and remote.
    pub fn member_count(&self) -> usize {
        self.inner.state.read().roster.member_count()
    }

    /// The number of members bound to this node's connections.
    pub fn local_member_count(&self) -> usize {
        self.inner.state.read().roster.local_connections().len()
    }

    /// Frames sent to `conn` in acknowledgment mode and not yet acknowledged (0 when the mode
    /// is off).
    pub fn pending_acks(&self, conn: &Connection) -> usize {
        self.inner
            .acks
            .as_ref()
            .map_or(0, |a| a.pending_count(conn.key()))
    }

    /// Attaches the cluster relay: from now on every local change is also handed to it.
    pub fn attach_relay(&self, relay: Arc<dyn Relay<PresenceEvent>>) {
        self.inner.relay.attach(relay);
    }

    /// Detaches the relay: the protocol behaves as a single node again (replicas stay until
    /// purged).
    pub fn detach_relay(&self) {
        self.inner.relay.detach();
    }

    /// Applies an event that happened on node `origin`: local clients receive the same frames,
    /// with the same scopes, as for a local change. Never re-emitted to the relay.
    pub fn apply_remote(&self, event: &PresenceEvent, origin: &RemoteOrigin) {
        remote::apply(&self.inner, event, origin);
    }

    /// Removes every member of `node_id` (a dead or departed node): local clients receive the
    /// `channel@member@remove` and `member@remove` frames a disconnection would have produced.
    /// Returns the number of members removed.
    pub fn purge_node(&self, node_id: &str) -> usize {
        remote::purge(&self.inner, node_id)
    }

    /// What node `node_id` holds in this replica (read before a purge: what the purge removes).
    pub fn node_holdings(&self, node_id: &str) -> NodeHoldings {
        remote::holdings(&self.inner, node_id)
    }

    /// This node's local members and their channels, for another node that joins late.
    pub fn snapshot(&self) -> PresenceEvent {
        remote::snapshot(&self.inner)
    }
}

impl Protocol for PresenceProtocol {
    fn name(&self) -> &'static str {
        PROTOCOL_NAME
    }

    /// `limits.max_message_size_presence`.
    fn max_message_size(&self, limits: &crate::transport::limits::LimitsConfig) -> usize {
        limits.max_message_size_presence
    }

    fn on_connect(&self, conn: &Connection) {
        self.inner
            .state
            .write()
            .conns
            .insert(conn.key(), conn.clone());
        let mut fx = Effects::new(&self.inner);
        fx.reply(conn, frame::session(conn.id(), fx.b64));
        fx.event(|| AppEvent::Connected {
            connection: conn.clone(),
        });
        fx.apply(&self.inner);
    }

    fn on_text(&self, conn: &Connection, text: &str) {
        requests::handle(&self.inner, conn, text);
    }

    fn on_disconnect(&self, conn: &Connection) {
        requests::disconnect(&self.inner, conn);
        if let Some(acks) = &self.inner.acks {
            acks.forget(conn.key());
        }
    }

    fn stop(&self) -> crate::protocol::StopFuture<'_> {
        Box::pin(async move {
            if let Some(acks) = &self.inner.acks {
                acks.stop().await;
            }
        })
    }

    fn task_count(&self) -> usize {
        self.inner.acks.as_ref().map_or(0, |a| a.task_count())
    }
}
