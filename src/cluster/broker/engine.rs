//! [`BrokerEngine`]: what a broker engine says of itself once the shared core is written; every
//! broker engine is an [`Engine`] through it, so the forwarding to [`BrokerCore`] is written once.

use std::any::Any;

use bytes::Bytes;

use super::BrokerCore;
use super::interest::Subscriptions;
use crate::cluster::engine::{Engine, EngineFuture};
use crate::cluster::envelope::{Kind, Origin};
use crate::relay::InterestReady;

/// A broker engine's own part: its name, its core, its subscription commands and how it routes
/// sgc traffic. The [`Engine`] methods come from here.
pub(crate) trait BrokerEngine: Clone + Send + Sync + 'static {
    /// The engine's name, as in `cluster.engine`.
    const NAME: &'static str;

    /// The shared core.
    fn core(&self) -> &BrokerCore;

    /// Where per-channel subscriptions are sent to the engine's subscriber task.
    fn subscriptions(&self) -> &Subscriptions;

    /// Whether an sgc channel's live traffic goes on the channel's own stream (else on the
    /// shared stream).
    fn channel_streams(&self) -> bool;

    /// Whether this node subscribes to channel streams one by one, on its first local subscriber
    /// (else it receives every channel's traffic already).
    fn subscribes_per_channel(&self) -> bool;

    /// The start line's description ([`Engine::describe`]).
    fn describe(&self) -> String;

    /// Whether this node hears the cluster ([`Engine::reaches_cluster`]): by default, whether
    /// the engine is ready.
    fn reaches_cluster(&self) -> bool {
        self.core().ready()
    }

    /// Lets go of the broker connection once the core has stopped.
    fn release(&self) {}
}

impl<T: BrokerEngine> Engine for T {
    fn name(&self) -> &'static str {
        T::NAME
    }
    fn describe(&self) -> String {
        BrokerEngine::describe(self)
    }
    fn send_all(&self, kind: Kind, payload: Bytes) {
        self.core().send_all(kind, payload);
    }
    fn send_to(&self, node: &str, kind: Kind, payload: Bytes) {
        self.core().send_to(node, kind, payload);
    }
    fn send_channel(&self, channel: &str, kind: Kind, payload: Bytes) {
        if self.channel_streams() {
            self.core().send_channel(channel, kind, payload);
        } else {
            self.core().send_all(kind, payload);
        }
    }
    fn subscribe_channel(&self, channel: &str, ready: InterestReady) {
        if !self.subscribes_per_channel() {
            return ready();
        }
        self.subscriptions().subscribe(self.core(), channel, ready);
    }
    fn unsubscribe_channel(&self, channel: &str) {
        if self.subscribes_per_channel() {
            self.subscriptions().unsubscribe(self.core(), channel);
        }
    }
    fn live_peers(&self) -> Vec<Origin> {
        self.core().live_peers()
    }
    fn connected_peer_count(&self) -> usize {
        self.core().connected_peer_count()
    }
    fn ready(&self) -> bool {
        self.core().ready()
    }
    fn reaches_cluster(&self) -> bool {
        BrokerEngine::reaches_cluster(self)
    }
    fn last_error(&self) -> Option<String> {
        self.core().last_error()
    }
    fn stop(&self) -> EngineFuture<'_, ()> {
        Box::pin(async move {
            self.core().stop().await;
            self.release();
        })
    }
    fn task_count(&self) -> usize {
        self.core().task_count()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
