//! The sgc (`esegece.com`) and Presence (`presence.esegece.com`) frames the attacks send, in the
//! Delphi client's shapes, and the few answers they wait for.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::ws::{self, Msg, Ws};

/// The sgc subprotocol token.
pub(crate) const SGC: &str = "esegece.com";
/// The Presence subprotocol token.
pub(crate) const PRESENCE: &str = "presence.esegece.com";

/// A JSON string literal's inside.
pub(crate) fn escaped(s: &str) -> String {
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return s.to_owned();
    }
    let quoted = serde_json::Value::String(s.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// `sgc@subscribe` for `channel`, with an `id` so the server acknowledges it.
pub(crate) fn subscribe(channel: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@subscribe","params":{{"channel":"{}","qos":"qosLevel0"}},"qos":"qosLevel0"}}"#,
        escaped(channel)
    )
}

/// `sgc@publish` of `message` (a string) to `channel` with the queue level `queue`.
pub(crate) fn publish(channel: &str, message: &str, queue: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@publish","params":{{"message":"{}","channel":"{}","qos":"qosLevel0","queue":"{queue}"}},"qos":"qosLevel0"}}"#,
        escaped(message),
        escaped(channel)
    )
}

/// `sgc@transaction` (open) for `channel`.
pub(crate) fn transaction(channel: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@transaction","params":{{"channel":"{}","qos":"qosLevel0"}},"qos":"qosLevel0"}}"#,
        escaped(channel)
    )
}

/// The body size that makes a publish frame of `frame_cap` bytes at most.
pub(crate) fn body_for(frame_cap: usize) -> usize {
    frame_cap.saturating_sub(512)
}

/// Whether `text` is the S3 confirmation of a subscription to `channel`.
pub(crate) fn is_subscribed(text: &str, channel: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| {
        v["result"]["method"] == "sgc@subscribe" && v["result"]["channel"] == channel
    })
}

/// Whether `text` is an S5 event on `channel` carrying `message`.
pub(crate) fn is_event(text: &str, channel: &str, message: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| {
        v["result"]["method"] == "sgc@event"
            && v["result"]["channel"] == channel
            && v["result"]["message"] == message
    })
}

/// Connects an sgc client and waits for its session frame.
pub(crate) async fn client(addr: SocketAddr) -> Result<Ws, String> {
    let mut ws = ws::connect(addr, "/", SGC).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    ws.recv_until(deadline, |t| t.contains("sgc@session"))
        .await
        .map_err(|m| format!("no session frame: {m:?}"))?;
    Ok(ws)
}

/// Subscribes to `channel` and waits for the confirmation: everything sent before it on this
/// connection has been processed by the node when this returns.
pub(crate) async fn sync(ws: &mut Ws, channel: &str, within: Duration) -> Result<(), Msg> {
    ws.send(&subscribe(channel)).await.map_err(Msg::Eof)?;
    ws.recv_until(Instant::now() + within, |t| is_subscribed(t, channel))
        .await
        .map(|_| ())
}

/// Presence `member@new` for `id`.
pub(crate) fn member_new(id: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@presence@member@new","member":{{"id":"{}","name":"{}","info":""}}}}"#,
        escaped(id),
        escaped(id)
    )
}

/// What a Presence `member@new` got: the broadcast of the new member, or an error code.
pub(crate) fn presence_answer(text: &str, id: &str) -> Option<Result<(), i64>> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let method = v["method"].as_str()?;
    if method == "sgc@presence@member@new" && v["member"]["id"] == id {
        return Some(Ok(()));
    }
    if method.starts_with("sgc@presence@error") {
        return Some(Err(v["error"]["code"].as_i64().unwrap_or(-1)));
    }
    None
}
