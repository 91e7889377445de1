//! One webhook event: its type, subject, deterministic id and JSON form.

use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::hub::roster::Member;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A WebSocket connection was opened (after its upgrade).
    ConnectionOpened,
    /// A WebSocket connection was closed (or its node died).
    ConnectionClosed,
    /// A Presence member was created.
    MemberJoined,
    /// A Presence member was removed (by request, by its disconnection, or with its node).
    MemberLeft,
    /// A Presence member joined a channel.
    ChannelMemberJoined,
    /// A Presence member left a channel.
    ChannelMemberLeft,
    /// A Presence channel got its first member, cluster-wide.
    ChannelOccupied,
    /// A Presence channel lost its last member, cluster-wide.
    ChannelVacated,
}

impl EventType {
    /// Every type, in documentation order.
    pub const ALL: [EventType; 8] = [
        EventType::ConnectionOpened,
        EventType::ConnectionClosed,
        EventType::MemberJoined,
        EventType::MemberLeft,
        EventType::ChannelMemberJoined,
        EventType::ChannelMemberLeft,
        EventType::ChannelOccupied,
        EventType::ChannelVacated,
    ];

    /// The `type` field.
    pub fn name(self) -> &'static str {
        match self {
            EventType::ConnectionOpened => "connection_opened",
            EventType::ConnectionClosed => "connection_closed",
            EventType::MemberJoined => "member_joined",
            EventType::MemberLeft => "member_left",
            EventType::ChannelMemberJoined => "channel_member_joined",
            EventType::ChannelMemberLeft => "channel_member_left",
            EventType::ChannelOccupied => "channel_occupied",
            EventType::ChannelVacated => "channel_vacated",
        }
    }

    /// The type named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    /// A connection, by its GUID.
    Connection(Arc<str>),
    /// A Presence member.
    Member(Member),
    /// A Presence member and one of its channels.
    ChannelMember(Member, Arc<str>),
    /// A Presence channel.
    Channel(Arc<str>),
}

impl Subject {
    /// The bytes an id is derived from (unambiguous: each part is length-prefixed).
    fn key(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut part = |s: &str| {
            out.extend_from_slice(&(s.len() as u64).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        match self {
            Subject::Connection(c) => part(c),
            Subject::Member(m) => part(&m.id),
            Subject::ChannelMember(m, c) => {
                part(&m.id);
                part(c);
            }
            Subject::Channel(c) => part(c),
        }
        out
    }
}

/// Where an event's id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdSource {
    /// An event this node saw happen: its place in the node's own sequence.
    Local(u64),
    /// An event a survivor computes for a crashed node (every survivor computes the same id).
    Takeover,
}

/// One webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// Unique per event, and the same for the same event computed on two nodes.
    pub id: String,
    /// What happened.
    pub kind: EventType,
    /// When it happened (or when a survivor noticed the crash), in milliseconds since the epoch.
    pub time_ms: u64,
    /// The node the connection or member was on.
    pub node: Arc<str>,
    /// A survivor that reports the event for a crashed `node`; `None` when `node` reports it.
    pub reported_by: Option<Arc<str>>,
    /// What it is about.
    pub subject: Subject,
}

/// The id of event `kind` about `subject` on `node` (incarnation `incarnation`): the first 16
/// bytes of a SHA-256 over all of them, in hex.
pub(crate) fn event_id(
    node: &str,
    incarnation: u64,
    kind: EventType,
    subject: &Subject,
    source: IdSource,
) -> String {
    let mut h = Sha256::new();
    h.update((node.len() as u64).to_be_bytes());
    h.update(node.as_bytes());
    h.update(incarnation.to_be_bytes());
    h.update(kind.name().as_bytes());
    h.update([0]);
    match source {
        IdSource::Local(n) => {
            h.update(b"L");
            h.update(n.to_be_bytes());
        }
        IdSource::Takeover => h.update(b"T"),
    }
    h.update(subject.key());
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Serialize)]
struct JsonMember<'a> {
    id: &'a str,
    name: &'a str,
    info: &'a str,
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    time_ms: u64,
    node: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reported_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    member: Option<JsonMember<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
}

impl Event {
    /// The event as one JSON object (an element of the body's `events` array).
    pub(crate) fn to_json(&self) -> String {
        let (connection, member, channel) = match &self.subject {
            Subject::Connection(c) => (Some(&**c), None, None),
            Subject::Member(m) => (None, Some(m), None),
            Subject::ChannelMember(m, c) => (None, Some(m), Some(&**c)),
            Subject::Channel(c) => (None, None, Some(&**c)),
        };
        let json = JsonEvent {
            id: &self.id,
            kind: self.kind.name(),
            time_ms: self.time_ms,
            node: &self.node,
            reported_by: self.reported_by.as_deref(),
            connection,
            member: member.map(|m| JsonMember {
                id: &m.id,
                name: &m.name,
                info: &m.info,
            }),
            channel,
        };
        serde_json::to_string(&json).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.name()), Some(t));
        }
        assert_eq!(EventType::parse("member"), None);
    }

    #[test]
    fn ids_are_deterministic_and_tell_events_apart() {
        let m = Member::new("m1", "alice", "");
        let s = Subject::Member(m.clone());
        let a = event_id("b", 7, EventType::MemberLeft, &s, IdSource::Takeover);
        assert_eq!(
            a,
            event_id("b", 7, EventType::MemberLeft, &s, IdSource::Takeover)
        );
        assert_eq!(a.len(), 32);
        for other in [
            event_id("c", 7, EventType::MemberLeft, &s, IdSource::Takeover),
            event_id("b", 8, EventType::MemberLeft, &s, IdSource::Takeover),
            event_id("b", 7, EventType::MemberJoined, &s, IdSource::Takeover),
            event_id("b", 7, EventType::MemberLeft, &s, IdSource::Local(1)),
            event_id(
                "b",
                7,
                EventType::MemberLeft,
                &Subject::Member(Member::new("m2", "alice", "")),
                IdSource::Takeover,
            ),
        ] {
            assert_ne!(a, other);
        }
        // Length prefixes: ("ab","c") is not ("a","bc").
        let x = Subject::ChannelMember(Member::new("ab", "", ""), Arc::from("c"));
        let y = Subject::ChannelMember(Member::new("a", "", ""), Arc::from("bc"));
        assert_ne!(
            event_id("n", 1, EventType::ChannelMemberLeft, &x, IdSource::Takeover),
            event_id("n", 1, EventType::ChannelMemberLeft, &y, IdSource::Takeover)
        );
    }

    #[test]
    fn json_carries_the_subject_fields_of_its_type() {
        let e = Event {
            id: "i".into(),
            kind: EventType::ChannelMemberLeft,
            time_ms: 5,
            node: Arc::from("b"),
            reported_by: Some(Arc::from("a")),
            subject: Subject::ChannelMember(Member::new("m1", "al\"ice", "x"), Arc::from("room")),
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id":"i","type":"channel_member_left","time_ms":5,"node":"b",
                "reported_by":"a","member":{"id":"m1","name":"al\"ice","info":"x"},"channel":"room"})
        );
        let e = Event {
            kind: EventType::ConnectionOpened,
            reported_by: None,
            subject: Subject::Connection(Arc::from("G")),
            ..e
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id":"i","type":"connection_opened","time_ms":5,"node":"b","connection":"G"})
        );
    }
}
