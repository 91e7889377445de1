//! An inbound sgc frame, parsed the way the reference server reads it (docs/wire.md §2.2), tolerant of both
//! client dialects (§2.4) and of sgcJSON oddities (§1.3, §5.1): raw control characters, any JSON type
//! for `message` and `params`, `qos` inside `params` or at top level, `sgc@b64:` strings.
//!
//! Parsing is pure: text in, an owned [`Inbound`] out (owned, because QoS-2 and transactions keep
//! messages for later).

use crate::protocol::json::{Payload, RawObject, sanitize};

/// The method of an inbound frame, decoded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `sgc@acknowledgment`: the client acknowledges an id'd server frame.
    Acknowledgment,
    /// `sgc@broadcast`: send to a channel's subscribers, or everyone.
    Broadcast,
    /// `sgc@subscribe`.
    Subscribe,
    /// `sgc@unsubscribe`.
    Unsubscribe,
    /// `sgc@unsubscribe_all`.
    UnsubscribeAll,
    /// `sgc@message`: a message for the application.
    Message,
    /// `sgc@publish`.
    Publish,
    /// `sgc@session`: send the session frame again.
    Session,
    /// `sgc@transaction`: open a transaction on a channel.
    Transaction,
    /// `sgc@commit`.
    Commit,
    /// `sgc@rollback`.
    Rollback,
    /// `sgc@pubrel`: QoS-2 release.
    PubRel,
    /// `sgc@protocol`: reply with the raw protocol name.
    Protocol,
    /// Any other `sgc@…` method (`sgc@event`, `sgc@channels`, `sgc@webrtc`, …): not handled.
    OtherSgc(String),
    /// An application method: an RPC when the frame has an id, a notification otherwise.
    App(String),
}

impl Method {
    /// Decodes a method name (case-sensitive, like the reference server).
    pub fn parse(name: &str) -> Self {
        match name {
            "sgc@acknowledgment" => Method::Acknowledgment,
            "sgc@broadcast" => Method::Broadcast,
            "sgc@subscribe" => Method::Subscribe,
            "sgc@unsubscribe" => Method::Unsubscribe,
            "sgc@unsubscribe_all" => Method::UnsubscribeAll,
            "sgc@message" => Method::Message,
            "sgc@publish" => Method::Publish,
            "sgc@session" => Method::Session,
            "sgc@transaction" => Method::Transaction,
            "sgc@commit" => Method::Commit,
            "sgc@rollback" => Method::Rollback,
            "sgc@pubrel" => Method::PubRel,
            "sgc@protocol" => Method::Protocol,
            other if other.starts_with("sgc@") => Method::OtherSgc(other.to_owned()),
            other => Method::App(other.to_owned()),
        }
    }
}

/// Retained-message level of a publish (docs/wire.md §2.7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum QueueLevel {
    /// `queueLevel0`: not stored.
    #[default]
    Level0,
    /// `queueLevel1`: only the last message of the channel is kept.
    Level1,
    /// `queueLevel2`: every message is kept (up to the configured cap).
    Level2,
}

impl QueueLevel {
    /// Reads a wire value; anything but `queueLevel1`/`queueLevel2` is level 0.
    pub fn parse(text: &str) -> Self {
        match text {
            "queueLevel1" => QueueLevel::Level1,
            "queueLevel2" => QueueLevel::Level2,
            _ => QueueLevel::Level0,
        }
    }

    /// The wire value (`queueLevel0`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            QueueLevel::Level0 => "queueLevel0",
            QueueLevel::Level1 => "queueLevel1",
            QueueLevel::Level2 => "queueLevel2",
        }
    }
}

/// The wire value of QoS level 2, the only one that changes inbound processing.
pub const QOS_LEVEL2: &str = "qosLevel2";

/// One parsed client frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Whether it was response-shaped (`result` at top level, like a Delphi acknowledgment).
    pub response: bool,
    /// The method (from `method`, or `result.method` for response-shaped frames).
    pub method: Method,
    /// The channel, `""` when absent.
    pub channel: String,
    /// The `message` value (publish, broadcast, message); text `""` when absent.
    pub message: Payload,
    /// The whole `params` value (RPC and notification); text `""` when absent.
    pub params: Payload,
    /// The client's QoS (`params.qos` where the reference reads it, else top-level `qos`).
    pub qos: Option<String>,
    /// The requested queue level of a publish.
    pub queue: QueueLevel,
    /// The id, stringified; `None` when absent or empty.
    pub id: Option<String>,
    /// Size of the original text, used to bound what is stored per connection.
    pub size: usize,
}

impl Inbound {
    /// Whether this frame takes the QoS-2 inbound path (docs/wire.md §2.5, §5.2 item 14).
    pub fn is_qos2(&self) -> bool {
        self.id.is_some() && self.qos.as_deref() == Some(QOS_LEVEL2)
    }
}

/// Why a frame was not understood (logged at debug level; the client gets no reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a JSON object, even leniently.
    #[error("not a JSON object")]
    NotAnObject,
    /// `jsonrpc` is missing or not `"2.0"`.
    #[error("jsonrpc is not \"2.0\"")]
    WrongVersion,
    /// An `error`-shaped frame: only servers send those.
    #[error("error-shaped frame from a client")]
    ErrorShaped,
    /// No method to act on.
    #[error("no method")]
    NoMethod,
}

/// Parses one text frame (docs/wire.md §2.2).
pub fn parse(text: &str) -> Result<Inbound, ParseError> {
    let clean = sanitize(text);
    let top = RawObject::parse(&clean).ok_or(ParseError::NotAnObject)?;
    if top.text("jsonrpc").as_deref() != Some("2.0") {
        return Err(ParseError::WrongVersion);
    }
    let mut m = Inbound {
        response: false,
        method: Method::App(String::new()),
        channel: String::new(),
        message: Payload::Text(String::new()),
        params: Payload::Text(String::new()),
        qos: None,
        queue: QueueLevel::Level0,
        id: top.text("id").filter(|s| !s.is_empty()),
        size: text.len(),
    };
    let method_name;
    if top.has("result") {
        m.response = true;
        let result = top.object("result");
        method_name = result.as_ref().and_then(|r| r.text("method"));
        if let Some(r) = &result {
            if let Some(raw) = r.raw("message") {
                m.message = Payload::from_raw(raw);
            }
            m.channel = r.text("channel").unwrap_or_default();
        }
    } else if top.has("error") {
        return Err(ParseError::ErrorShaped);
    } else {
        method_name = top.text("method");
        let method = Method::parse(method_name.as_deref().unwrap_or(""));
        if let Some(raw) = top.raw("params") {
            m.params = Payload::from_raw(raw);
            if let Some(p) = RawObject::from_raw(raw) {
                read_params(&mut m, &method, &p);
            }
        }
    }
    let name = method_name.unwrap_or_default();
    if name.is_empty() {
        return Err(ParseError::NoMethod);
    }
    m.method = Method::parse(&name);
    if m.qos.is_none() {
        m.qos = top.text("qos").filter(|s| !s.is_empty());
    }
    Ok(m)
}

/// Reads the `params` keys the reference server reads for this method (docs/wire.md §2.2 step 4).
fn read_params(m: &mut Inbound, method: &Method, p: &RawObject<'_>) {
    let channel = || p.text("channel").unwrap_or_default();
    let qos = || p.text("qos").filter(|s| !s.is_empty());
    let queue = || QueueLevel::parse(&p.text("queue").unwrap_or_default());
    let message = || p.raw("message").map(Payload::from_raw);
    match method {
        Method::Broadcast | Method::Message => {
            m.message = message().unwrap_or(Payload::Text(String::new()));
            m.channel = channel();
        }
        Method::Publish | Method::OtherSgc(_) if is_publish_like(method) => {
            m.message = message().unwrap_or(Payload::Text(String::new()));
            m.channel = channel();
            m.qos = qos();
            m.queue = queue();
        }
        Method::Subscribe
        | Method::Unsubscribe
        | Method::UnsubscribeAll
        | Method::Transaction
        | Method::Commit
        | Method::Rollback => m.channel = channel(),
        _ => {
            m.qos = qos();
            m.queue = queue();
            m.channel = channel();
        }
    }
}

/// `sgc@publish` and `sgc@event` read message, channel, qos and queue.
fn is_publish_like(method: &Method) -> bool {
    match method {
        Method::Publish => true,
        Method::OtherSgc(name) => name == "sgc@event",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Inbound {
        parse(text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    #[test]
    fn delphi_frames() {
        let m = p(
            r#"{"jsonrpc":"2.0","method":"sgc@subscribe","params":{"channel":"orders","qos":"qosLevel0"},"qos":"qosLevel0"}"#,
        );
        assert_eq!(m.method, Method::Subscribe);
        assert_eq!(m.channel, "orders");
        assert_eq!(m.qos.as_deref(), Some("qosLevel0"));
        assert_eq!(m.id, None);

        let m = p(
            r#"{"jsonrpc":"2.0","method":"sgc@publish","params":{"message":{"id":42},"channel":"orders","qos":"qosLevel1","queue":"queueLevel1"},"qos":"qosLevel1","id":"ABC"}"#,
        );
        assert_eq!(m.method, Method::Publish);
        assert_eq!(m.message, Payload::Raw(r#"{"id":42}"#.into()));
        assert_eq!(m.queue, QueueLevel::Level1);
        assert_eq!(m.id.as_deref(), Some("ABC"));
        assert!(!m.is_qos2());

        let m = p(
            r#"{"jsonrpc":"2.0","method":"getQuote","params":"AAPL","qos":"qosLevel0","id":"call-1"}"#,
        );
        assert_eq!(m.method, Method::App("getQuote".into()));
        assert_eq!(m.params, Payload::Text("AAPL".into()));

        let m = p(r#"{"jsonrpc":"2.0","result":{"method":"sgc@acknowledgment"},"id":"X"}"#);
        assert!(m.response);
        assert_eq!(m.method, Method::Acknowledgment);
        assert_eq!(m.id.as_deref(), Some("X"));

        let m = p(
            r#"{"jsonrpc":"2.0","method":"sgc@pubrel","params":{"qos":"qosLevel2"},"qos":"qosLevel2","id":"X"}"#,
        );
        assert_eq!(m.method, Method::PubRel);
        assert!(m.is_qos2());
    }

    #[test]
    fn js_frames_with_spaces() {
        let m = p(
            r#"{"jsonrpc":"2.0", "method":"sgc@subscribe", "params":{"channel":"orders", "message":""}, "id":"ab12"}"#,
        );
        assert_eq!(m.method, Method::Subscribe);
        assert_eq!(m.channel, "orders");
        assert_eq!(m.id.as_deref(), Some("ab12"));
        assert_eq!(m.qos, None);

        let m = p(r#"{"jsonrpc":"2.0", "method":"sgc@session"}"#);
        assert_eq!(m.method, Method::Session);

        let m = p(
            r#"{"jsonrpc":"2.0", "method":"sgc@pubrel", "params":{"channel":"", "message":"", "qos":"qosLevel2"}, "id":"q"}"#,
        );
        assert!(m.is_qos2());
    }

    #[test]
    fn subscribe_ignores_params_qos_like_the_reference() {
        let m = p(
            r#"{"jsonrpc":"2.0","method":"sgc@subscribe","params":{"channel":"a","qos":"qosLevel2"},"id":"1"}"#,
        );
        assert_eq!(m.qos, None);
        assert!(!m.is_qos2());
    }

    #[test]
    fn tolerant_input() {
        // Raw control characters, numbers as ids and channels, b64 strings.
        let m = p(
            "{\"jsonrpc\":\"2.0\",\"method\":\"sgc@publish\",\"params\":{\"message\":\"a\r\nb\",\"channel\":7},\"id\":12}",
        );
        assert_eq!(m.message, Payload::Text("a\r\nb".into()));
        assert_eq!(m.channel, "7");
        assert_eq!(m.id.as_deref(), Some("12"));
        let m = p(
            r#"{"jsonrpc":"2.0","method":"sgc@b64:c2djQHB1Ymxpc2g=","params":{"channel":"sgc@b64:b3JkZXJz","message":[1,2]}}"#,
        );
        assert_eq!(m.method, Method::Publish);
        assert_eq!(m.channel, "orders");
        assert_eq!(m.message, Payload::Raw("[1,2]".into()));
        // params of any type; top-level qos when params has none.
        let m = p(r#"{"jsonrpc":"2.0","method":"x","params":null,"qos":"qosLevel2","id":"i"}"#);
        assert!(m.is_qos2());
        assert_eq!(m.params, Payload::Text(String::new()));
        let m =
            p(r#"{"jsonrpc":"2.0","method":"x","params":{"qos":"qosLevel1"},"qos":"qosLevel2"}"#);
        assert_eq!(m.qos.as_deref(), Some("qosLevel1"));
    }

    #[test]
    fn refused_input() {
        assert_eq!(parse("nope"), Err(ParseError::NotAnObject));
        assert_eq!(parse("[1]"), Err(ParseError::NotAnObject));
        assert_eq!(
            parse(r#"{"jsonrpc":"1.0","method":"sgc@session"}"#),
            Err(ParseError::WrongVersion)
        );
        assert_eq!(
            parse(r#"{"method":"sgc@session"}"#),
            Err(ParseError::WrongVersion)
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","error":{"code":1},"id":"x"}"#),
            Err(ParseError::ErrorShaped)
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":"x"}"#),
            Err(ParseError::NoMethod)
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","result":"r","id":"x"}"#),
            Err(ParseError::NoMethod)
        );
    }

    #[test]
    fn empty_and_null_ids_are_no_ids() {
        assert_eq!(
            p(r#"{"jsonrpc":"2.0","method":"sgc@session","id":""}"#).id,
            None
        );
        assert_eq!(
            p(r#"{"jsonrpc":"2.0","method":"sgc@session","id":null}"#).id,
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn channel_and_id_round_trip(ch in "\\PC{0,40}", id in "[a-zA-Z0-9]{1,32}") {
            let mut text = Vec::new();
            text.extend_from_slice(br#"{"jsonrpc":"2.0","method":"sgc@subscribe","params":{"channel":"#);
            crate::protocol::json::write_str(&mut text, &ch);
            text.extend_from_slice(br#"},"id":""#);
            text.extend_from_slice(id.as_bytes());
            text.extend_from_slice(br#""}"#);
            let m = parse(std::str::from_utf8(&text).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
            let want = crate::protocol::json::decode_b64(&ch).into_owned();
            proptest::prop_assert_eq!(want, m.channel);
            proptest::prop_assert_eq!(m.id.as_deref(), Some(id.as_str()));
        }
    }
}
