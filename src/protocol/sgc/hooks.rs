//! Application hooks: the reference server's events (`OnBeforeSubscription`, `OnBeforePublish`,
//! `OnRPC`, …) as closures set on the [`SgcProtocol`] handle.
//!
//! Hooks are plain synchronous closures called on the connection's reader task, in the order the
//! client's frames arrive. They must not block: answer an RPC later from a spawned task
//! ([`RpcRequest`] is `Send + Clone`), and hand slow work to a task or channel. Hooks may call the
//! protocol's API (publish, broadcast, …); no protocol lock is held while a hook runs.
//!
//! The connection hooks are named `on_connected`, `on_disconnected` and `on_binary_message` so they
//! do not shadow the [`crate::protocol::Protocol`] methods the transport calls.

use std::sync::Arc;

use bytes::Bytes;

use crate::protocol::access::ChannelRules;
use crate::protocol::json::Payload;
use crate::transport::Connection;

use super::SgcProtocol;
use super::inbound::QueueLevel;
use super::rpc::{Notification, RpcRequest};

/// A client's publish as `before_publish` sees it; the hook may rewrite the channel and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest {
    /// The requested channel (before comma split or mask expansion).
    pub channel: String,
    /// The message; set it with [`Payload::from_text`] (raw JSON when it parses as an object or
    /// array) to rewrite it.
    pub message: Payload,
    /// The requested queue level.
    pub queue: QueueLevel,
}

/// A client's subscription to one concrete channel as `before_subscribe` sees it; the hook may
/// rewrite the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    /// The channel asked for (one entry of a comma list, or one channel a wildcard mask matched).
    /// Rewrite it to subscribe the connection to another channel instead: the confirmation (S3),
    /// the retained replay and every later delivery then name the new channel.
    pub channel: String,
}

type Decide = Arc<dyn Fn(&Connection, &str) -> bool + Send + Sync>;
type BeforeSubscribe = Arc<dyn Fn(&Connection, &mut SubscribeRequest) -> bool + Send + Sync>;
type Notice = Arc<dyn Fn(&Connection, &str) + Send + Sync>;
type ConnEvent = Arc<dyn Fn(&Connection) + Send + Sync>;
type BeforePublish = Arc<dyn Fn(&Connection, &mut PublishRequest) -> bool + Send + Sync>;
type OnMessage = Arc<dyn Fn(&Connection, &Payload) + Send + Sync>;
type OnRpc = Arc<dyn Fn(RpcRequest) + Send + Sync>;
type OnNotification = Arc<dyn Fn(&Connection, &Notification) + Send + Sync>;
type OnBinary = Arc<dyn Fn(&Connection, Bytes) + Send + Sync>;

/// The hooks set on a protocol. Cloning copies `Arc`s only.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) before_subscribe: Option<BeforeSubscribe>,
    pub(crate) before_publish: Option<BeforePublish>,
    pub(crate) subscribed: Option<Notice>,
    pub(crate) unsubscribed: Option<Notice>,
    pub(crate) connect: Option<ConnEvent>,
    pub(crate) disconnect: Option<ConnEvent>,
    pub(crate) message: Option<OnMessage>,
    pub(crate) rpc: Option<OnRpc>,
    pub(crate) notification: Option<OnNotification>,
    pub(crate) rpc_auth: Option<Decide>,
    pub(crate) binary: Option<OnBinary>,
    pub(crate) acknowledgment: Option<Notice>,
    /// The channel rules, asked before the subscribe and publish hooks.
    pub(crate) rules: Option<Arc<ChannelRules>>,
}

impl SgcProtocol {
    fn set_hook(&self, set: impl FnOnce(&mut Hooks)) -> &Self {
        set(&mut self.inner.hooks.write());
        self
    }

    /// Applies channel rules (`[[auth.rules]]`): a subscribe to a channel they refuse is refused
    /// like `OnBeforeSubscription` saying no (silently), a publish or broadcast to one is dropped
    /// like `OnBeforePublish` saying no. Asked before the hooks; empty rules allow everything.
    pub fn channel_rules(&self, rules: Arc<ChannelRules>) -> &Self {
        self.set_hook(|h| h.rules = (!rules.is_empty()).then_some(rules))
    }

    /// `OnBeforeSubscription`: asked for every concrete channel of a subscribe. Returning false
    /// refuses it silently (no S3, no retained replay); the hook may rewrite the channel
    /// ([`SubscribeRequest::channel`]), which must then pass the channel rules and the
    /// channel-name limit too.
    pub fn on_before_subscribe(
        &self,
        f: impl Fn(&Connection, &mut SubscribeRequest) -> bool + Send + Sync + 'static,
    ) -> &Self {
        self.set_hook(|h| h.before_subscribe = Some(Arc::new(f)))
    }

    /// `OnBeforePublish`: asked once per client publish, before channel expansion. Returning
    /// false drops the publish silently; the hook may rewrite `channel` and `message`.
    pub fn on_before_publish(
        &self,
        f: impl Fn(&Connection, &mut PublishRequest) -> bool + Send + Sync + 'static,
    ) -> &Self {
        self.set_hook(|h| h.before_publish = Some(Arc::new(f)))
    }

    /// `OnSubscription`: a connection became subscribed to a channel (not fired again when it was
    /// already subscribed).
    pub fn on_subscribed(&self, f: impl Fn(&Connection, &str) + Send + Sync + 'static) -> &Self {
        self.set_hook(|h| h.subscribed = Some(Arc::new(f)))
    }

    /// `OnUnSubscription`: a connection left a channel (by request, `sgc@unsubscribe_all` or
    /// disconnect).
    pub fn on_unsubscribed(&self, f: impl Fn(&Connection, &str) + Send + Sync + 'static) -> &Self {
        self.set_hook(|h| h.unsubscribed = Some(Arc::new(f)))
    }

    /// `OnConnect`: a connection opened; called after its session frame (and the channel `""`
    /// replay) were queued, so anything the hook sends arrives after them.
    pub fn on_connected(&self, f: impl Fn(&Connection) + Send + Sync + 'static) -> &Self {
        self.set_hook(|h| h.connect = Some(Arc::new(f)))
    }

    /// `OnDisconnect`: a connection closed; called after its unsubscribe events.
    pub fn on_disconnected(&self, f: impl Fn(&Connection) + Send + Sync + 'static) -> &Self {
        self.set_hook(|h| h.disconnect = Some(Arc::new(f)))
    }

    /// `OnMessage`: a client's `sgc@message` (the Delphi `WriteData`, the JS `send`). No reply.
    pub fn on_message(&self, f: impl Fn(&Connection, &Payload) + Send + Sync + 'static) -> &Self {
        self.set_hook(|h| h.message = Some(Arc::new(f)))
    }

    /// `OnRPC`: an authorised RPC call. Answer through the [`RpcRequest`], now or later.
    pub fn on_rpc(&self, f: impl Fn(RpcRequest) + Send + Sync + 'static) -> &Self {
        self.set_hook(|h| h.rpc = Some(Arc::new(f)))
    }

    /// `OnNotification`: a non-`sgc@` method without an id. No reply.
    pub fn on_notification(
        &self,
        f: impl Fn(&Connection, &Notification) + Send + Sync + 'static,
    ) -> &Self {
        self.set_hook(|h| h.notification = Some(Arc::new(f)))
    }

    /// `OnRPCAuthentication`: asked (with the method name; the user is `Connection::user`) when
    /// `rpc_auth_enabled` is on and `rpc_auth_methods` does not list the call. Without this hook
    /// such calls are refused with -32601.
    pub fn on_rpc_auth(
        &self,
        f: impl Fn(&Connection, &str) -> bool + Send + Sync + 'static,
    ) -> &Self {
        self.set_hook(|h| h.rpc_auth = Some(Arc::new(f)))
    }

    /// `OnBinary`: a binary frame from a client.
    pub fn on_binary_message(
        &self,
        f: impl Fn(&Connection, Bytes) + Send + Sync + 'static,
    ) -> &Self {
        self.set_hook(|h| h.binary = Some(Arc::new(f)))
    }

    /// `OnAcknowledgment`: the client acknowledged an id'd server frame (either ack shape).
    pub fn on_acknowledgment(
        &self,
        f: impl Fn(&Connection, &str) + Send + Sync + 'static,
    ) -> &Self {
        self.set_hook(|h| h.acknowledgment = Some(Arc::new(f)))
    }

    /// One hook, cloned out of the lock so the lock is released before the hook runs.
    pub(crate) fn hook<T: Clone>(&self, pick: impl FnOnce(&Hooks) -> &Option<T>) -> Option<T> {
        pick(&self.inner.hooks.read()).clone()
    }
}
