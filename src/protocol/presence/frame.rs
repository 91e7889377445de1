//! Presence frames: the pure parse of inbound frames and the encoders of every outbound frame,
//! with the key order of docs/wire.md §3.3. No I/O, no state.
//!
//! Output is compact, with standard escaping (docs/wire.md §5.1 item 4). With `b64` set, every string
//! value except `jsonrpc` is written as `sgc@b64:…` (docs/wire.md §1.4) — `method` and ids included —
//! except the entries of `members` lists, which clients read without decoding (docs/wire.md §3.6), and
//! empty strings, which stay `""`.

use std::sync::Arc;

use bytes::Bytes;

use super::errors::PresenceError;
use crate::hub::roster::Member;
use crate::protocol::json::{self, Payload, RawObject};

/// `sgc@presence@session`: server → client, first frame.
pub const SESSION: &str = "sgc@presence@session";
/// `sgc@presence@member@new`.
pub const MEMBER_NEW: &str = "sgc@presence@member@new";
/// `sgc@presence@member@remove`.
pub const MEMBER_REMOVE: &str = "sgc@presence@member@remove";
/// `sgc@presence@acknowledgment` (request-shaped, both directions).
pub const ACKNOWLEDGMENT: &str = "sgc@presence@acknowledgment";
/// `sgc@presence@channel@member@new`.
pub const CHANNEL_MEMBER_NEW: &str = "sgc@presence@channel@member@new";
/// `sgc@presence@channel@member@remove`.
pub const CHANNEL_MEMBER_REMOVE: &str = "sgc@presence@channel@member@remove";
/// `sgc@presence@publish@msg`.
pub const PUBLISH_MSG: &str = "sgc@presence@publish@msg";
/// `sgc@presence@error@member@channel`: every error goes out under this method (docs/wire.md §5.3).
pub const ERROR_MEMBER_CHANNEL: &str = "sgc@presence@error@member@channel";
/// `sgc@presence@error@publish@msg`: never sent by wscluster (docs/wire.md §3.6).
pub const ERROR_PUBLISH_MSG: &str = "sgc@presence@error@publish@msg";
/// `sgc@presence@get@members`: client → server.
pub const GET_MEMBERS: &str = "sgc@presence@get@members";
/// `sgc@presence@send@members`: the reply to `get@members`.
pub const SEND_MEMBERS: &str = "sgc@presence@send@members";
/// `sgc@presence@channel@invitation`.
pub const CHANNEL_INVITATION: &str = "sgc@presence@channel@invitation";

/// What an inbound frame asks for, by its `method`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `member@new`: become a member.
    MemberNew,
    /// `member@remove`: stop being a member.
    MemberRemove,
    /// `channel@member@new`: join a channel.
    ChannelMemberNew,
    /// `channel@member@remove`: leave a channel.
    ChannelMemberRemove,
    /// `publish@msg`: publish to a channel, or to everyone with an empty channel.
    PublishMsg,
    /// `get@members`: ask for a channel's members, or everyone's with an empty channel.
    GetMembers,
    /// `channel@invitation`: invite the listed members to a channel.
    Invitation,
    /// `acknowledgment`: the client acknowledges a frame the server sent with an id.
    Acknowledgment,
    /// Any other method (server-only methods, newer client methods, garbage): logged, ignored.
    Other(String),
}

impl Kind {
    fn of(method: &str) -> Self {
        match method {
            MEMBER_NEW => Kind::MemberNew,
            MEMBER_REMOVE => Kind::MemberRemove,
            CHANNEL_MEMBER_NEW => Kind::ChannelMemberNew,
            CHANNEL_MEMBER_REMOVE => Kind::ChannelMemberRemove,
            PUBLISH_MSG => Kind::PublishMsg,
            GET_MEMBERS => Kind::GetMembers,
            CHANNEL_INVITATION => Kind::Invitation,
            ACKNOWLEDGMENT => Kind::Acknowledgment,
            other => Kind::Other(other.to_owned()),
        }
    }
}

/// An inbound frame, read leniently: absent objects are `None` or empty, scalars where objects
/// were expected are read as the object's main field (`"channel":"room"` names a channel),
/// arrays where objects were expected are absent, every string is `sgc@b64:`-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// What the frame asks for.
    pub kind: Kind,
    /// The frame's `id` as text (numbers included); `None` when absent or empty.
    pub id: Option<String>,
    /// The `member` object as sent; `None` when absent or null.
    pub member: Option<Member>,
    /// `channel.name`; empty when absent.
    pub channel: String,
    /// `message.text`, raw when it was an object or array; empty text when absent.
    pub message: Payload,
    /// The `members` list (invitees); empty when absent or not an array.
    pub members: Vec<Member>,
}

/// Why an inbound frame could not be read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a JSON object, even leniently.
    #[error("not a JSON object")]
    NotAnObject,
    /// No `method`, or an empty one.
    #[error("no method")]
    NoMethod,
}

/// Reads one inbound text frame.
pub fn parse(text: &str) -> Result<Inbound, ParseError> {
    let clean = json::sanitize(text);
    let obj = RawObject::parse(&clean).ok_or(ParseError::NotAnObject)?;
    let method = obj.text("method").unwrap_or_default();
    if method.is_empty() {
        return Err(ParseError::NoMethod);
    }
    let id = obj.text("id").filter(|s| !s.is_empty());
    let member = obj.raw("member").and_then(member_of);
    let channel = obj
        .raw("channel")
        .map(|raw| field_or_scalar(raw, "name"))
        .unwrap_or_default();
    let message = match obj.raw("message") {
        None => Payload::Text(String::new()),
        Some(raw) => match RawObject::from_raw(raw) {
            Some(m) => m
                .raw("text")
                .map(Payload::from_raw)
                .unwrap_or(Payload::Text(String::new())),
            None => Payload::from_raw(raw),
        },
    };
    let members = obj
        .raw("members")
        .and_then(|raw| serde_json::from_str::<Vec<&serde_json::value::RawValue>>(raw.get()).ok())
        .map(|list| list.into_iter().filter_map(member_of).collect())
        .unwrap_or_default();
    Ok(Inbound {
        kind: Kind::of(&method),
        id,
        member,
        channel,
        message,
        members,
    })
}

/// A member object; a scalar is read as the id alone; `null` or an array is no member.
fn member_of(raw: &serde_json::value::RawValue) -> Option<Member> {
    let t = raw.get().trim();
    if t == "null" || t.starts_with('[') {
        return None;
    }
    Some(match RawObject::from_raw(raw) {
        Some(o) => Member::new(
            o.text("id").unwrap_or_default(),
            o.text("name").unwrap_or_default(),
            o.text("info").unwrap_or_default(),
        ),
        None => Member::with_id(json::raw_to_text(raw)),
    })
}

/// `key` of an object; a scalar is read as that field; an array is absent.
fn field_or_scalar(raw: &serde_json::value::RawValue, key: &str) -> String {
    if raw.get().trim_start().starts_with('[') {
        return String::new();
    }
    match RawObject::from_raw(raw) {
        Some(o) => o.text(key).unwrap_or_default(),
        None => json::raw_to_text(raw),
    }
}

/// A compact frame writer; `b64` selects the `sgc@b64:` encoding of string values.
struct Writer {
    out: Vec<u8>,
    b64: bool,
}

impl Writer {
    fn start(method: &str, b64: bool, capacity: usize) -> Self {
        let mut w = Self {
            out: Vec::with_capacity(capacity + 64),
            b64,
        };
        w.out.extend_from_slice(br#"{"jsonrpc":"2.0","method":"#);
        w.str(method);
        w
    }

    fn key(&mut self, key: &str) {
        self.out.push(b',');
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn str(&mut self, s: &str) {
        if self.b64 && !s.is_empty() {
            json::write_str(&mut self.out, &json::encode_b64(s));
        } else {
            json::write_str(&mut self.out, s);
        }
    }

    fn member(&mut self, m: &Member) {
        if self.b64 {
            self.out.extend_from_slice(br#"{"id":"#);
            self.str(&m.id);
            self.out.extend_from_slice(br#","name":"#);
            self.str(&m.name);
            self.out.extend_from_slice(br#","info":"#);
            self.str(&m.info);
            self.out.push(b'}');
        } else {
            self.out.extend_from_slice(&member_entry(m));
        }
    }

    fn channel(&mut self, name: &str) {
        self.key("channel");
        self.out.extend_from_slice(br#"{"name":"#);
        self.str(name);
        self.out.push(b'}');
    }

    fn message(&mut self, message: &Payload) {
        self.key("message");
        self.out.extend_from_slice(br#"{"text":"#);
        if self.b64 {
            self.str(message.as_text());
        } else {
            message.write(&mut self.out);
        }
        self.out.push(b'}');
    }

    fn finish(mut self) -> Bytes {
        self.out.push(b'}');
        Bytes::from(self.out)
    }
}

/// A member as a `members` list entry, `{"id":…,"name":…,"info":…}`, never Base64-encoded;
/// memoised in the member (see [`Member::entry_with`]).
pub fn member_entry(m: &Member) -> Bytes {
    m.entry_with(|m| {
        let mut out = Vec::with_capacity(m.id.len() + m.name.len() + m.info.len() + 32);
        out.extend_from_slice(br#"{"id":"#);
        json::write_str(&mut out, &m.id);
        out.extend_from_slice(br#","name":"#);
        json::write_str(&mut out, &m.name);
        out.extend_from_slice(br#","info":"#);
        json::write_str(&mut out, &m.info);
        out.push(b'}');
        Bytes::from(out)
    })
}

/// `{"jsonrpc":"2.0","method":"sgc@presence@session","message":{"text":"<guid>"}}`.
pub fn session(connection_id: &str, b64: bool) -> Bytes {
    let mut w = Writer::start(SESSION, b64, connection_id.len());
    w.message(&Payload::Text(connection_id.to_owned()));
    w.finish()
}

/// `member@new` or `member@remove` ([`MEMBER_NEW`], [`MEMBER_REMOVE`]): `method, member`.
pub fn member_event(method: &str, member: &Member, b64: bool) -> Bytes {
    let mut w = Writer::start(method, b64, 96);
    w.key("member");
    w.member(member);
    w.finish()
}

/// `channel@member@new` or `channel@member@remove`: `method, member, channel`.
pub fn channel_member_event(method: &str, member: &Member, channel: &str, b64: bool) -> Bytes {
    let mut w = Writer::start(method, b64, 96 + channel.len());
    w.key("member");
    w.member(member);
    w.channel(channel);
    w.finish()
}

/// `publish@msg`: `method, message, channel, member`.
pub fn publish(message: &Payload, channel: &str, member: &Member, b64: bool) -> Bytes {
    let mut w = Writer::start(PUBLISH_MSG, b64, message.len_hint() + channel.len() + 96);
    w.message(message);
    w.channel(channel);
    w.key("member");
    w.member(member);
    w.finish()
}

/// `send@members`: `method, channel, member (the requester), members`.
pub fn send_members(
    channel: &str,
    requester: &Member,
    members: &[Arc<Member>],
    b64: bool,
) -> Bytes {
    let entries: Vec<Bytes> = members.iter().map(|m| member_entry(m)).collect();
    let size: usize = entries.iter().map(|e| e.len() + 1).sum();
    let mut w = Writer::start(SEND_MEMBERS, b64, size + channel.len() + 96);
    w.channel(channel);
    w.key("member");
    w.member(requester);
    w.key("members");
    w.out.push(b'[');
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            w.out.push(b',');
        }
        w.out.extend_from_slice(e);
    }
    w.out.push(b']');
    w.finish()
}

/// `channel@invitation` as delivered to an invitee: `method, channel, member (the inviter as
/// sent), "members":[]`.
pub fn invitation(channel: &str, inviter: &Member, b64: bool) -> Bytes {
    let mut w = Writer::start(CHANNEL_INVITATION, b64, channel.len() + 96);
    w.channel(channel);
    w.key("member");
    w.member(inviter);
    w.out.extend_from_slice(br#","members":[]"#);
    w.finish()
}

/// `error@member@channel`: `method, error{code,text}, channel, member`.
pub fn error(err: PresenceError, channel: &str, member: &Member, b64: bool) -> Bytes {
    let mut w = Writer::start(ERROR_MEMBER_CHANNEL, b64, channel.len() + 160);
    w.key("error");
    w.out.extend_from_slice(br#"{"code":"#);
    w.out.extend_from_slice(err.code().to_string().as_bytes());
    w.out.extend_from_slice(br#","text":"#);
    w.str(err.text());
    w.out.push(b'}');
    w.channel(channel);
    w.key("member");
    w.member(member);
    w.finish()
}

/// `{"jsonrpc":"2.0","method":"sgc@presence@acknowledgment","id":"<id>"}`.
pub fn acknowledgment(id: &str, b64: bool) -> Bytes {
    let mut w = Writer::start(ACKNOWLEDGMENT, b64, id.len());
    w.key("id");
    w.str(id);
    w.finish()
}

/// `frame` (a complete frame from this module) with `"id":"<id>"` appended as its last key.
pub fn with_id(frame: &[u8], id: &str, b64: bool) -> Bytes {
    let body = frame.strip_suffix(b"}").unwrap_or(frame);
    let mut w = Writer {
        out: Vec::with_capacity(body.len() + id.len() + 16),
        b64,
    };
    w.out.extend_from_slice(body);
    w.key("id");
    w.str(id);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: Bytes) -> String {
        String::from_utf8_lossy(&b).into_owned()
    }

    fn alice() -> Member {
        Member::new("G1", "alice", "")
    }

    #[test]
    fn encoders_follow_the_key_order_of_the_spec() {
        assert_eq!(
            s(session("G1", false)),
            r#"{"jsonrpc":"2.0","method":"sgc@presence@session","message":{"text":"G1"}}"#
        );
        assert_eq!(
            s(member_event(MEMBER_NEW, &alice(), false)),
            r#"{"jsonrpc":"2.0","method":"sgc@presence@member@new","member":{"id":"G1","name":"alice","info":""}}"#
        );
        assert_eq!(
            s(channel_member_event(
                CHANNEL_MEMBER_REMOVE,
                &alice(),
                "room-42",
                false
            )),
            r#"{"jsonrpc":"2.0","method":"sgc@presence@channel@member@remove","member":{"id":"G1","name":"alice","info":""},"channel":{"name":"room-42"}}"#
        );
        assert_eq!(
            s(publish(
                &Payload::Text("hello".into()),
                "room-42",
                &alice(),
                false
            )),
            r#"{"jsonrpc":"2.0","method":"sgc@presence@publish@msg","message":{"text":"hello"},"channel":{"name":"room-42"},"member":{"id":"G1","name":"alice","info":""}}"#
        );
        let bob = Arc::new(Member::new("G2", "bob", "x\r\n"));
        assert_eq!(
            s(send_members("", &alice(), &[Arc::new(alice()), bob], false)),
            r#"{"jsonrpc":"2.0","method":"sgc@presence@send@members","channel":{"name":""},"member":{"id":"G1","name":"alice","info":""},"members":[{"id":"G1","name":"alice","info":""},{"id":"G2","name":"bob","info":"x\r\n"}]}"#
        );
        assert_eq!(
            s(invitation("room-42", &alice(), false)),
            r#"{"jsonrpc":"2.0","method":"sgc@presence@channel@invitation","channel":{"name":"room-42"},"member":{"id":"G1","name":"alice","info":""},"members":[]}"#
        );
        assert_eq!(
            s(error(
                PresenceError::SubscriptionExists,
                "room-42",
                &alice(),
                false
            )),
            r#"{"jsonrpc":"2.0","method":"sgc@presence@error@member@channel","error":{"code":11,"text":"Subscription already exists."},"channel":{"name":"room-42"},"member":{"id":"G1","name":"alice","info":""}}"#
        );
        assert_eq!(
            s(acknowledgment("42", false)),
            r#"{"jsonrpc":"2.0","method":"sgc@presence@acknowledgment","id":"42"}"#
        );
        assert_eq!(
            s(with_id(&session("G1", false), "X", false)),
            r#"{"jsonrpc":"2.0","method":"sgc@presence@session","message":{"text":"G1"},"id":"X"}"#
        );
    }

    #[test]
    fn raw_messages_stay_raw() {
        let p = Payload::Raw(r#"{"id":42}"#.into());
        assert!(s(publish(&p, "c", &alice(), false)).contains(r#""message":{"text":{"id":42}}"#));
    }

    #[test]
    fn base64_encodes_every_string_but_jsonrpc_and_member_lists() {
        let out = s(send_members("c", &alice(), &[Arc::new(alice())], true));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["method"], json::encode_b64(SEND_MEMBERS));
        assert_eq!(v["channel"]["name"], json::encode_b64("c"));
        assert_eq!(v["member"]["name"], json::encode_b64("alice"));
        assert_eq!(v["member"]["info"], "");
        assert_eq!(v["members"][0]["name"], "alice");
        let e = s(error(PresenceError::MemberNotFound, "", &alice(), true));
        let v: serde_json::Value = serde_json::from_str(&e).unwrap_or_default();
        assert_eq!(v["error"]["code"], 3);
        assert_eq!(v["error"]["text"], json::encode_b64("Member not exists."));
        let p = s(publish(
            &Payload::Raw("{\"a\":1}".into()),
            "",
            &alice(),
            true,
        ));
        let v: serde_json::Value = serde_json::from_str(&p).unwrap_or_default();
        assert_eq!(v["message"]["text"], json::encode_b64("{\"a\":1}"));
    }

    #[test]
    fn parses_delphi_frames_with_raw_crlf() {
        let f = parse("{\"jsonrpc\":\"2.0\",\"method\":\"sgc@presence@member@new\",\"member\":{\"id\":\"G1\",\"name\":\"alice\",\"info\":\"line\r\n\"}}")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.kind, Kind::MemberNew);
        assert_eq!(f.member, Some(Member::new("G1", "alice", "line\r\n")));
        assert_eq!(f.channel, "");
        assert_eq!(f.id, None);
    }

    #[test]
    fn parses_js_frames_with_spaces_and_base64() {
        let b = json::encode_b64;
        let text = format!(
            r#"{{ "jsonrpc": "2.0", "method": "{}", "message": {{ "text": "{}" }}, "channel": {{ "name": "{}" }}, "member": {{ "id": "{}", "name": "", "info": "" }}, "id": 7 }}"#,
            b(PUBLISH_MSG),
            b("hé"),
            b("room"),
            b("abc")
        );
        let f = parse(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.kind, Kind::PublishMsg);
        assert_eq!(f.message, Payload::Text("hé".into()));
        assert_eq!(f.channel, "room");
        assert_eq!(f.member.map(|m| m.id), Some(Arc::from("abc")));
        assert_eq!(f.id.as_deref(), Some("7"));
    }

    #[test]
    fn lenient_about_shapes() {
        let f = parse(r#"{"method":"sgc@presence@channel@invitation","channel":"c","member":"me","members":[{"id":"t1"},"t2",null,5]}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.channel, "c");
        assert_eq!(f.member.map(|m| m.id), Some(Arc::from("me")));
        let ids: Vec<_> = f.members.iter().map(|m| m.id.to_string()).collect();
        assert_eq!(ids, vec!["t1", "t2", "5"]);
        let f = parse(r#"{"method":"sgc@presence@publish@msg","message":{"text":[1,2]},"member":null,"members":"x","id":"","channel":["c"]}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.message, Payload::Raw("[1,2]".into()));
        assert_eq!(f.member, None);
        assert_eq!(f.channel, "");
        assert!(f.members.is_empty());
        assert_eq!(f.id, None);
        assert_eq!(parse("[1]"), Err(ParseError::NotAnObject));
        assert_eq!(parse("{\"id\":1}"), Err(ParseError::NoMethod));
        assert_eq!(parse("nonsense"), Err(ParseError::NotAnObject));
        assert!(
            matches!(parse(r#"{"method":"sgc@presence@x"}"#).map(|f| f.kind), Ok(Kind::Other(m)) if m == "sgc@presence@x")
        );
    }
}
