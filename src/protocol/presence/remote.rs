//! Events from other nodes: applied to the replica with the same frames and scopes as local
//! changes, never relayed back (design/cluster.md, "Presence union").
//!
//! A node only speaks for its own members: an event about a member that this roster holds for
//! another origin (a local member, or another node's) is ignored and logged. An event carrying a
//! new incarnation of a known node first purges the replicas of the old one.

use crate::log_text::Printable;
use std::collections::HashSet;
use std::sync::Arc;

use super::effects::{Effects, owned};
use super::event::{NodeHoldings, PresenceEvent, SnapshotMember};
use super::frame;
use super::hooks::AppEvent;
use super::{Inner, State};
use crate::hub::roster::{Member, Origin, RemoteOrigin, RosterEvent};
use crate::metrics::Origin::Remote;

/// Applies `event` from `origin`.
pub(crate) fn apply(inner: &Inner, event: &PresenceEvent, origin: &RemoteOrigin) {
    let mut fx = Effects::without_relay(inner);
    {
        let mut st = inner.state.write();
        if let Some(known) = st.roster.node_incarnation(&origin.node_id)
            && known != origin.incarnation
        {
            tracing::debug!(
                node = &*origin.node_id,
                "presence: new incarnation, old replicas purged"
            );
            let events = st.roster.purge_node(&origin.node_id);
            fx.removals(&st, events, None);
        }
        match event {
            PresenceEvent::MemberNew { member } => add(&mut st, &mut fx, member, origin),
            PresenceEvent::MemberRemove { member } => {
                if owns(&st, &member.id, origin) {
                    let events = st.roster.remove_member(&member.id);
                    fx.removals(&st, events, None);
                }
            }
            PresenceEvent::ChannelMemberNew { member, channel } => {
                if owns(&st, &member.id, origin) {
                    join(&mut st, &mut fx, &member.id, channel);
                }
            }
            PresenceEvent::ChannelMemberRemove { member, channel } => {
                if owns(&st, &member.id, origin) {
                    leave(&mut st, &mut fx, &member.id, channel);
                }
            }
            PresenceEvent::Publish {
                channel,
                message,
                member,
            } => {
                let keys = if channel.is_empty() {
                    st.roster.local_connections()
                } else {
                    st.roster.channel_connections(channel)
                };
                let to = st.conns_of(&keys);
                inner.counters.published(Remote, 1, to.len());
                fx.send(to, |b64| frame::publish(message, channel, member, b64));
                fx.event(|| AppEvent::Publish {
                    connection: None,
                    channel: channel.clone(),
                    member: member.clone(),
                    message: message.clone(),
                });
            }
            PresenceEvent::Invitation {
                channel,
                inviter,
                target,
                ..
            } => {
                if let Some(Origin::Local(k)) = st.roster.origin(target)
                    && let Some(c) = st.conns.get(k)
                {
                    fx.reply(c, frame::invitation(channel, inviter, fx.b64));
                    fx.event(|| AppEvent::Invitation {
                        connection: None,
                        channel: channel.clone(),
                        inviter: inviter.clone(),
                        invitee: target.clone(),
                    });
                }
            }
            PresenceEvent::Snapshot { members } => reconcile(&mut st, &mut fx, members, origin),
        }
    }
    fx.apply(inner);
}

/// Removes every replica of `node_id`; returns how many members were removed.
pub(crate) fn purge(inner: &Inner, node_id: &str) -> usize {
    let mut fx = Effects::without_relay(inner);
    let n = {
        let mut st = inner.state.write();
        let events = st.roster.purge_node(node_id);
        let n = events
            .iter()
            .filter(|e| matches!(e, RosterEvent::MemberRemoved { .. }))
            .count();
        fx.removals(&st, events, None);
        n
    };
    fx.apply(inner);
    n
}

/// What `node_id` holds in the replica.
pub(crate) fn holdings(inner: &Inner, node_id: &str) -> NodeHoldings {
    let st = inner.state.read();
    let mut members = Vec::new();
    let mut channels: std::collections::BTreeSet<Arc<str>> = Default::default();
    for id in st.roster.node_members(node_id) {
        let Some(m) = st.roster.member(&id) else {
            continue;
        };
        let list = st.roster.channels_of(&id);
        channels.extend(list.iter().cloned());
        members.push(SnapshotMember {
            member: owned(m),
            channels: list,
        });
    }
    let of_node = |id: &str| matches!(st.roster.origin(id), Some(Origin::Remote(r)) if &*r.node_id == node_id);
    let sole_channels = channels
        .into_iter()
        .filter(|c| {
            st.roster
                .channel_members(c)
                .is_some_and(|list| list.iter().all(|m| of_node(&m.id)))
        })
        .collect();
    NodeHoldings {
        incarnation: st.roster.node_incarnation(node_id),
        members,
        sole_channels,
    }
}

/// This node's local members with their channels.
pub(crate) fn snapshot(inner: &Inner) -> PresenceEvent {
    let list = inner.state.read().roster.local_snapshot();
    PresenceEvent::Snapshot {
        members: list
            .into_iter()
            .map(|(m, channels)| SnapshotMember {
                member: owned(&m),
                channels,
            })
            .collect(),
    }
}

fn owns(st: &State, id: &str, origin: &RemoteOrigin) -> bool {
    let ok = matches!(st.roster.origin(id), Some(Origin::Remote(r)) if r.node_id == origin.node_id);
    if !ok {
        tracing::debug!(
            member = id,
            node = &*origin.node_id,
            "presence: remote event about a member that node does not hold; ignored"
        );
    }
    ok
}

fn add(st: &mut State, fx: &mut Effects, member: &Member, origin: &RemoteOrigin) {
    let member = Arc::new(member.clone());
    match st
        .roster
        .add_member(member.clone(), Origin::Remote(origin.clone()))
    {
        Ok(keys) => {
            fx.send(st.conns_of(&keys), |b64| {
                frame::member_event(frame::MEMBER_NEW, &member, b64)
            });
            fx.event(|| AppEvent::NewMember {
                connection: None,
                member: owned(&member),
            });
        }
        Err(e) => {
            tracing::debug!(
                member = &*member.id,
                node = &*origin.node_id,
                ?e,
                "presence: remote member not added"
            );
        }
    }
}

fn join(st: &mut State, fx: &mut Effects, id: &str, channel: &Arc<str>) {
    let Ok(joined) = st.roster.join(id, channel) else {
        tracing::debug!(member = id, channel = %Printable(channel), "presence: remote join ignored");
        return;
    };
    let Some(member) = st.roster.member(id).cloned() else {
        return;
    };
    fx.send(st.conns_of(&joined.recipients), |b64| {
        frame::channel_member_event(frame::CHANNEL_MEMBER_NEW, &member, channel, b64)
    });
    if joined.created {
        fx.event(|| AppEvent::NewChannel {
            connection: None,
            channel: channel.clone(),
        });
    }
    fx.event(|| AppEvent::NewChannelMember {
        connection: None,
        channel: channel.clone(),
        member: owned(&member),
    });
}

fn leave(st: &mut State, fx: &mut Effects, id: &str, channel: &Arc<str>) {
    let Some(member) = st.roster.member(id).cloned() else {
        return;
    };
    let Ok(left) = st.roster.leave(id, channel) else {
        tracing::debug!(member = id, channel = %Printable(channel), "presence: remote leave ignored");
        return;
    };
    fx.send(st.conns_of(&left.recipients), |b64| {
        frame::channel_member_event(frame::CHANNEL_MEMBER_REMOVE, &member, channel, b64)
    });
    fx.event(|| AppEvent::RemoveChannelMember {
        connection: None,
        channel: channel.clone(),
        member: owned(&member),
    });
    if left.freed {
        fx.event(|| AppEvent::ChannelFreed {
            connection: None,
            channel: channel.clone(),
        });
    }
}

/// Makes the replica of `origin` match `members`: gone members removed, new ones announced,
/// memberships brought in line.
fn reconcile(st: &mut State, fx: &mut Effects, members: &[SnapshotMember], origin: &RemoteOrigin) {
    let wanted: HashSet<&str> = members.iter().map(|m| &*m.member.id).collect();
    for id in st.roster.node_members(&origin.node_id) {
        if !wanted.contains(&*id) {
            let events = st.roster.remove_member(&id);
            fx.removals(st, events, None);
        }
    }
    for sm in members {
        let id = &*sm.member.id;
        let known = match st.roster.origin(id) {
            None => false,
            Some(Origin::Remote(r)) if r.node_id == origin.node_id => true,
            Some(_) => {
                tracing::debug!(
                    member = id,
                    "presence: snapshot member held by another origin; ignored"
                );
                continue;
            }
        };
        if !known {
            add(st, fx, &sm.member, origin);
        }
        let have: HashSet<Arc<str>> = st.roster.channels_of(id).into_iter().collect();
        let want: HashSet<&str> = sm.channels.iter().map(|c| &**c).collect();
        for c in &have {
            if !want.contains(&**c) {
                leave(st, fx, id, c);
            }
        }
        for c in &sm.channels {
            if !have.contains(c) {
                join(st, fx, id, c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{PresenceConfig, PresenceProtocol};
    use super::*;

    fn from(p: &PresenceProtocol, node: &str, event: PresenceEvent) {
        p.apply_remote(
            &event,
            &RemoteOrigin {
                node_id: Arc::from(node),
                incarnation: 7,
            },
        );
    }

    fn joined(p: &PresenceProtocol, node: &str, id: &str, channels: &[&str]) {
        let member = Member::new(id, id, "");
        from(
            p,
            node,
            PresenceEvent::MemberNew {
                member: member.clone(),
            },
        );
        for c in channels {
            from(
                p,
                node,
                PresenceEvent::ChannelMemberNew {
                    member: member.clone(),
                    channel: Arc::from(*c),
                },
            );
        }
    }

    #[test]
    fn holdings_name_a_node_s_members_and_the_channels_only_they_are_in() {
        let p = PresenceProtocol::new(PresenceConfig::default());
        joined(&p, "b", "b1", &["shared", "only-b"]);
        joined(&p, "b", "b2", &["only-b"]);
        joined(&p, "c", "c1", &["shared"]);
        let held = p.node_holdings("b");
        assert_eq!(held.incarnation, Some(7));
        let ids: Vec<&str> = held.members.iter().map(|m| &*m.member.id).collect();
        assert_eq!(ids, ["b1", "b2"]);
        assert_eq!(held.members[0].channels.len(), 2);
        assert_eq!(held.sole_channels, [Arc::from("only-b")]);
        assert_eq!(p.node_holdings("x"), NodeHoldings::default());
        // What the purge then removes is what the holdings said.
        assert_eq!(p.purge_node("b"), 2);
        assert_eq!(p.channels(), [("shared".to_owned(), 1)]);
    }
}
