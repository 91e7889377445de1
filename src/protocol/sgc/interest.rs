//! Interest gating of subscriptions, when a cluster is attached (see
//! [`crate::relay::InterestGate`]): the first local subscription of a channel waits until every
//! peer knows this node wants the channel; later ones are confirmed at once; the last leave tells
//! the cluster the channel is no longer wanted.
//!
//! One mutex (`pending`) orders every decision about a channel's interest: "does the channel have
//! local interest" means "it has subscribers in the hub, or subscriptions waiting for the gate",
//! and it is checked and changed only under that mutex, so an add and a remove of the same channel
//! can never cross.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use crate::hub::{Member, Subscribed};
use crate::relay::InterestGate;

use super::{Inner, Session, SgcProtocol};

/// A subscription waiting for the gate: who, and the `qos`/`id` its confirmation echoes.
pub(crate) struct Waiting {
    member: Arc<Member<Session>>,
    qos: Option<String>,
    id: Option<String>,
}

/// The gate slot and the subscriptions waiting for it.
#[derive(Default)]
pub(crate) struct Interest {
    gate: RwLock<Option<Arc<dyn InterestGate>>>,
    pending: Mutex<HashMap<Arc<str>, Vec<Waiting>>>,
}

impl Interest {
    pub(crate) fn attach(&self, gate: Arc<dyn InterestGate>) {
        *self.gate.write() = Some(gate);
    }

    pub(crate) fn detach(&self) {
        *self.gate.write() = None;
    }

    fn gate(&self) -> Option<Arc<dyn InterestGate>> {
        self.gate.read().clone()
    }
}

impl SgcProtocol {
    /// Holds the subscription of `member` to `channel` when it is the channel's first local one
    /// and a gate is attached; returns whether it was held (the gate's `ready` confirms it).
    pub(crate) fn hold_for_interest(
        &self,
        member: &Member<Session>,
        channel: &str,
        qos: Option<&str>,
        id: Option<&str>,
    ) -> bool {
        let Some(gate) = self.inner.interest.gate() else {
            return false;
        };
        let Some(member) = self.inner.hub.member(member.conn().id()) else {
            return false;
        };
        let waiting = Waiting {
            member,
            qos: qos.map(str::to_owned),
            id: id.map(str::to_owned),
        };
        let mut pending = self.inner.interest.pending.lock();
        if let Some(list) = pending.get_mut(channel) {
            list.push(waiting);
            return true;
        }
        if self.inner.hub.subscriber_count(channel) > 0 {
            return false;
        }
        let name: Arc<str> = Arc::from(channel);
        pending.insert(name.clone(), vec![waiting]);
        drop(pending);
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        gate.channel_added(
            channel,
            Box::new(move || {
                if let Some(inner) = weak.upgrade() {
                    SgcProtocol { inner }.release_interest(&name);
                }
            }),
        );
        true
    }

    /// The gate opened for `channel`: confirm every subscription waiting for it. The hub learns
    /// them under the interest mutex (so the channel's interest never looks lost meanwhile); the
    /// hooks and confirmations run after it is released.
    fn release_interest(&self, channel: &str) {
        let list = {
            let mut pending = self.inner.interest.pending.lock();
            let Some(list) = pending.remove(channel) else {
                return;
            };
            let limit = self.inner.config.max_subscriptions_per_connection;
            let added: Vec<(Waiting, Subscribed)> = list
                .into_iter()
                .map(|w| {
                    let outcome = self.inner.hub.subscribe(&w.member, channel, limit);
                    (w, outcome)
                })
                .collect();
            // Everyone waiting may have left meanwhile.
            self.interest_lost_locked(&pending, channel);
            added
        };
        for (w, outcome) in list {
            self.confirmed(
                &w.member,
                channel,
                outcome,
                w.qos.as_deref(),
                w.id.as_deref(),
            );
        }
    }

    /// Drops a waiting subscription of `member` (it unsubscribed before the confirmation).
    pub(crate) fn forget_waiting(&self, member: &Member<Session>, channel: &str) -> bool {
        let mut pending = self.inner.interest.pending.lock();
        let Some(list) = pending.get_mut(channel) else {
            return false;
        };
        let before = list.len();
        list.retain(|w| w.member.conn().key() != member.conn().key());
        before != list.len()
    }

    /// `channel` may have lost its last local subscriber: tell the gate if so.
    pub(crate) fn interest_maybe_lost(&self, channel: &str) {
        if self.inner.interest.gate().is_none() {
            return;
        }
        let pending = self.inner.interest.pending.lock();
        self.interest_lost_locked(&pending, channel);
    }

    fn interest_lost_locked(&self, pending: &HashMap<Arc<str>, Vec<Waiting>>, channel: &str) {
        if pending.contains_key(channel) || self.inner.hub.subscriber_count(channel) > 0 {
            return;
        }
        if let Some(gate) = self.inner.interest.gate() {
            gate.channel_removed(channel);
        }
    }

    /// The channels with local interest (subscribers or waiting subscriptions), for a peer that
    /// needs the full set.
    pub fn local_interest(&self) -> Vec<Arc<str>> {
        let pending = self.inner.interest.pending.lock();
        let mut names = self.inner.hub.channel_names();
        names.extend(pending.keys().cloned());
        names.sort();
        names.dedup();
        names
    }

    /// Attaches the cluster's interest gate: first subscriptions of a channel wait for it.
    pub fn attach_interest_gate(&self, gate: Arc<dyn InterestGate>) {
        self.inner.interest.attach(gate);
    }

    /// Detaches the gate: subscriptions are confirmed at once again. Waiting ones are released.
    pub fn detach_interest_gate(&self) {
        self.inner.interest.detach();
        let channels: Vec<Arc<str>> = self.inner.interest.pending.lock().keys().cloned().collect();
        for ch in channels {
            self.release_interest(&ch);
        }
    }
}
