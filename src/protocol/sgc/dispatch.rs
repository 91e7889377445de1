//! The server algorithm of docs/wire.md §2.5: what happens to one client frame.
//!
//! `handle_text` → QoS-2 path or `process` (ack S2 first, then transactions) → `process_message`
//! (one arm per method). Everything runs on the connection's reader task; nothing here blocks, and
//! no lock is held while a hook runs or a frame is queued.

use crate::log_text::Printable;
use bytes::Bytes;

use crate::hub::{Member, Subscribed};
use crate::transport::{Close, Connection};

use super::errors::RpcError;
use super::frame;
use super::hooks::{PublishRequest, SubscribeRequest};
use super::inbound::{self, Inbound, Method};
use super::qos::Hold;
use super::rpc::{self, Notification, RpcRequest};
use super::transaction::{ByteCap, Offer, TransactionCaps};
use super::{Session, SgcProtocol, Targets};
use crate::metrics::Limit;
use crate::protocol::access::{Action, ChannelRules};

impl SgcProtocol {
    /// Entry point for one text frame.
    pub(crate) fn handle_text(&self, conn: &Connection, text: &str) {
        let Some(member) = self.inner.hub.member(conn.id()) else {
            tracing::debug!(
                conn = conn.id(),
                "frame from a connection that is not in the hub"
            );
            return;
        };
        let msg = match inbound::parse(text) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(conn = conn.id(), error = %Printable(&e.to_string()), len = text.len(), "frame ignored");
                return;
            }
        };
        if msg.is_qos2() {
            self.qos2(&member, msg);
        } else {
            self.process(&member, msg);
        }
    }

    /// The QoS-2 inbound path (docs/wire.md §2.6): hold and PubRec; on PubRel ack then process; an ack
    /// settles an outbound frame.
    fn qos2(&self, member: &Member<Session>, msg: Inbound) {
        let id = msg.id.clone().unwrap_or_default();
        let session = member.data();
        match msg.method {
            Method::PubRel => {
                let held = session.qos2.lock().release(&id);
                match held {
                    // `process` acks with the held message's id, which is this id.
                    Some(held) => self.process(member, held),
                    None => {
                        let _ = member.conn().send_text(frame::acknowledgment(&id));
                    }
                }
            }
            Method::Acknowledgment => self.acknowledged(member, &id),
            _ => {
                let cfg = &self.inner.config;
                let hold = session.qos2.lock().hold(
                    &id,
                    msg,
                    cfg.qos2_max_pending,
                    cfg.qos2_max_pending_bytes,
                );
                match hold {
                    Hold::Held => {
                        let _ = member.conn().send_text(frame::pubrec(&id));
                    }
                    Hold::Full => {
                        tracing::debug!(
                            conn = member.conn().id(),
                            id,
                            "QoS-2 store full: no PubRec"
                        );
                    }
                }
            }
        }
    }

    /// Ack (S2) before anything else, then transactions, then the method.
    fn process(&self, member: &Member<Session>, msg: Inbound) {
        if let Some(id) = &msg.id
            && msg.method != Method::Acknowledgment
        {
            let _ = member.conn().send_text(frame::acknowledgment(id));
        }
        let session = member.data();
        match msg.method {
            Method::Commit => {
                let queued = session.transactions.lock().commit(&msg.channel);
                for m in queued {
                    self.process_message(member, m);
                }
            }
            Method::Rollback => {
                let dropped = session.transactions.lock().rollback(&msg.channel);
                tracing::debug!(
                    conn = member.conn().id(),
                    dropped,
                    "transaction rolled back"
                );
            }
            // Acknowledgments settle delivery; they are never held in a transaction.
            Method::Acknowledgment => self.process_message(member, msg),
            _ => {
                // `[limits]` count a publish when it arrives, inside a transaction or not: past
                // the publish rate the connection is closed (1008) by the transport; a publish
                // naming a channel that is too long is ignored, like a denied one.
                if matches!(msg.method, Method::Publish | Method::Broadcast)
                    && !publish_admitted(member.conn(), &msg)
                {
                    return;
                }
                let cfg = &self.inner.config;
                let caps = TransactionCaps {
                    max_messages: cfg.transaction_max_messages,
                    max_bytes: cfg.transaction_max_bytes,
                    max_bytes_per_connection: cfg.transaction_max_bytes_per_connection,
                };
                let offer = session.transactions.lock().offer(msg, caps);
                match offer {
                    Offer::Free(m) => self.process_message(member, m),
                    Offer::Queued | Offer::Dropped => {}
                    Offer::TooLarge(cap) => {
                        let conn = member.conn();
                        let (limit, detail) = match cap {
                            ByteCap::Transaction => (
                                Limit::TransactionBytes,
                                "sgc.transaction_max_bytes passed: transactions discarded, closing",
                            ),
                            ByteCap::Connection => (
                                Limit::TransactionBytesPerConnection,
                                "sgc.transaction_max_bytes_per_connection passed: transactions \
                                 discarded, closing",
                            ),
                        };
                        conn.limit_refused(limit, detail);
                        conn.close_with(Close::TRANSACTION_TOO_LARGE);
                    }
                }
            }
        }
    }

    fn process_message(&self, member: &Member<Session>, msg: Inbound) {
        let conn = member.conn();
        match msg.method {
            Method::Message => {
                if let Some(h) = self.hook(|h| &h.message) {
                    h(conn, &msg.message);
                }
            }
            Method::Transaction => {
                let max = self.inner.config.transaction_max_open;
                if !member.data().transactions.lock().open(&msg.channel, max) {
                    tracing::debug!(conn = conn.id(), "too many open transactions");
                }
            }
            Method::Session => self.send_session(member),
            Method::Acknowledgment => match &msg.id {
                Some(id) => self.acknowledged(member, id),
                None => tracing::debug!(conn = conn.id(), "acknowledgment without id"),
            },
            Method::Publish => self.client_publish(member, msg),
            Method::Broadcast => {
                let rules = self.hook(|h| &h.rules);
                if !allowed(&rules, conn, Action::Publish, &msg.channel) {
                    return;
                }
                let message = frame::message_json(&msg.message);
                self.broadcast_json(
                    &msg.channel,
                    message,
                    msg.qos.as_deref(),
                    msg.id.as_deref(),
                    &Targets::all(),
                );
            }
            Method::Protocol => {
                let _ = conn.send_text(Bytes::from_static(frame::PROTOCOL_REPLY.as_bytes()));
            }
            Method::Subscribe => self.client_subscribe(member, &msg),
            Method::Unsubscribe => self.client_unsubscribe(member, &msg),
            Method::UnsubscribeAll => {
                let left = self.inner.hub.unsubscribe_all(member);
                for ch in &left {
                    self.interest_maybe_lost(ch);
                }
                if let Some(h) = self.hook(|h| &h.unsubscribed) {
                    for ch in &left {
                        h(conn, ch);
                    }
                }
            }
            // Without QoS 2 nothing was held; the ack was sent by `process`. Commit and rollback
            // never reach here (they are handled before transactions).
            Method::PubRel | Method::Commit | Method::Rollback => {}
            Method::OtherSgc(name) => {
                tracing::debug!(
                    conn = conn.id(),
                    method = name,
                    "unhandled sgc method ignored"
                );
            }
            Method::App(method) => match msg.id {
                None => {
                    if let Some(h) = self.hook(|h| &h.notification) {
                        h(
                            conn,
                            &Notification {
                                method,
                                params: msg.params,
                            },
                        );
                    }
                }
                Some(id) => self.client_rpc(member, method, id, msg.params),
            },
        }
    }

    /// S1, tracked for QoS resends under the connection GUID.
    pub(crate) fn send_session(&self, member: &Member<Session>) {
        let id = member.conn().id();
        self.send_tracked(member, id, frame::session(id, self.inner.qos_name));
    }

    fn acknowledged(&self, member: &Member<Session>, id: &str) {
        member.data().unacked.lock().ack(id);
        if let Some(h) = self.hook(|h| &h.acknowledgment) {
            h(member.conn(), id);
        }
    }

    fn client_subscribe(&self, member: &Member<Session>, msg: &Inbound) {
        let conn = member.conn();
        let before = self.hook(|h| &h.before_subscribe);
        let rules = self.hook(|h| &h.rules);
        for asked in self.expand(&msg.channel) {
            let permitted =
                |ch: &str| conn.channel_allowed(ch) && allowed(&rules, conn, Action::Subscribe, ch);
            if !permitted(&asked) {
                continue;
            }
            let ch = match &before {
                None => asked,
                Some(h) => {
                    let mut req = SubscribeRequest {
                        channel: asked.clone(),
                    };
                    if !h(conn, &mut req) {
                        tracing::debug!(
                            conn = conn.id(),
                            channel = asked,
                            "subscription denied by hook"
                        );
                        continue;
                    }
                    if req.channel != asked && (req.channel.is_empty() || !permitted(&req.channel))
                    {
                        tracing::debug!(
                            conn = conn.id(),
                            channel = asked,
                            rewritten = req.channel,
                            "subscription rewritten by the hook to a channel the rules refuse"
                        );
                        continue;
                    }
                    req.channel
                }
            };
            if self.hold_for_interest(member, &ch, msg.qos.as_deref(), msg.id.as_deref()) {
                continue;
            }
            self.confirm_subscription(member, &ch, msg.qos.as_deref(), msg.id.as_deref());
        }
    }

    /// Subscribes `member` to `channel` in the hub, then S3 and the retained replay (a repeated
    /// subscribe gets them again; a refused one gets nothing).
    pub(crate) fn confirm_subscription(
        &self,
        member: &Member<Session>,
        ch: &str,
        qos: Option<&str>,
        id: Option<&str>,
    ) {
        let limit = self.inner.config.max_subscriptions_per_connection;
        let outcome = self.inner.hub.subscribe(member, ch, limit);
        self.confirmed(member, ch, outcome, qos, id);
    }

    /// After the hub took (or refused) a subscription: the hook, S3 and the retained replay.
    pub(crate) fn confirmed(
        &self,
        member: &Member<Session>,
        ch: &str,
        outcome: Subscribed,
        qos: Option<&str>,
        id: Option<&str>,
    ) {
        let conn = member.conn();
        match outcome {
            Subscribed::Added => {
                if let Some(h) = self.hook(|h| &h.subscribed) {
                    h(conn, ch);
                }
            }
            Subscribed::Already => {}
            Subscribed::LimitReached | Subscribed::Gone => {
                if matches!(outcome, Subscribed::LimitReached) {
                    conn.limit_refused(
                        crate::metrics::Limit::Subscriptions,
                        "sgc.max_subscriptions_per_connection reached",
                    );
                }
                tracing::debug!(
                    conn = conn.id(),
                    channel = ch,
                    "subscription refused: limit or gone"
                );
                return;
            }
        }
        let _ = conn.send_text(frame::subscribed(ch, qos, id));
        self.replay_retained(conn, ch);
    }

    /// Sends `channel`'s retained messages to a new subscriber: the newest that fit in half its
    /// outbox, less what is already queued to it, so a channel that retains more than a
    /// subscriber's outbox holds never closes it as a slow consumer.
    pub(crate) fn replay_retained(&self, conn: &Connection, channel: &str) {
        let budget = (conn.max_outbox_bytes() / 2).saturating_sub(conn.queued_bytes());
        let replay = self.inner.retained.read().replay_within(channel, budget);
        if replay.skipped > 0 {
            crate::metrics::limit_refused(Limit::RetainedReplay);
            tracing::debug!(
                conn = conn.id(),
                channel,
                skipped = replay.skipped,
                sent = replay.frames.len(),
                "retained replay cut to the newest messages that fit half the outbox"
            );
        }
        for f in replay.frames {
            let _ = conn.send_text(f);
        }
    }

    fn client_unsubscribe(&self, member: &Member<Session>, msg: &Inbound) {
        let conn = member.conn();
        let hook = self.hook(|h| &h.unsubscribed);
        for ch in self.expand(&msg.channel) {
            if !self.inner.hub.unsubscribe(member, &ch) {
                self.forget_waiting(member, &ch);
                continue;
            }
            self.interest_maybe_lost(&ch);
            if let Some(h) = &hook {
                h(conn, &ch);
            }
            let _ = conn.send_text(frame::unsubscribed(
                &ch,
                msg.qos.as_deref(),
                msg.id.as_deref(),
            ));
        }
    }

    fn client_publish(&self, member: &Member<Session>, msg: Inbound) {
        let mut req = PublishRequest {
            channel: msg.channel,
            message: msg.message,
            queue: msg.queue,
        };
        if let Some(h) = self.hook(|h| &h.before_publish)
            && !h(member.conn(), &mut req)
        {
            tracing::debug!(conn = member.conn().id(), "publish denied by hook");
            return;
        }
        let message = frame::message_json(&req.message);
        let rules = self.hook(|h| &h.rules);
        if rules.is_none() {
            self.publish_json(&req.channel, message, req.queue, &Targets::all());
            return;
        }
        // All or nothing, like the hook: every concrete channel must be allowed.
        let channels = self.expand(&req.channel);
        if channels
            .iter()
            .all(|ch| allowed(&rules, member.conn(), Action::Publish, ch))
        {
            self.publish_channels(&channels, message, req.queue, &Targets::all());
        }
    }

    fn client_rpc(
        &self,
        member: &Member<Session>,
        method: String,
        id: String,
        params: super::Payload,
    ) {
        let conn = member.conn();
        let cfg = &self.inner.config;
        if cfg.rpc_auth_enabled && !self.rpc_authorized(conn, &method) {
            tracing::debug!(conn = conn.id(), method, "RPC refused");
            let f = frame::rpc_error(
                RpcError::METHOD_NOT_FOUND.code,
                RpcError::METHOD_NOT_FOUND.message,
                None,
                self.inner.qos_name,
                &id,
            );
            self.send_tracked(member, &id, f);
            return;
        }
        let Some(hook) = self.hook(|h| &h.rpc) else {
            tracing::debug!(conn = conn.id(), method, "RPC without an application hook");
            return;
        };
        let admitted =
            member
                .data()
                .rpcs
                .lock()
                .insert(&id, cfg.rpc_max_pending, cfg.rpc_max_pending_bytes);
        if !admitted {
            member.conn().limit_refused(
                Limit::RpcPending,
                "sgc.rpc_max_pending or rpc_max_pending_bytes reached",
            );
            let f = frame::rpc_error(
                RpcError::TOO_MANY_PENDING.code,
                RpcError::TOO_MANY_PENDING.message,
                None,
                self.inner.qos_name,
                &id,
            );
            self.send_tracked(member, &id, f);
            return;
        }
        hook(RpcRequest {
            protocol: self.clone(),
            conn: conn.clone(),
            id,
            method,
            params,
        });
    }

    fn rpc_authorized(&self, conn: &Connection, method: &str) -> bool {
        if rpc::listed(&self.inner.config.rpc_auth_methods, method, conn.user()) {
            return true;
        }
        self.hook(|h| &h.rpc_auth).is_some_and(|h| h(conn, method))
    }
}

/// Whether a publish or broadcast passes the connection's `[limits]` (publish rate, channel
/// name length); a refusal is counted by the transport.
fn publish_admitted(conn: &Connection, msg: &Inbound) -> bool {
    conn.publish_allowed() && msg.channel.split(',').all(|c| conn.channel_allowed(c))
}

/// What the channel rules say (true without rules); a refusal is logged at debug.
fn allowed(
    rules: &Option<std::sync::Arc<ChannelRules>>,
    conn: &Connection,
    action: Action,
    channel: &str,
) -> bool {
    let ok = rules
        .as_ref()
        .is_none_or(|r| r.allows_connection(conn, action, channel));
    if !ok {
        tracing::debug!(
            conn = conn.id(),
            channel,
            ?action,
            "refused by a channel rule"
        );
    }
    ok
}
