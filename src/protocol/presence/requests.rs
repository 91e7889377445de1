//! The rules applied to client frames (docs/wire.md §3.4, §5.3): each request is checked, then applied
//! to the roster, then its frames are queued to exactly the receivers its scope names.
//!
//! Locks: checks take the state's read lock, application hooks run with no lock held, changes
//! take the write lock briefly, and frames are queued after every lock is released. Each request
//! of one connection runs to completion before its next one (the transport calls in order), so
//! a member's own events can never overtake each other.

use crate::log_text::Printable;
use std::collections::HashSet;
use std::sync::Arc;

use super::effects::{Effects, owned};
use super::errors::PresenceError;
use super::event::PresenceEvent;
use super::frame::{self, Inbound, Kind};
use super::hooks::AppEvent;
use super::{Inner, State};
use crate::hub::roster::{JoinError, LeaveError, Member, Origin};
use crate::metrics::Origin::Local;
use crate::protocol::access::Action;
use crate::transport::Connection;

/// A refusal: the error and the member written in its frame (the channel is the request's).
struct Refusal(PresenceError, Member);

type Checked<T> = Result<T, Refusal>;

/// Handles one text frame from `conn`.
pub(crate) fn handle(inner: &Inner, conn: &Connection, text: &str) {
    let f = match frame::parse(text) {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(conn = conn.id(), error = %Printable(&e.to_string()), "presence: frame ignored");
            return;
        }
    };
    if let Some(id) = &f.id
        && f.kind != Kind::Acknowledgment
    {
        // Acks are never tracked nor resent: they go straight to the outbox.
        let _ = conn.send_text(frame::acknowledgment(id, inner.config.encode_base64));
    }
    let channel = f.channel.clone();
    let result = match f.kind {
        Kind::Acknowledgment => {
            if let (Some(acks), Some(id)) = (&inner.acks, &f.id)
                && !acks.acknowledge(conn.key(), id)
            {
                tracing::debug!(conn = conn.id(), id, "presence: ack of an unknown id");
            }
            Ok(())
        }
        Kind::MemberNew => member_new(inner, conn, f),
        Kind::MemberRemove => member_remove(inner, conn, f),
        Kind::ChannelMemberNew => join(inner, conn, f),
        Kind::ChannelMemberRemove => leave(inner, conn, f),
        Kind::PublishMsg => publish(inner, conn, f),
        Kind::GetMembers => get_members(inner, conn, f),
        Kind::Invitation => invite(inner, conn, f),
        Kind::Other(method) => {
            tracing::debug!(conn = conn.id(), method = %Printable(&method), "presence: unknown method ignored");
            Ok(())
        }
    };
    if let Err(Refusal(error, member)) = result {
        let mut fx = Effects::new(inner);
        fx.reply(conn, frame::error(error, &channel, &member, fx.b64));
        fx.event(|| AppEvent::Error {
            connection: conn.clone(),
            error,
            channel,
            member,
        });
        fx.apply(inner);
    }
}

/// The member `conn` acts as: the sent member id must be the one bound to this connection
/// (docs/wire.md §5.3 item 21). Refused with error 3 otherwise, the member written as sent.
fn actor(st: &State, conn: &Connection, sent: Option<&Member>) -> Checked<Arc<Member>> {
    let sent_id = sent.map_or("", |m| &*m.id);
    match st.roster.member_of_connection(conn.key()) {
        Some(own) if !sent_id.is_empty() && *own.id == *sent_id => Ok(own.clone()),
        _ => {
            if st.roster.member(sent_id).is_some() {
                tracing::debug!(
                    conn = conn.id(),
                    member = sent_id,
                    "presence: acting as another connection's member refused"
                );
            }
            Err(Refusal(
                PresenceError::MemberNotFound,
                sent.cloned().unwrap_or_else(|| Member::with_id("")),
            ))
        }
    }
}

/// What the channel rules say (`None` without rules), in the shape [`ask`] takes.
fn ruled(inner: &Inner, conn: &Connection, action: Action, channel: &str) -> Option<bool> {
    let rules = inner.hooks.read().rules.clone()?;
    let allowed = rules.allows_connection(conn, action, channel);
    if !allowed {
        tracing::debug!(
            conn = conn.id(),
            channel,
            ?action,
            "presence: refused by a channel rule"
        );
    }
    Some(allowed)
}

fn ask(hook: Option<bool>, error: PresenceError, member: &Member) -> Checked<()> {
    match hook {
        Some(false) => Err(Refusal(error, member.clone())),
        _ => Ok(()),
    }
}

fn member_new(inner: &Inner, conn: &Connection, f: Inbound) -> Checked<()> {
    let sent = match f.member {
        Some(m) if !m.id.is_empty() => m,
        other => {
            let m = other.unwrap_or_else(|| Member::with_id(""));
            return Err(Refusal(PresenceError::NewMemberDenied, m));
        }
    };
    if let Some(field) = inner.config.member_too_long(&sent) {
        conn.limit_refused(
            crate::metrics::Limit::PresenceMemberField,
            &format!("presence member {field} longer than presence.max_member_{field}_length"),
        );
        // The error frame names the member by its id, cut to the cap: the refusal must not
        // echo the oversized fields back.
        let id: String = sent
            .id
            .chars()
            .scan(0usize, |n, c| {
                *n += c.len_utf8();
                (*n <= inner.config.max_member_id_length).then_some(c)
            })
            .collect();
        return Err(Refusal(PresenceError::NewMemberDenied, Member::with_id(id)));
    }
    // An authenticated connection creates only the member of its own identity: no client can
    // take another user's id (its owner would then get error 1).
    if inner.config.bind_member_id_to_user && conn.user().is_some_and(|user| user != &*sent.id) {
        return Err(Refusal(PresenceError::NewMemberDenied, sent));
    }
    {
        let st = inner.state.read();
        if st.roster.member(&sent.id).is_some()
            || st.roster.member_of_connection(conn.key()).is_some()
        {
            return Err(Refusal(PresenceError::MemberExists, sent));
        }
    }
    let hook = inner.hooks.read().before_new_member.clone();
    ask(
        hook.map(|h| h(conn, &sent)),
        PresenceError::NewMemberDenied,
        &sent,
    )?;
    let member = Arc::new(sent);
    let mut fx = Effects::new(inner);
    {
        let mut st = inner.state.write();
        st.conns.entry(conn.key()).or_insert_with(|| conn.clone());
        let keys = st
            .roster
            .add_member(member.clone(), Origin::Local(conn.key()))
            .map_err(|_| Refusal(PresenceError::MemberExists, owned(&member)))?;
        fx.send(st.conns_of(&keys), |b64| {
            frame::member_event(frame::MEMBER_NEW, &member, b64)
        });
    }
    fx.event(|| AppEvent::NewMember {
        connection: Some(conn.clone()),
        member: owned(&member),
    });
    fx.relay(|| PresenceEvent::MemberNew {
        member: owned(&member),
    });
    fx.apply(inner);
    Ok(())
}

fn member_remove(inner: &Inner, conn: &Connection, f: Inbound) -> Checked<()> {
    let mut fx = Effects::new(inner);
    let member = {
        let mut st = inner.state.write();
        let member = actor(&st, conn, f.member.as_ref())?;
        let events = st.roster.remove_member(&member.id);
        fx.removals(&st, events, Some(conn));
        member
    };
    fx.relay(|| PresenceEvent::MemberRemove {
        member: owned(&member),
    });
    fx.apply(inner);
    Ok(())
}

fn join(inner: &Inner, conn: &Connection, f: Inbound) -> Checked<()> {
    let channel = f.channel.as_str();
    let limit = inner.config.max_channels_per_member;
    let mut asked_new_channel = false;
    let mut asked_join = false;
    // A retry happens only when the channel was freed between the checks and the change, so
    // that creating it always goes through `OnBeforeNewChannel`.
    for _ in 0..3 {
        let (member, exists) = {
            let st = inner.state.read();
            let member = actor(&st, conn, f.member.as_ref())?;
            if st.roster.is_joined(&member.id, channel) {
                return Err(Refusal(PresenceError::SubscriptionExists, owned(&member)));
            }
            if limit > 0 && st.roster.member_channel_count(&member.id) >= limit {
                tracing::debug!(conn = conn.id(), "presence: channel limit reached");
                conn.limit_refused(
                    crate::metrics::Limit::Subscriptions,
                    "presence.max_channels_per_member reached",
                );
                return Err(Refusal(PresenceError::SubscriptionDenied, owned(&member)));
            }
            if !conn.channel_allowed(channel) {
                return Err(Refusal(PresenceError::SubscriptionDenied, owned(&member)));
            }
            let exists = st.roster.has_channel(channel);
            (member, exists)
        };
        ask(
            ruled(inner, conn, Action::Subscribe, channel),
            PresenceError::SubscriptionDenied,
            &member,
        )?;
        if !exists && !asked_new_channel {
            if channel.is_empty() {
                return Err(Refusal(PresenceError::NewChannelDenied, owned(&member)));
            }
            let hook = inner.hooks.read().before_new_channel.clone();
            ask(
                hook.map(|h| h(conn, channel, &member)),
                PresenceError::NewChannelDenied,
                &member,
            )?;
            asked_new_channel = true;
        }
        if !asked_join {
            let hook = inner.hooks.read().before_join_channel.clone();
            ask(
                hook.map(|h| h(conn, channel, &member)),
                PresenceError::SubscriptionDenied,
                &member,
            )?;
            asked_join = true;
        }
        let mut fx = Effects::new(inner);
        let joined = {
            let mut st = inner.state.write();
            if !st.roster.has_channel(channel) && !asked_new_channel {
                continue;
            }
            let joined = st.roster.join(&member.id, channel).map_err(|e| match e {
                JoinError::UnknownMember => Refusal(PresenceError::MemberNotFound, owned(&member)),
                JoinError::AlreadyJoined => {
                    Refusal(PresenceError::SubscriptionExists, owned(&member))
                }
            })?;
            fx.send(st.conns_of(&joined.recipients), |b64| {
                frame::channel_member_event(frame::CHANNEL_MEMBER_NEW, &member, channel, b64)
            });
            joined
        };
        let name: Arc<str> = Arc::from(channel);
        if joined.created {
            fx.event(|| AppEvent::NewChannel {
                connection: Some(conn.clone()),
                channel: name.clone(),
            });
        }
        fx.event(|| AppEvent::NewChannelMember {
            connection: Some(conn.clone()),
            channel: name.clone(),
            member: owned(&member),
        });
        fx.relay(|| PresenceEvent::ChannelMemberNew {
            member: owned(&member),
            channel: name,
        });
        fx.apply(inner);
        return Ok(());
    }
    tracing::debug!(
        conn = conn.id(),
        channel,
        "presence: join kept racing with channel removal"
    );
    Err(Refusal(
        PresenceError::SubscriptionDenied,
        f.member.unwrap_or_else(|| Member::with_id("")),
    ))
}

fn leave(inner: &Inner, conn: &Connection, f: Inbound) -> Checked<()> {
    let channel = f.channel.as_str();
    let mut fx = Effects::new(inner);
    let (member, left) = {
        let mut st = inner.state.write();
        let member = actor(&st, conn, f.member.as_ref())?;
        let left = st.roster.leave(&member.id, channel).map_err(|e| {
            let error = match e {
                LeaveError::UnknownMember => PresenceError::MemberNotFound,
                LeaveError::UnknownChannel => PresenceError::ChannelNotFound,
                LeaveError::NotJoined => PresenceError::SubscriptionNotFound,
            };
            Refusal(error, owned(&member))
        })?;
        // Scope of an explicit leave: the channel's remaining members plus the leaver.
        let mut to = st.conns_of(&left.recipients);
        to.push(conn.clone());
        fx.send(to, |b64| {
            frame::channel_member_event(frame::CHANNEL_MEMBER_REMOVE, &member, channel, b64)
        });
        (member, left)
    };
    let name: Arc<str> = Arc::from(channel);
    fx.event(|| AppEvent::RemoveChannelMember {
        connection: Some(conn.clone()),
        channel: name.clone(),
        member: owned(&member),
    });
    if left.freed {
        fx.event(|| AppEvent::ChannelFreed {
            connection: Some(conn.clone()),
            channel: name.clone(),
        });
    }
    fx.relay(|| PresenceEvent::ChannelMemberRemove {
        member: owned(&member),
        channel: name,
    });
    fx.apply(inner);
    Ok(())
}

fn publish(inner: &Inner, conn: &Connection, f: Inbound) -> Checked<()> {
    // `[limits]`: past the publish rate the transport closes the connection (1008); the publish
    // is dropped without an error frame (the client is being disconnected).
    if !conn.publish_allowed() {
        return Ok(());
    }
    let channel = f.channel.as_str();
    let member = {
        let st = inner.state.read();
        let member = actor(&st, conn, f.member.as_ref())?;
        if !channel.is_empty() {
            if !st.roster.has_channel(channel) {
                return Err(Refusal(PresenceError::ChannelNotFound, owned(&member)));
            }
            if !st.roster.is_joined(&member.id, channel) {
                return Err(Refusal(PresenceError::SubscriptionNotFound, owned(&member)));
            }
        }
        member
    };
    ask(
        ruled(inner, conn, Action::Publish, channel),
        PresenceError::PublishDenied,
        &member,
    )?;
    let hook = inner.hooks.read().before_publish.clone();
    ask(
        hook.map(|h| h(conn, &f.message, channel, &member)),
        PresenceError::PublishDenied,
        &member,
    )?;
    // With a channel the publisher comes from the roster; to everyone, as sent (docs/wire.md §3.4).
    let written = if channel.is_empty() {
        f.member.clone().unwrap_or_else(|| owned(&member))
    } else {
        owned(&member)
    };
    let mut fx = Effects::new(inner);
    let to = {
        let st = inner.state.read();
        let keys = if channel.is_empty() {
            st.roster.local_connections()
        } else {
            st.roster.channel_connections(channel)
        };
        st.conns_of(&keys)
    };
    inner.counters.published(Local, 1, to.len());
    fx.send(to, |b64| frame::publish(&f.message, channel, &written, b64));
    let name: Arc<str> = Arc::from(channel);
    let message = f.message;
    fx.event(|| AppEvent::Publish {
        connection: Some(conn.clone()),
        channel: name.clone(),
        member: written.clone(),
        message: message.clone(),
    });
    fx.relay(|| PresenceEvent::Publish {
        channel: name,
        message,
        member: written,
    });
    fx.apply(inner);
    Ok(())
}

fn get_members(inner: &Inner, conn: &Connection, f: Inbound) -> Checked<()> {
    let channel = f.channel.as_str();
    let member = actor(&inner.state.read(), conn, f.member.as_ref())?;
    let hook = inner.hooks.read().before_send_members.clone();
    ask(
        hook.map(|h| h(conn, channel, &member)),
        PresenceError::SendMembersDenied,
        &member,
    )?;
    // Only the list of `Arc`s is taken under the lock; the reply is encoded after it, from the
    // members' memoised entries.
    let list = {
        let st = inner.state.read();
        if channel.is_empty() {
            Some(st.roster.members())
        } else {
            st.roster.channel_members(channel)
        }
    };
    let list = list.ok_or_else(|| Refusal(PresenceError::ChannelNotFound, owned(&member)))?;
    let mut fx = Effects::new(inner);
    fx.reply(conn, frame::send_members(channel, &member, &list, fx.b64));
    fx.apply(inner);
    Ok(())
}

fn invite(inner: &Inner, conn: &Connection, f: Inbound) -> Checked<()> {
    let channel: Arc<str> = Arc::from(f.channel.as_str());
    // The inviter must be this connection's member, but is forwarded as sent (docs/wire.md §3.4).
    let inviter = f.member.clone().unwrap_or_else(|| Member::with_id(""));
    let mut local = Vec::new();
    let mut remote = Vec::new();
    {
        let st = inner.state.read();
        actor(&st, conn, f.member.as_ref())?;
        let mut seen = HashSet::new();
        for invitee in &f.members {
            if !seen.insert(invitee.id.clone()) {
                continue;
            }
            match st.roster.origin(&invitee.id) {
                Some(Origin::Local(k)) => {
                    if let Some(c) = st.conns.get(k) {
                        local.push((c.clone(), invitee.id.clone()));
                    }
                }
                Some(Origin::Remote(r)) => remote.push((invitee.id.clone(), r.node_id.clone())),
                None => tracing::debug!(
                    conn = conn.id(),
                    invitee = &*invitee.id,
                    "presence: invitee unknown"
                ),
            }
        }
    }
    let mut fx = Effects::new(inner);
    for (_, id) in &local {
        fx.event(|| AppEvent::Invitation {
            connection: Some(conn.clone()),
            channel: channel.clone(),
            inviter: inviter.clone(),
            invitee: id.clone(),
        });
    }
    fx.send(local.into_iter().map(|(c, _)| c).collect(), |b64| {
        frame::invitation(&channel, &inviter, b64)
    });
    for (target, target_node) in remote {
        fx.relay(|| PresenceEvent::Invitation {
            channel: channel.clone(),
            inviter: inviter.clone(),
            target,
            target_node,
        });
    }
    fx.apply(inner);
    Ok(())
}

/// `conn` is gone: its member (whatever its id) and memberships are removed with the frames of
/// an explicit removal (docs/wire.md §5.3 item 21): no ghost survives a disconnect.
pub(crate) fn disconnect(inner: &Inner, conn: &Connection) {
    let mut fx = Effects::new(inner);
    let removed = {
        let mut st = inner.state.write();
        st.conns.remove(&conn.key());
        let member = st.roster.member_of_connection(conn.key()).cloned();
        let events = st.roster.remove_connection(conn.key());
        fx.removals(&st, events, Some(conn));
        member
    };
    if let Some(member) = removed {
        fx.relay(|| PresenceEvent::MemberRemove {
            member: owned(&member),
        });
    }
    fx.event(|| AppEvent::Disconnected {
        connection: conn.clone(),
    });
    fx.apply(inner);
}
