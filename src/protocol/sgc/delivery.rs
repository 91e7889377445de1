//! Publish and broadcast, shared by client frames, the application API and remote events:
//! expand the channel, encode the frame once per concrete channel, store it when retained, queue
//! the same bytes to every local recipient, then hand the event to the relay (local origins only).

use std::sync::Arc;

use bytes::Bytes;

use super::event::{SgcBroadcast, SgcEvent, SgcPublish, Targets};
use super::idempotency::{Claim, IdempotencyStore};
use super::inbound::QueueLevel;
use super::{SgcProtocol, frame};
use crate::metrics::Origin::{Local, Remote};
use crate::protocol::mask;

impl SgcProtocol {
    /// The concrete channels of a requested channel (docs/wire.md §2.8), per this node's options and
    /// existing channels.
    pub(crate) fn expand(&self, requested: &str) -> Vec<String> {
        let cfg = &self.inner.config;
        let limit = cfg.max_channels_per_request;
        if cfg.use_matches_mask
            && !requested.is_empty()
            && let Some(m) = mask::Mask::new(requested)
        {
            let mut found = self
                .inner
                .hub
                .channels_matching(|c| !c.is_empty() && m.matches(c), limit);
            if !found.is_empty() {
                found.sort_unstable();
                return found;
            }
        }
        mask::expand(requested, false, [], limit)
    }

    /// Publishes an already-written JSON message value to every concrete channel of `requested`.
    /// Returns how many local connections it was queued to.
    pub(crate) fn publish_json(
        &self,
        requested: &str,
        message: Bytes,
        queue: QueueLevel,
        targets: &Targets,
    ) -> usize {
        let channels = self.expand(requested);
        self.publish_channels(&channels, message, queue, targets)
    }

    /// Publishes to concrete (already expanded) channels.
    pub(crate) fn publish_channels(
        &self,
        channels: &[String],
        message: Bytes,
        queue: QueueLevel,
        targets: &Targets,
    ) -> usize {
        let mut sent = 0;
        for channel in channels {
            sent += self.publish_local(channel, &message, queue, targets);
            self.inner.relay.emit_with(|| {
                SgcEvent::Publish(SgcPublish {
                    channel: Arc::from(channel.as_str()),
                    message: message.clone(),
                    queue,
                    targets: targets.clone(),
                })
            });
        }
        self.inner
            .counters
            .published(Local, channels.len() as u64, sent);
        sent
    }

    /// [`SgcProtocol::publish_json`] with an idempotency key: `None` (nothing delivered) when this
    /// node saw the key used by another publish within `api.idempotency_window_ms`, otherwise how
    /// many local connections it was queued to. The key travels with the publish to every node
    /// (whatever their interest), which remember it too (see [`super::idempotency`]).
    pub(crate) fn publish_once(
        &self,
        key: &str,
        requested: &str,
        message: Bytes,
        queue: QueueLevel,
        targets: &Targets,
    ) -> Option<usize> {
        let id = fastrand::u64(..);
        if self.claim(key, id) == Claim::Duplicate {
            return None;
        }
        let channels = self.expand(requested);
        let key: Arc<str> = Arc::from(key);
        let mut sent = 0;
        for channel in &channels {
            sent += self.publish_local(channel, &message, queue, targets);
            self.inner.relay.emit_with(|| SgcEvent::PublishOnce {
                key: key.clone(),
                id,
                publish: SgcPublish {
                    channel: Arc::from(channel.as_str()),
                    message: message.clone(),
                    queue,
                    targets: targets.clone(),
                },
            });
        }
        self.inner
            .counters
            .published(Local, channels.len() as u64, sent);
        Some(sent)
    }

    /// Claims an idempotency key for publish `id` in this node's store (counting the keys the
    /// byte bound made it forget).
    pub(crate) fn claim(&self, key: &str, id: u64) -> Claim {
        let mut store = self.inner.idempotency.lock();
        // Monotonic milliseconds (a wall clock stepping back would keep keys too long).
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let now_ms = u64::try_from(
            START
                .get_or_init(std::time::Instant::now)
                .elapsed()
                .as_millis(),
        )
        .unwrap_or(u64::MAX);
        let claim = store.claim(key, id, now_ms);
        for _ in 0..store.take_evicted() {
            crate::metrics::limit_refused(crate::metrics::Limit::ApiIdempotencyBytes);
        }
        claim
    }

    /// Sets how long idempotency keys are remembered and the bytes they may take
    /// (`api.idempotency_window_ms`, `api.idempotency_max_bytes`); keys held so far are dropped.
    pub fn set_idempotency(&self, window_ms: u64, max_bytes: usize) {
        *self.inner.idempotency.lock() = IdempotencyStore::new(window_ms, max_bytes);
    }

    /// One concrete channel, this node only: encode S5 once, store, fan out.
    fn publish_local(
        &self,
        channel: &str,
        message: &Bytes,
        queue: QueueLevel,
        targets: &Targets,
    ) -> usize {
        let frame = frame::event(channel, message);
        if queue != QueueLevel::Level0 {
            // Stored before delivery: a subscriber racing with this publish may see it twice
            // (replay and live) but never miss it.
            self.inner.retained.write().store(channel, queue, &frame);
        }
        self.deliver(channel, &frame, targets)
    }

    /// Broadcasts an already-written JSON message value (S6, or S6b with the sender's qos/id) to
    /// `channel`'s subscribers, or every sgc connection for `""`. The channel is taken literally.
    pub(crate) fn broadcast_json(
        &self,
        channel: &str,
        message: Bytes,
        qos: Option<&str>,
        id: Option<&str>,
        targets: &Targets,
    ) -> usize {
        let frame = frame::message(channel, &message, qos, id);
        let sent = self.deliver(channel, &frame, targets);
        self.inner.counters.published(Local, 1, sent);
        self.inner.relay.emit_with(|| {
            SgcEvent::Broadcast(SgcBroadcast {
                channel: Arc::from(channel),
                message,
                qos: qos.map(Arc::from),
                id: id.map(Arc::from),
                targets: targets.clone(),
            })
        });
        sent
    }

    /// Queues `frame` to the subscribers of `channel` (everyone for `""`) that `targets` allows.
    pub(crate) fn deliver(&self, channel: &str, frame: &Bytes, targets: &Targets) -> usize {
        let hub = &self.inner.hub;
        match targets.matcher() {
            super::event::TargetMatcher::All if channel.is_empty() => {
                hub.send_to_all(frame, |_| true)
            }
            super::event::TargetMatcher::All => hub.send_to_channel(channel, frame, |_| true),
            m if channel.is_empty() => hub.send_to_all(frame, |c| m.allows(c.id())),
            m => hub.send_to_channel(channel, frame, |c| m.allows(c.id())),
        }
    }

    /// Applies an event that came from another node: delivered to this node's connections and
    /// stored when retained, exactly as a local one, but never handed back to the relay.
    pub fn apply_remote(&self, event: &SgcEvent) {
        match event {
            SgcEvent::Publish(p) => {
                let sent = self.publish_local(&p.channel, &p.message, p.queue, &p.targets);
                self.inner.counters.published(Remote, 1, sent);
            }
            SgcEvent::Broadcast(b) => {
                let frame =
                    frame::message(&b.channel, &b.message, b.qos.as_deref(), b.id.as_deref());
                let sent = self.deliver(&b.channel, &frame, &b.targets);
                self.inner.counters.published(Remote, 1, sent);
            }
            SgcEvent::PublishOnce { key, id, publish } => {
                if self.claim(key, *id) == Claim::Duplicate {
                    tracing::debug!(key = %crate::log_text::Printable(key), "duplicate keyed publish from another node dropped");
                    return;
                }
                let p = publish;
                let sent = self.publish_local(&p.channel, &p.message, p.queue, &p.targets);
                self.inner.counters.published(Remote, 1, sent);
            }
            SgcEvent::ClearQueue { channel } => {
                self.inner.retained.write().clear(channel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::testing::{counter, record};
    use crate::metrics::{DELIVERIES, PUBLISHES};
    use crate::protocol::Protocol as _;
    use crate::protocol::sgc::{PROTOCOL_NAME, SgcConfig, SgcEvent, SgcProtocol, SgcPublish};
    use crate::transport::Connection;

    const SUBSCRIBE: &str =
        r#"{"jsonrpc":"2.0","method":"sgc@subscribe","params":{"channel":"c"}}"#;
    const PUBLISH: &str =
        r#"{"jsonrpc":"2.0","method":"sgc@publish","params":{"channel":"c","message":"m"}}"#;

    #[test]
    fn a_publish_to_three_subscribers_adds_one_publish_and_three_deliveries() {
        let ((), snap) = record(|| {
            let sgc = SgcProtocol::new(SgcConfig::default());
            let conns: Vec<Connection> = ["A", "B", "C", "D"]
                .into_iter()
                .map(|id| Connection::detached(id, Some(PROTOCOL_NAME)))
                .collect();
            for c in &conns {
                sgc.on_connect(c);
            }
            for c in &conns[..3] {
                sgc.on_text(c, SUBSCRIBE);
            }
            // D is connected but not subscribed: no delivery for it.
            sgc.on_text(&conns[3], PUBLISH);
            // A remote publish to the same channel: one more publish, three more deliveries.
            sgc.apply_remote(&SgcEvent::Publish(SgcPublish {
                channel: "c".into(),
                message: bytes::Bytes::from_static(b"\"r\""),
                queue: crate::protocol::sgc::QueueLevel::Level0,
                targets: Default::default(),
            }));
        });
        let sgc = [("protocol", "sgc")];
        assert_eq!(
            counter(
                &snap,
                PUBLISHES,
                &[("protocol", "sgc"), ("origin", "local")]
            ),
            1
        );
        assert_eq!(
            counter(
                &snap,
                PUBLISHES,
                &[("protocol", "sgc"), ("origin", "remote")]
            ),
            1
        );
        assert_eq!(counter(&snap, DELIVERIES, &sgc), 6);
    }

    #[test]
    fn a_keyed_publish_is_delivered_once_per_key_whichever_node_it_comes_from() {
        use crate::protocol::sgc::{QueueLevel, Targets};
        let ((), snap) = record(|| {
            let sgc = SgcProtocol::new(SgcConfig::default());
            let conn = Connection::detached("A", Some(PROTOCOL_NAME));
            sgc.on_connect(&conn);
            sgc.on_text(&conn, SUBSCRIBE);
            let msg = bytes::Bytes::from_static(b"\"m\"");
            let all = Targets::all();
            assert_eq!(
                sgc.publish_once("k1", "c", msg.clone(), QueueLevel::Level0, &all),
                Some(1)
            );
            assert_eq!(
                sgc.publish_once("k1", "c", msg.clone(), QueueLevel::Level0, &all),
                None
            );
            let remote = |key: &str, id: u64| SgcEvent::PublishOnce {
                key: key.into(),
                id,
                publish: SgcPublish {
                    channel: "c".into(),
                    message: msg.clone(),
                    queue: QueueLevel::Level0,
                    targets: Targets::all(),
                },
            };
            // Another publish of k1 from another node: dropped.
            sgc.apply_remote(&remote("k1", 99));
            // k2 from another node: delivered, and again for another channel of the same publish;
            // then a local publish of k2 is a duplicate.
            sgc.apply_remote(&remote("k2", 5));
            sgc.apply_remote(&remote("k2", 5));
            assert_eq!(
                sgc.publish_once("k2", "c", msg.clone(), QueueLevel::Level0, &all),
                None
            );
        });
        assert_eq!(counter(&snap, DELIVERIES, &[("protocol", "sgc")]), 3);
    }
}
