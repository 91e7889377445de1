//! The application's side of the Presence protocol: accept/deny hooks (the reference's
//! `OnBefore…` events) and notifications of everything that happened.
//!
//! Hooks and the event handler are plain synchronous closures. They run on the task of the
//! connection whose frame caused them (or the caller of `apply_remote`), never under the
//! protocol's locks, so they may call the protocol's read API; they must not block.

use std::sync::Arc;

use super::errors::PresenceError;
use crate::hub::roster::Member;
use crate::protocol::access::ChannelRules;
use crate::protocol::json::Payload;
use crate::transport::Connection;

/// `OnBeforeNewMember(conn, member, var Accept)`: `false` refuses with error 2.
pub type NewMemberHook = dyn Fn(&Connection, &Member) -> bool + Send + Sync;

/// `OnBeforeNewChannel` / `OnBeforeNewChannelMember` / `OnBeforeSendMembers`
/// `(conn, channel, member, var Accept)`: `false` refuses with error 6 / 10 / 30.
pub type ChannelHook = dyn Fn(&Connection, &str, &Member) -> bool + Send + Sync;

/// `OnBeforePublishMsg(conn, message, channel, member, var Accept)`: `false` refuses with error 20.
pub type PublishHook = dyn Fn(&Connection, &Payload, &str, &Member) -> bool + Send + Sync;

/// Receives every [`AppEvent`].
pub type EventHandler = dyn Fn(&AppEvent) + Send + Sync;

/// The hooks an application installed; absent ones accept.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    /// Asked before a member is created.
    pub(crate) before_new_member: Option<Arc<NewMemberHook>>,
    /// Asked before a join creates its channel.
    pub(crate) before_new_channel: Option<Arc<ChannelHook>>,
    /// Asked before a member joins a channel.
    pub(crate) before_join_channel: Option<Arc<ChannelHook>>,
    /// Asked before a publish is delivered.
    pub(crate) before_publish: Option<Arc<PublishHook>>,
    /// Asked before a `get@members` is answered.
    pub(crate) before_send_members: Option<Arc<ChannelHook>>,
    /// Told about everything that happened.
    pub(crate) on_event: Option<Arc<EventHandler>>,
    /// The channel rules, asked before the join and publish hooks.
    pub(crate) rules: Option<Arc<ChannelRules>>,
}

/// Something that happened in the Presence protocol, as the application hears it.
///
/// `connection` is the local connection that caused it; `None` when the change came from another
/// node (`apply_remote`, `purge_node`) or from the server API.
#[derive(Debug, Clone)]
pub enum AppEvent {
    /// A connection negotiated `presence.esegece.com` and got its session frame.
    Connected {
        /// The connection.
        connection: Connection,
    },
    /// A Presence connection is gone (after its member, if any, was removed).
    Disconnected {
        /// The connection.
        connection: Connection,
    },
    /// `OnNewMember`: a member was created.
    NewMember {
        /// The member's connection, when local.
        connection: Option<Connection>,
        /// The member.
        member: Member,
    },
    /// `OnRemoveMember`: a member was removed (explicitly, by disconnect, or with its node).
    RemoveMember {
        /// The member's connection, when local.
        connection: Option<Connection>,
        /// The member.
        member: Member,
    },
    /// `OnNewChannel`: a channel was created by its first join (again after it was freed).
    NewChannel {
        /// The joining member's connection, when local.
        connection: Option<Connection>,
        /// The channel.
        channel: Arc<str>,
    },
    /// The last member left a channel and it was freed.
    ChannelFreed {
        /// The leaving member's connection, when local.
        connection: Option<Connection>,
        /// The channel.
        channel: Arc<str>,
    },
    /// `OnNewChannelMember`: a member joined a channel.
    NewChannelMember {
        /// The member's connection, when local.
        connection: Option<Connection>,
        /// The channel.
        channel: Arc<str>,
        /// The member.
        member: Member,
    },
    /// `OnRemoveChannelMember`: a member left a channel (explicitly or by removal).
    RemoveChannelMember {
        /// The member's connection, when local.
        connection: Option<Connection>,
        /// The channel.
        channel: Arc<str>,
        /// The member.
        member: Member,
    },
    /// A message was published (by a client, another node, or [`super::PresenceProtocol::broadcast`]).
    Publish {
        /// The publisher's connection, when local.
        connection: Option<Connection>,
        /// The channel; empty for everyone.
        channel: Arc<str>,
        /// The publisher as written in the frame (empty for a server broadcast).
        member: Member,
        /// The message.
        message: Payload,
    },
    /// An invitation was delivered to a local member.
    Invitation {
        /// The inviter's connection, when local.
        connection: Option<Connection>,
        /// The channel.
        channel: Arc<str>,
        /// The inviter, as sent.
        inviter: Member,
        /// The invitee's id.
        invitee: Arc<str>,
    },
    /// `OnErrorMemberChannel` / `OnErrorPublishMsg`: a request was refused with an error frame.
    Error {
        /// The connection that was refused.
        connection: Connection,
        /// The error sent.
        error: PresenceError,
        /// The channel written in the error frame.
        channel: String,
        /// The member written in the error frame.
        member: Member,
    },
}
