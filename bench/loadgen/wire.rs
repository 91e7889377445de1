//! The frames the load generator sends and how it reads what comes back (spec
//! `docs/wire.md` §2.3–2.4 for sgc, §3.4 for Presence, Appendix A).
//!
//! Outgoing frames are the Delphi client's exact shapes (compact, `qosLevel0`, no `id`), so the
//! server sees what real clients send and nothing asks for an acknowledgment. Incoming frames are
//! classified by scanning for the keys in the order the server writes them (compact, spec key
//! order); a frame the scan cannot place (unexpected spacing) is re-serialised compactly with
//! `serde_json` and scanned again. The scan never allocates on the hot path (events).

use std::borrow::Cow;

use base64::Engine as _;

use crate::payload;

/// The wire protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    /// `esegece.com`.
    Sgc,
    /// `presence.esegece.com`.
    Presence,
}

impl Proto {
    /// The `Sec-WebSocket-Protocol` token offered on upgrade.
    pub(crate) fn subprotocol(self) -> &'static str {
        match self {
            Proto::Sgc => "esegece.com",
            Proto::Presence => "presence.esegece.com",
        }
    }
}

/// A string escaped for the inside of a JSON string literal (no surrounding quotes).
pub(crate) fn escaped(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// sgc `Subscribe(channel)` as the Delphi client sends it.
pub(crate) fn sgc_subscribe(channel: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@subscribe","params":{{"channel":"{}","qos":"qosLevel0"}},"qos":"qosLevel0"}}"#,
        escaped(channel)
    )
}

/// Presence `member@new` for this connection's own session id.
pub(crate) fn presence_member_new(id: &str, name: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@presence@member@new","member":{{"id":"{}","name":"{}","info":""}}}}"#,
        escaped(id),
        escaped(name)
    )
}

/// Presence `channel@member@new` (join, `Subscribe`) or `channel@member@remove` (leave).
pub(crate) fn presence_channel_member(id: &str, channel: &str, join: bool) -> String {
    let verb = if join { "new" } else { "remove" };
    format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@presence@channel@member@{verb}","member":{{"id":"{}","name":"","info":""}},"channel":{{"name":"{}"}}}}"#,
        escaped(id),
        escaped(channel)
    )
}

/// Presence `get@members` for one channel.
pub(crate) fn presence_get_members(id: &str, channel: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@presence@get@members","channel":{{"name":"{}"}},"member":{{"id":"{}","name":"","info":""}}}}"#,
        escaped(channel),
        escaped(id)
    )
}

/// A publish frame cut around its body: `head + body + tail`, built once per (channel, sender).
#[derive(Debug, Clone)]
pub(crate) struct PublishTemplate {
    /// Everything before the body.
    head: Vec<u8>,
    /// Everything after the body.
    tail: Vec<u8>,
}

impl PublishTemplate {
    /// The template for `proto` publishing to `channel`; `member_id` is the sender's Presence
    /// member id (ignored by sgc).
    pub(crate) fn new(proto: Proto, channel: &str, member_id: &str) -> Self {
        let ch = escaped(channel);
        let (head, tail) = match proto {
            Proto::Sgc => (
                r#"{"jsonrpc":"2.0","method":"sgc@publish","params":{"message":""#.to_owned(),
                format!(
                    r#"","channel":"{ch}","qos":"qosLevel0","queue":"queueLevel0"}},"qos":"qosLevel0"}}"#
                ),
            ),
            Proto::Presence => (
                r#"{"jsonrpc":"2.0","method":"sgc@presence@publish@msg","message":{"text":""#
                    .to_owned(),
                format!(
                    r#""}},"channel":{{"name":"{ch}"}},"member":{{"id":"{}","name":"","info":""}}}}"#,
                    escaped(member_id)
                ),
            ),
        };
        Self {
            head: head.into_bytes(),
            tail: tail.into_bytes(),
        }
    }

    /// The frame carrying the probe body ([`payload::PROBE`]).
    pub(crate) fn probe_frame(&self) -> Vec<u8> {
        [&self.head[..], payload::PROBE.as_bytes(), &self.tail[..]].concat()
    }

    /// The frame carrying a body sent at `send_ns`, `size` bytes long.
    pub(crate) fn frame(&self, send_ns: u64, size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + size.max(21) + self.tail.len());
        out.extend_from_slice(&self.head);
        payload::write_body(&mut out, send_ns, size);
        out.extend_from_slice(&self.tail);
        out
    }
}

/// What a received text frame is, as far as the load generator cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming<'a> {
    /// sgc S1 or Presence `session`: the connection's GUID.
    Session(Cow<'a, str>),
    /// sgc S3: subscribed to this channel.
    Subscribed(Cow<'a, str>),
    /// sgc S5 `sgc@event` or Presence `publish@msg`: the send timestamp when the body is ours.
    Event(Option<u64>),
    /// Presence `member@new` of this member id.
    MemberNew(Cow<'a, str>),
    /// Presence `member@remove` of this member id.
    MemberRemove(Cow<'a, str>),
    /// Presence `channel@member@new` / `channel@member@remove`.
    ChannelMember {
        /// True for `new` (join), false for `remove` (leave).
        join: bool,
        /// The member that joined or left.
        id: Cow<'a, str>,
        /// The channel.
        channel: Cow<'a, str>,
    },
    /// Presence `send@members`: the reply to `get@members`.
    SendMembers {
        /// The channel asked about.
        channel: Cow<'a, str>,
        /// How many entries the `members` array has.
        members: usize,
    },
    /// Presence `error@member@channel` / `error@publish@msg`.
    Error {
        /// The error code (docs/wire.md §3.2).
        code: i64,
        /// The error text.
        text: Cow<'a, str>,
    },
    /// Anything else (acknowledgments, broadcasts, unsubscribe confirmations…), by method.
    Other(Cow<'a, str>),
}

/// The `sgc@b64:` prefix a server may put on Presence strings (docs/wire.md §1.4); always decoded.
const B64_PREFIX: &str = "sgc@b64:";

/// Classifies a text frame; never fails (an unreadable frame is `Other("")`).
pub(crate) fn classify(text: &str) -> Incoming<'_> {
    if let Some(found) = classify_compact(text) {
        return found;
    }
    // Not in the compact shape the server should write: normalise and try once more.
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return Incoming::Other(Cow::Borrowed(""));
    };
    let compact = value.to_string();
    match classify_compact(&compact) {
        Some(found) => into_owned(found),
        None => Incoming::Other(Cow::Borrowed("")),
    }
}

/// Detaches an [`Incoming`] from the buffer it was read from.
fn into_owned(i: Incoming<'_>) -> Incoming<'static> {
    let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
    match i {
        Incoming::Session(g) => Incoming::Session(own(g)),
        Incoming::Subscribed(c) => Incoming::Subscribed(own(c)),
        Incoming::Event(t) => Incoming::Event(t),
        Incoming::MemberNew(id) => Incoming::MemberNew(own(id)),
        Incoming::MemberRemove(id) => Incoming::MemberRemove(own(id)),
        Incoming::ChannelMember { join, id, channel } => Incoming::ChannelMember {
            join,
            id: own(id),
            channel: own(channel),
        },
        Incoming::SendMembers { channel, members } => Incoming::SendMembers {
            channel: own(channel),
            members,
        },
        Incoming::Error { code, text } => Incoming::Error {
            code,
            text: own(text),
        },
        Incoming::Other(m) => Incoming::Other(own(m)),
    }
}

/// The scan over a compact frame; `None` when it has no readable `"method":"…"`.
fn classify_compact(text: &str) -> Option<Incoming<'_>> {
    let (method, _) = raw_string_after(text, r#""method":""#)?;
    let found = match method {
        "sgc@event" => Incoming::Event(body_send_ns(text, r#""message":""#)),
        "sgc@presence@publish@msg" => Incoming::Event(body_send_ns(text, r#""message":{"text":""#)),
        "sgc@session" => Incoming::Session(string_after(text, r#""message":""#)?),
        "sgc@subscribe" => Incoming::Subscribed(string_after(text, r#""channel":""#)?),
        "sgc@presence@session" => Incoming::Session(string_after(text, r#""message":{"text":""#)?),
        "sgc@presence@member@new" => Incoming::MemberNew(member_id(text)?),
        "sgc@presence@member@remove" => Incoming::MemberRemove(member_id(text)?),
        "sgc@presence@channel@member@new" | "sgc@presence@channel@member@remove" => {
            Incoming::ChannelMember {
                join: method.ends_with("@new"),
                id: member_id(text)?,
                channel: channel_name(text)?,
            }
        }
        "sgc@presence@send@members" => Incoming::SendMembers {
            channel: channel_name(text)?,
            members: count_members(text),
        },
        "sgc@presence@error@member@channel" | "sgc@presence@error@publish@msg" => Incoming::Error {
            code: int_after(text, r#""error":{"code":"#).unwrap_or(0),
            text: string_after(text, r#""text":""#).unwrap_or(Cow::Borrowed("")),
        },
        other => Incoming::Other(Cow::Borrowed(other)),
    };
    Some(found)
}

/// The Presence `member.id` of a frame.
fn member_id(text: &str) -> Option<Cow<'_, str>> {
    string_after(text, r#""member":{"id":""#)
}

/// The Presence `channel.name` of a frame.
fn channel_name(text: &str) -> Option<Cow<'_, str>> {
    string_after(text, r#""channel":{"name":""#)
}

/// The number of entries of the Presence `members` array (each entry starts with `{"id":`).
fn count_members(text: &str) -> usize {
    match text.find(r#""members":["#) {
        Some(at) => text[at..].matches(r#"{"id":"#).count(),
        None => 0,
    }
}

/// The send timestamp of an event body that follows `key`, if the body is ours.
fn body_send_ns(text: &str, key: &str) -> Option<u64> {
    let (raw, _) = raw_string_after(text, key)?;
    match raw.strip_prefix(B64_PREFIX) {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            payload::read_send_ns(&bytes)
        }
        None => payload::read_send_ns(raw.as_bytes()),
    }
}

/// The JSON string value after `key` (which ends with the opening quote), unescaped and
/// Base64-decoded when it carries the `sgc@b64:` prefix.
fn string_after<'a>(text: &'a str, key: &str) -> Option<Cow<'a, str>> {
    let (raw, has_escape) = raw_string_after(text, key)?;
    let value: Cow<'a, str> = if has_escape {
        Cow::Owned(serde_json::from_str::<String>(&format!("\"{raw}\"")).ok()?)
    } else {
        Cow::Borrowed(raw)
    };
    match value.strip_prefix(B64_PREFIX) {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            Some(Cow::Owned(String::from_utf8(bytes).ok()?))
        }
        None => Some(value),
    }
}

/// The raw (still escaped) contents of the string after `key`, and whether it has escapes.
fn raw_string_after<'a>(text: &'a str, key: &str) -> Option<(&'a str, bool)> {
    let start = text.find(key)? + key.len();
    let rest = text.get(start..)?;
    let bytes = rest.as_bytes();
    let mut has_escape = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                has_escape = true;
                i += 2;
            }
            b'"' => return Some((rest.get(..i)?, has_escape)),
            _ => i += 1,
        }
    }
    None
}

/// The integer after `key`.
fn int_after(text: &str, key: &str) -> Option<i64> {
    let start = text.find(key)? + key.len();
    let rest = text.get(start..)?;
    let end = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(rest.len(), |(i, _)| i);
    rest.get(..end)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_frames_are_the_delphi_shapes() {
        assert_eq!(
            sgc_subscribe("orders"),
            r#"{"jsonrpc":"2.0","method":"sgc@subscribe","params":{"channel":"orders","qos":"qosLevel0"},"qos":"qosLevel0"}"#
        );
        assert_eq!(
            presence_member_new("G1", "alice"),
            r#"{"jsonrpc":"2.0","method":"sgc@presence@member@new","member":{"id":"G1","name":"alice","info":""}}"#
        );
        assert_eq!(
            presence_channel_member("G1", "room-42", true),
            r#"{"jsonrpc":"2.0","method":"sgc@presence@channel@member@new","member":{"id":"G1","name":"","info":""},"channel":{"name":"room-42"}}"#
        );
        assert_eq!(
            presence_channel_member("G1", "room-42", false),
            r#"{"jsonrpc":"2.0","method":"sgc@presence@channel@member@remove","member":{"id":"G1","name":"","info":""},"channel":{"name":"room-42"}}"#
        );
        assert_eq!(
            presence_get_members("G1", "room-42"),
            r#"{"jsonrpc":"2.0","method":"sgc@presence@get@members","channel":{"name":"room-42"},"member":{"id":"G1","name":"","info":""}}"#
        );
        assert!(sgc_subscribe(r#"a"b"#).contains(r#""a\"b""#));
    }

    #[test]
    fn publish_templates_wrap_the_body() {
        let sgc = PublishTemplate::new(Proto::Sgc, "c1", "");
        let f = String::from_utf8(sgc.frame(42, 5)).unwrap_or_default();
        assert_eq!(
            f,
            r#"{"jsonrpc":"2.0","method":"sgc@publish","params":{"message":"42:xx","channel":"c1","qos":"qosLevel0","queue":"queueLevel0"},"qos":"qosLevel0"}"#
        );
        assert!(serde_json::from_str::<serde_json::Value>(&f).is_ok());
        let p = PublishTemplate::new(Proto::Presence, "room", "G1");
        let f = String::from_utf8(p.frame(7, 0)).unwrap_or_default();
        assert_eq!(
            f,
            r#"{"jsonrpc":"2.0","method":"sgc@presence@publish@msg","message":{"text":"7:"},"channel":{"name":"room"},"member":{"id":"G1","name":"","info":""}}"#
        );
    }

    #[test]
    fn sgc_frames_from_the_server_are_classified() {
        let s1 = r#"{"jsonrpc":"2.0","result":{"method":"sgc@session","message":"3F2504E04F8941D39A0C0305E82C3301"},"qos":"qosLevel0","id":"3F2504E04F8941D39A0C0305E82C3301"}"#;
        assert_eq!(
            classify(s1),
            Incoming::Session("3F2504E04F8941D39A0C0305E82C3301".into())
        );
        let s3 = r#"{"jsonrpc":"2.0","result":{"method":"sgc@subscribe","channel":"ch-1"},"qos":"qosLevel0"}"#;
        assert_eq!(classify(s3), Incoming::Subscribed("ch-1".into()));
        let s5 = r#"{"jsonrpc":"2.0","result":{"method":"sgc@event","channel":"ch-1","message":"99:xxxx"}}"#;
        assert_eq!(classify(s5), Incoming::Event(Some(99)));
        let foreign =
            r#"{"jsonrpc":"2.0","result":{"method":"sgc@event","channel":"c","message":{"a":1}}}"#;
        assert_eq!(classify(foreign), Incoming::Event(None));
        let ack = r#"{"jsonrpc":"2.0","result":{"method":"sgc@acknowledgment"},"id":"x"}"#;
        assert_eq!(classify(ack), Incoming::Other("sgc@acknowledgment".into()));
    }

    #[test]
    fn presence_frames_from_the_server_are_classified() {
        let session = r#"{"jsonrpc":"2.0","method":"sgc@presence@session","message":{"text":"G"}}"#;
        assert_eq!(classify(session), Incoming::Session("G".into()));
        let new = r#"{"jsonrpc":"2.0","method":"sgc@presence@member@new","member":{"id":"G","name":"a","info":""}}"#;
        assert_eq!(classify(new), Incoming::MemberNew("G".into()));
        let join = r#"{"jsonrpc":"2.0","method":"sgc@presence@channel@member@new","member":{"id":"G","name":"a","info":""},"channel":{"name":"r"}}"#;
        assert_eq!(
            classify(join),
            Incoming::ChannelMember {
                join: true,
                id: "G".into(),
                channel: "r".into()
            }
        );
        let msg = r#"{"jsonrpc":"2.0","method":"sgc@presence@publish@msg","message":{"text":"5:xx"},"channel":{"name":"r"},"member":{"id":"G","name":"a","info":""}}"#;
        assert_eq!(classify(msg), Incoming::Event(Some(5)));
        let members = r#"{"jsonrpc":"2.0","method":"sgc@presence@send@members","channel":{"name":"r"},"member":{"id":"G","name":"a","info":""},"members":[{"id":"G1","name":"a","info":""},{"id":"G2","name":"b","info":""}]}"#;
        assert_eq!(
            classify(members),
            Incoming::SendMembers {
                channel: "r".into(),
                members: 2
            }
        );
        let err = r#"{"jsonrpc":"2.0","method":"sgc@presence@error@member@channel","error":{"code":11,"text":"Subscription already exists."},"channel":{"name":"r"},"member":{"id":"G","name":"","info":""}}"#;
        assert_eq!(
            classify(err),
            Incoming::Error {
                code: 11,
                text: "Subscription already exists.".into()
            }
        );
    }

    #[test]
    fn spaced_escaped_and_b64_frames_are_still_read() {
        let spaced =
            r#"{ "jsonrpc": "2.0", "result": { "method": "sgc@subscribe", "channel": "a\"b" } }"#;
        assert_eq!(classify(spaced), Incoming::Subscribed("a\"b".into()));
        let b64 = format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@presence@publish@msg","message":{{"text":"sgc@b64:{}"}},"channel":{{"name":"r"}},"member":{{"id":"G","name":"","info":""}}}}"#,
            base64::engine::general_purpose::STANDARD.encode("12:xx")
        );
        assert_eq!(classify(&b64), Incoming::Event(Some(12)));
        assert_eq!(classify("esegece.com"), Incoming::Other("".into()));
        assert_eq!(classify(r#"{"method":"#), Incoming::Other("".into()));
    }
}
