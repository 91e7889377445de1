//! [`Effects`]: what a change of Presence state makes happen — frames to queue, application
//! events to fire, relay events to emit — collected under the state lock and carried out after it
//! is released, in that order.

use std::sync::Arc;

use bytes::Bytes;

use super::event::PresenceEvent;
use super::frame;
use super::hooks::AppEvent;
use super::{Inner, State};
use crate::hub::roster::{Member, RosterEvent};
use crate::transport::Connection;

/// The consequences of one request, remote event or API call.
pub(crate) struct Effects {
    /// `encode_base64` of the protocol.
    pub(crate) b64: bool,
    want_events: bool,
    want_relay: bool,
    /// Frames and their receivers, in delivery order.
    sends: Vec<(Vec<Connection>, Bytes)>,
    /// Application events, fired after the frames are queued.
    events: Vec<AppEvent>,
    /// Relay events, emitted last (after local application).
    relay: Vec<PresenceEvent>,
}

impl Effects {
    /// Empty effects for this protocol; events and relay events are only built when someone
    /// listens.
    pub(crate) fn new(inner: &Inner) -> Self {
        Self {
            b64: inner.config.encode_base64,
            want_events: inner.hooks.read().on_event.is_some(),
            want_relay: inner.relay.is_attached(),
            sends: Vec::new(),
            events: Vec::new(),
            relay: Vec::new(),
        }
    }

    /// Effects of a change that came from another node: applied locally, never relayed back.
    pub(crate) fn without_relay(inner: &Inner) -> Self {
        Self {
            want_relay: false,
            ..Self::new(inner)
        }
    }

    /// Queues the frame `make(b64)` builds for `to`; nothing is encoded when `to` is empty
    /// (a remote event with no local receiver costs no encoding).
    pub(crate) fn send(&mut self, to: Vec<Connection>, make: impl FnOnce(bool) -> Bytes) {
        if !to.is_empty() {
            let frame = make(self.b64);
            self.sends.push((to, frame));
        }
    }

    /// Queues `frame` for one connection.
    pub(crate) fn reply(&mut self, to: &Connection, frame: Bytes) {
        self.sends.push((vec![to.clone()], frame));
    }

    /// Adds an application event, built only when a handler is installed.
    pub(crate) fn event(&mut self, make: impl FnOnce() -> AppEvent) {
        if self.want_events {
            self.events.push(make());
        }
    }

    /// Adds a relay event, built only when a relay is attached.
    pub(crate) fn relay(&mut self, make: impl FnOnce() -> PresenceEvent) {
        if self.want_relay {
            self.relay.push(make());
        }
    }

    /// The frames and events of roster removals: `channel@member@remove` to each channel's
    /// remaining members, then `member@remove` to all remaining members. `connection` is the
    /// removed member's connection when it was local.
    pub(crate) fn removals(
        &mut self,
        st: &State,
        events: Vec<RosterEvent>,
        connection: Option<&Connection>,
    ) {
        for ev in events {
            match ev {
                RosterEvent::ChannelMemberRemoved {
                    member,
                    channel,
                    freed,
                    recipients,
                } => {
                    self.send(st.conns_of(&recipients), |b64| {
                        frame::channel_member_event(
                            frame::CHANNEL_MEMBER_REMOVE,
                            &member,
                            &channel,
                            b64,
                        )
                    });
                    self.event(|| AppEvent::RemoveChannelMember {
                        connection: connection.cloned(),
                        channel: channel.clone(),
                        member: Member::clone(&member),
                    });
                    if freed {
                        self.event(|| AppEvent::ChannelFreed {
                            connection: connection.cloned(),
                            channel,
                        });
                    }
                }
                RosterEvent::MemberRemoved {
                    member, recipients, ..
                } => {
                    self.send(st.conns_of(&recipients), |b64| {
                        frame::member_event(frame::MEMBER_REMOVE, &member, b64)
                    });
                    self.event(|| AppEvent::RemoveMember {
                        connection: connection.cloned(),
                        member: Member::clone(&member),
                    });
                }
            }
        }
    }

    /// Carries the effects out: frames, then events, then relay. Call without holding locks.
    pub(crate) fn apply(self, inner: &Inner) {
        for (to, f) in &self.sends {
            inner.deliver(to, f);
        }
        if !self.events.is_empty() {
            let handler = inner.hooks.read().on_event.clone();
            if let Some(h) = handler {
                for e in &self.events {
                    h(e);
                }
            }
        }
        for e in self.relay {
            inner.relay.emit_with(|| e);
        }
    }
}

/// Shorthand used by the request handlers: a member by value from a roster `Arc`.
pub(crate) fn owned(m: &Arc<Member>) -> Member {
    Member::clone(m)
}
