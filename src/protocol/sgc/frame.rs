//! Encoders of every server → client sgc frame (docs/wire.md §2.3, S1–S11), byte for byte in the reference
//! server's key order: compact, `"jsonrpc":"2.0"` first, strings escaped the standard way.
//!
//! Message values arrive here already written as JSON (see [`message_json`]): a publish is turned
//! into its value bytes once, and every frame built from it only copies those bytes.

use bytes::Bytes;

use super::errors::RpcError;
use crate::protocol::json::{Payload, write_str};

const HEAD: &[u8] = br#"{"jsonrpc":"2.0","#;

/// The text of S10 when an RPC is refused ([`RpcError::METHOD_NOT_FOUND`]).
pub const METHOD_NOT_FOUND: &str = RpcError::METHOD_NOT_FOUND.message;
/// The JSON-RPC code of S10 when an RPC is refused ([`RpcError::METHOD_NOT_FOUND`]).
pub const METHOD_NOT_FOUND_CODE: i64 = RpcError::METHOD_NOT_FOUND.code;
/// S11: the raw reply to `sgc@protocol`.
pub const PROTOCOL_REPLY: &str = "esegece.com";

/// Close reason (code 1008) when a message would take a connection's open transactions past
/// `sgc.transaction_max_bytes` or `sgc.transaction_max_bytes_per_connection`
/// ([`crate::transport::Close::TRANSACTION_TOO_LARGE`]).
pub const TRANSACTION_TOO_LARGE: &str = crate::transport::Close::TRANSACTION_TOO_LARGE.reason;

/// A payload written as a JSON value: raw JSON for objects and arrays, an escaped string otherwise.
pub fn message_json(payload: &Payload) -> Bytes {
    let mut out = Vec::with_capacity(payload.len_hint());
    payload.write(&mut out);
    Bytes::from(out)
}

fn start(capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD.len() + capacity + 64);
    out.extend_from_slice(HEAD);
    out
}

fn push_qos_id(out: &mut Vec<u8>, qos: Option<&str>, id: Option<&str>) {
    if let Some(q) = qos {
        out.extend_from_slice(br#","qos":"#);
        write_str(out, q);
    }
    if let Some(i) = id {
        out.extend_from_slice(br#","id":"#);
        write_str(out, i);
    }
}

/// S1, the session frame: `{"jsonrpc":"2.0","result":{"method":"sgc@session","message":"<G>"},"qos":"<q>","id":"<G>"}`.
pub fn session(guid: &str, server_qos: &str) -> Bytes {
    let mut out = start(guid.len() * 2);
    out.extend_from_slice(br#""result":{"method":"sgc@session","message":"#);
    write_str(&mut out, guid);
    out.push(b'}');
    push_qos_id(&mut out, Some(server_qos), Some(guid));
    out.push(b'}');
    Bytes::from(out)
}

/// S2, the acknowledgment of a client frame: `{"jsonrpc":"2.0","result":{"method":"sgc@acknowledgment"},"id":"<id>"}`.
pub fn acknowledgment(id: &str) -> Bytes {
    let mut out = start(id.len());
    out.extend_from_slice(br#""result":{"method":"sgc@acknowledgment"}"#);
    push_qos_id(&mut out, None, Some(id));
    out.push(b'}');
    Bytes::from(out)
}

fn channel_reply(method: &str, channel: &str, qos: Option<&str>, id: Option<&str>) -> Bytes {
    let mut out = start(channel.len());
    out.extend_from_slice(br#""result":{"method":""#);
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(br#"","channel":"#);
    write_str(&mut out, channel);
    out.push(b'}');
    push_qos_id(&mut out, qos, id);
    out.push(b'}');
    Bytes::from(out)
}

/// S3, a subscribe confirmation, echoing the request's `qos` and `id` when it had them.
pub fn subscribed(channel: &str, qos: Option<&str>, id: Option<&str>) -> Bytes {
    channel_reply("sgc@subscribe", channel, qos, id)
}

/// S4, an unsubscribe confirmation, echoing the request's `qos` and `id` when it had them.
pub fn unsubscribed(channel: &str, qos: Option<&str>, id: Option<&str>) -> Bytes {
    channel_reply("sgc@unsubscribe", channel, qos, id)
}

/// S5, an event: `{"jsonrpc":"2.0","result":{"method":"sgc@event","channel":"<ch>","message":<m>}}`.
/// `message` is the already-written JSON value; it is the frame's last value, followed by `}}`.
pub fn event(channel: &str, message: &[u8]) -> Bytes {
    let mut out = start(channel.len() + message.len());
    out.extend_from_slice(br#""result":{"method":"sgc@event","channel":"#);
    write_str(&mut out, channel);
    out.extend_from_slice(br#","message":"#);
    out.extend_from_slice(message);
    out.extend_from_slice(b"}}");
    Bytes::from(out)
}

/// The message value inside an [`event`] frame (a zero-copy slice of it).
pub fn event_message(frame: &Bytes) -> Bytes {
    // `event` ends with `<message>}}` and the channel is written before it, so the message is
    // found by scanning back from the end for the `"message":` key written by `event`.
    const KEY: &[u8] = br#","message":"#;
    let body = frame.len().saturating_sub(2);
    let prefix_end = br#"{"jsonrpc":"2.0","result":{"method":"sgc@event","channel":"#.len();
    // The channel is a JSON string: its closing quote is the first unescaped quote after the prefix.
    let bytes = &frame[..];
    let mut i = prefix_end + 1;
    let mut escaped = false;
    while i < body {
        let b = bytes[i];
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            break;
        }
        i += 1;
    }
    let start = (i + 1 + KEY.len()).min(body);
    frame.slice(start..body)
}

/// S6/S6b, a broadcast or direct message: `{"jsonrpc":"2.0","result":{"method":"sgc@message","channel":"<ch>","message":<m>}}`,
/// followed by the sender's `qos` and `id` when a client's `sgc@broadcast` carried them (S6b).
pub fn message(channel: &str, message: &[u8], qos: Option<&str>, id: Option<&str>) -> Bytes {
    let mut out = start(channel.len() + message.len());
    out.extend_from_slice(br#""result":{"method":"sgc@message","channel":"#);
    write_str(&mut out, channel);
    out.extend_from_slice(br#","message":"#);
    out.extend_from_slice(message);
    out.push(b'}');
    push_qos_id(&mut out, qos, id);
    out.push(b'}');
    Bytes::from(out)
}

/// S7, the request-shaped direct message (`WriteData`): `{"jsonrpc":"2.0","method":"sgc@message","params":{"message":<m>}}`.
pub fn write_data(message: &[u8]) -> Bytes {
    let mut out = start(message.len());
    out.extend_from_slice(br#""method":"sgc@message","params":{"message":"#);
    out.extend_from_slice(message);
    out.extend_from_slice(b"}}");
    Bytes::from(out)
}

/// S8, the QoS-2 PubRec: `{"jsonrpc":"2.0","result":{"method":"sgc@pubrec"},"id":"<id>"}`.
pub fn pubrec(id: &str) -> Bytes {
    let mut out = start(id.len());
    out.extend_from_slice(br#""result":{"method":"sgc@pubrec"}"#);
    push_qos_id(&mut out, None, Some(id));
    out.push(b'}');
    Bytes::from(out)
}

/// S9, an RPC result: `{"jsonrpc":"2.0","result":<r>,"qos":"<q>","id":"<id>"}`.
pub fn rpc_result(result: &Payload, server_qos: &str, id: &str) -> Bytes {
    let mut out = start(result.len_hint() + id.len());
    out.extend_from_slice(br#""result":"#);
    result.write(&mut out);
    push_qos_id(&mut out, Some(server_qos), Some(id));
    out.push(b'}');
    Bytes::from(out)
}

/// S10, an RPC error: `{"jsonrpc":"2.0","error":{"code":<n>,"message":"<msg>"[,"data":<d>]},"qos":"<q>","id":"<id>"}`.
/// `data` is written only when not empty.
pub fn rpc_error(
    code: i64,
    message: &str,
    data: Option<&Payload>,
    server_qos: &str,
    id: &str,
) -> Bytes {
    let mut out = start(message.len() + id.len());
    out.extend_from_slice(br#""error":{"code":"#);
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(br#","message":"#);
    write_str(&mut out, message);
    if let Some(d) = data.filter(|d| !d.as_text().is_empty()) {
        out.extend_from_slice(br#","data":"#);
        d.write(&mut out);
    }
    out.push(b'}');
    push_qos_id(&mut out, Some(server_qos), Some(id));
    out.push(b'}');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: Bytes) -> String {
        String::from_utf8(b.to_vec()).expect("utf-8")
    }

    #[test]
    fn every_frame_in_reference_key_order() {
        assert_eq!(
            s(session("G1", "qosLevel0")),
            r#"{"jsonrpc":"2.0","result":{"method":"sgc@session","message":"G1"},"qos":"qosLevel0","id":"G1"}"#
        );
        assert_eq!(
            s(acknowledgment("i")),
            r#"{"jsonrpc":"2.0","result":{"method":"sgc@acknowledgment"},"id":"i"}"#
        );
        assert_eq!(
            s(subscribed("ch", Some("qosLevel0"), None)),
            r#"{"jsonrpc":"2.0","result":{"method":"sgc@subscribe","channel":"ch"},"qos":"qosLevel0"}"#
        );
        assert_eq!(
            s(subscribed("ch", None, Some("x"))),
            r#"{"jsonrpc":"2.0","result":{"method":"sgc@subscribe","channel":"ch"},"id":"x"}"#
        );
        assert_eq!(
            s(unsubscribed("ch", Some("qosLevel1"), Some("x"))),
            r#"{"jsonrpc":"2.0","result":{"method":"sgc@unsubscribe","channel":"ch"},"qos":"qosLevel1","id":"x"}"#
        );
        assert_eq!(
            s(event("ch", br#""m""#)),
            r#"{"jsonrpc":"2.0","result":{"method":"sgc@event","channel":"ch","message":"m"}}"#
        );
        assert_eq!(
            s(message("", br#"{"a":1}"#, None, None)),
            r#"{"jsonrpc":"2.0","result":{"method":"sgc@message","channel":"","message":{"a":1}}}"#
        );
        assert_eq!(
            s(message("c", br#""m""#, Some("qosLevel0"), None)),
            r#"{"jsonrpc":"2.0","result":{"method":"sgc@message","channel":"c","message":"m"},"qos":"qosLevel0"}"#
        );
        assert_eq!(
            s(write_data(br#""m""#)),
            r#"{"jsonrpc":"2.0","method":"sgc@message","params":{"message":"m"}}"#
        );
        assert_eq!(
            s(pubrec("X")),
            r#"{"jsonrpc":"2.0","result":{"method":"sgc@pubrec"},"id":"X"}"#
        );
        assert_eq!(
            s(rpc_result(&Payload::Text("r".into()), "qosLevel0", "1")),
            r#"{"jsonrpc":"2.0","result":"r","qos":"qosLevel0","id":"1"}"#
        );
        assert_eq!(
            s(rpc_result(&Payload::Raw("[1]".into()), "qosLevel2", "1")),
            r#"{"jsonrpc":"2.0","result":[1],"qos":"qosLevel2","id":"1"}"#
        );
        assert_eq!(
            s(rpc_error(
                METHOD_NOT_FOUND_CODE,
                METHOD_NOT_FOUND,
                None,
                "qosLevel0",
                "7"
            )),
            r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found. The method does not exist / is not available."},"qos":"qosLevel0","id":"7"}"#
        );
        assert_eq!(
            s(rpc_error(
                5,
                "bad",
                Some(&Payload::Text("d".into())),
                "qosLevel0",
                "7"
            )),
            r#"{"jsonrpc":"2.0","error":{"code":5,"message":"bad","data":"d"},"qos":"qosLevel0","id":"7"}"#
        );
        assert_eq!(
            s(rpc_error(
                5,
                "bad",
                Some(&Payload::Text(String::new())),
                "qosLevel0",
                "7"
            )),
            r#"{"jsonrpc":"2.0","error":{"code":5,"message":"bad"},"qos":"qosLevel0","id":"7"}"#
        );
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(
            s(subscribed("a\"b", None, Some("i\\"))),
            r#"{"jsonrpc":"2.0","result":{"method":"sgc@subscribe","channel":"a\"b"},"id":"i\\"}"#
        );
        assert_eq!(
            &message_json(&Payload::Text("x\ny".into()))[..],
            br#""x\ny""#
        );
    }

    proptest::proptest! {
        #[test]
        fn event_frames_are_json_and_give_back_their_message(ch in "\\PC{0,30}", text in "\\PC{0,60}") {
            let msg = message_json(&Payload::Text(text.clone()));
            let frame = event(&ch, &msg);
            let v: serde_json::Value = serde_json::from_slice(&frame).unwrap_or_default();
            proptest::prop_assert_eq!(v["result"]["channel"].as_str(), Some(ch.as_str()));
            proptest::prop_assert_eq!(v["result"]["message"].as_str(), Some(text.as_str()));
            proptest::prop_assert_eq!(event_message(&frame), msg);
        }
    }
}
