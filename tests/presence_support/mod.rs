//! Helpers for the Presence tests: start a node with the Presence protocol, connect Presence
//! clients, send Delphi-style or JS-style frames, expect exact frames, and prove that nothing
//! else arrived with a barrier round trip.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use wscluster::internals::protocol::json::{decode_b64, encode_b64};
use wscluster::internals::protocol::presence::{PresenceConfig, PresenceProtocol};
use wscluster::{Server, ServerHandle};

use crate::support::{WsClient, init_logs, test_server_config};

/// Starts a node serving only `presence.esegece.com` with `config`.
pub async fn start(config: PresenceConfig) -> (ServerHandle, PresenceProtocol) {
    init_logs();
    let presence = PresenceProtocol::new(config);
    let server = Server::new(test_server_config())
        .protocol(Arc::new(presence.clone()))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    (server, presence)
}

/// Starts a node with the default Presence options.
pub async fn start_default() -> (ServerHandle, PresenceProtocol) {
    start(PresenceConfig::default()).await
}

static BARRIER: AtomicU32 = AtomicU32::new(1);

/// `{"id":…,"name":…,"info":…}` as the server writes it (no Base64, standard escaping).
pub fn m(id: &str, name: &str, info: &str) -> String {
    format!(
        r#"{{"id":{},"name":{},"info":{}}}"#,
        q(id),
        q(name),
        q(info)
    )
}

/// A JSON string literal.
pub fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Expected `member@new` / `member@remove` frames.
pub fn member_frame(method: &str, member: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"sgc@presence@{method}","member":{member}}}"#)
}

/// Expected `channel@member@new` / `channel@member@remove` frames.
pub fn channel_member_frame(method: &str, member: &str, channel: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@presence@{method}","member":{member},"channel":{{"name":{}}}}}"#,
        q(channel)
    )
}

/// Expected `publish@msg` frame; `text` is the JSON value of `message.text`.
pub fn publish_frame(text_json: &str, channel: &str, member: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@presence@publish@msg","message":{{"text":{text_json}}},"channel":{{"name":{}}},"member":{member}}}"#,
        q(channel)
    )
}

/// Expected `send@members` frame.
pub fn send_members_frame(channel: &str, member: &str, members: &[String]) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@presence@send@members","channel":{{"name":{}}},"member":{member},"members":[{}]}}"#,
        q(channel),
        members.join(",")
    )
}

/// Expected invitation frame as an invitee receives it.
pub fn invitation_frame(channel: &str, inviter: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@presence@channel@invitation","channel":{{"name":{}}},"member":{inviter},"members":[]}}"#,
        q(channel)
    )
}

/// Expected error frame.
pub fn error_frame(code: u32, text: &str, channel: &str, member: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@presence@error@member@channel","error":{{"code":{code},"text":{}}},"channel":{{"name":{}}},"member":{member}}}"#,
        q(text),
        q(channel)
    )
}

/// Expected acknowledgment.
pub fn ack_frame(id: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@presence@acknowledgment","id":{}}}"#,
        q(id)
    )
}

/// A client request, Delphi style: compact, sub-objects at top level, name/info empty.
pub fn request(method: &str, member_id: &str, channel: Option<&str>) -> String {
    let mut s = format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@presence@{method}","member":{}"#,
        m(member_id, "", "")
    );
    if let Some(c) = channel {
        s.push_str(&format!(r#","channel":{{"name":{}}}"#, q(c)));
    }
    s.push('}');
    s
}

/// Every `sgc@b64:` string of `v`, recursively, decoded.
pub fn decoded(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(decode_b64(&s).into_owned()),
        Value::Array(a) => Value::Array(a.into_iter().map(decoded).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, decoded(v))).collect()),
        other => other,
    }
}

/// A Presence client over a real socket.
pub struct PClient {
    /// The WebSocket.
    pub ws: WsClient,
    /// The connection GUID from the session frame.
    pub guid: String,
    /// The member id this client registered (empty until then).
    pub id: String,
    /// Send JS-style frames (spaces, every value `sgc@b64:`-encoded, method included).
    pub js: bool,
    /// The session frame exactly as received.
    pub session: String,
}

impl PClient {
    /// Connects and reads the session frame, which must be exactly the wire reference's.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::connect_at(addr, "/").await
    }

    /// Like [`PClient::connect`], upgrading at `path` (e.g. with a token query parameter).
    pub async fn connect_at(addr: SocketAddr, path: &str) -> Self {
        let mut ws = WsClient::connect(addr, path, &["presence.esegece.com"])
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        assert_eq!(ws.protocol.as_deref(), Some("presence.esegece.com"));
        let first = ws.recv().await;
        let v: Value = decoded(serde_json::from_str(&first).unwrap_or_default());
        assert_eq!(v["method"], "sgc@presence@session", "first frame: {first}");
        let guid = v["message"]["text"].as_str().unwrap_or_default().to_owned();
        assert_eq!(guid.len(), 32, "{first}");
        Self {
            ws,
            guid,
            id: String::new(),
            js: false,
            session: first,
        }
    }

    /// Connects a JS-style client.
    pub async fn connect_js(addr: SocketAddr) -> Self {
        let mut c = Self::connect(addr).await;
        c.js = true;
        c
    }

    /// Connects and becomes member `id` (`""` = its GUID, as Delphi does); expects its own
    /// `member@new`.
    pub async fn member(addr: SocketAddr, id: &str, name: &str) -> Self {
        let mut c = Self::connect(addr).await;
        let id = if id.is_empty() {
            c.guid.clone()
        } else {
            id.to_owned()
        };
        c.member_new(&id, name, "").await;
        c.expect(&member_frame("member@new", &m(&id, name, "")))
            .await;
        c
    }

    /// Sends a raw text frame.
    pub async fn send(&mut self, text: &str) {
        self.ws.send(text).await;
    }

    /// The next text frame, raw.
    pub async fn recv(&mut self) -> String {
        self.ws.recv().await
    }

    /// The next text frame as JSON, Base64 values decoded.
    pub async fn recv_json(&mut self) -> Value {
        let t = self.recv().await;
        decoded(serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}")))
    }

    /// Expects the next frame to be exactly `expected`.
    pub async fn expect(&mut self, expected: &str) {
        let got = self.recv().await;
        assert_eq!(got, expected, "unexpected frame for {}", self.id);
    }

    /// Proves nothing else is queued for this client: a frame with a fresh id must be answered
    /// by its acknowledgment as the very next frame.
    pub async fn quiet(&mut self) {
        let id = format!("barrier-{}", BARRIER.fetch_add(1, Ordering::Relaxed));
        self.send(&format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@presence@barrier","id":"{id}"}}"#
        ))
        .await;
        let v = self.recv_json().await;
        assert_eq!(
            (v["method"].as_str(), v["id"].as_str()),
            (Some("sgc@presence@acknowledgment"), Some(id.as_str())),
            "{} received an unexpected frame: {v}",
            self.id
        );
    }

    fn frame(&self, method: &str, member_id: &str, extra: &[(&str, String)]) -> String {
        if !self.js {
            let mut s = format!(
                r#"{{"jsonrpc":"2.0","method":"sgc@presence@{method}","member":{}"#,
                m(member_id, "", "")
            );
            for (k, v) in extra {
                s.push_str(&format!(r#","{k}":{v}"#));
            }
            s.push('}');
            return s;
        }
        let e = |s: &str| q(&encode_b64(s));
        let mut s = format!(
            r#"{{ "jsonrpc": "2.0", "method": {}, "member": {{ "id": {}, "name": {}, "info": {} }}"#,
            e(&format!("sgc@presence@{method}")),
            e(member_id),
            e(""),
            e("")
        );
        for (k, v) in extra {
            s.push_str(&format!(r#", "{k}": {v}"#));
        }
        s.push_str(" }");
        s
    }

    fn channel_obj(&self, channel: &str) -> String {
        let v = if self.js {
            encode_b64(channel)
        } else {
            channel.to_owned()
        };
        format!(r#"{{"name":{}}}"#, q(&v))
    }

    /// `member@new` with these fields (Delphi: compact, raw; JS: spaced, Base64).
    pub async fn member_new(&mut self, id: &str, name: &str, info: &str) {
        self.id = id.to_owned();
        let f = if self.js {
            let e = |s: &str| q(&encode_b64(s));
            format!(
                r#"{{ "jsonrpc": "2.0", "method": {}, "member": {{ "id": {}, "name": {}, "info": {} }} }}"#,
                e("sgc@presence@member@new"),
                e(id),
                e(name),
                e(info)
            )
        } else {
            // Delphi writes names and info raw, without escaping (a CRLF stays a raw CRLF).
            format!(
                r#"{{"jsonrpc":"2.0","method":"sgc@presence@member@new","member":{{"id":"{id}","name":"{name}","info":"{info}"}}}}"#
            )
        };
        self.send(&f).await;
    }

    /// `channel@member@new` as this client's member.
    pub async fn join(&mut self, channel: &str) {
        let f = self.frame(
            "channel@member@new",
            &self.id.clone(),
            &[("channel", self.channel_obj(channel))],
        );
        self.send(&f).await;
    }

    /// `channel@member@remove` as this client's member.
    pub async fn leave(&mut self, channel: &str) {
        let f = self.frame(
            "channel@member@remove",
            &self.id.clone(),
            &[("channel", self.channel_obj(channel))],
        );
        self.send(&f).await;
    }

    /// `publish@msg` of `text` (a plain string) to `channel`.
    pub async fn publish(&mut self, text: &str, channel: &str) {
        let t = if self.js {
            encode_b64(text)
        } else {
            text.to_owned()
        };
        let f = self.frame(
            "publish@msg",
            &self.id.clone(),
            &[
                ("message", format!(r#"{{"text":{}}}"#, q(&t))),
                ("channel", self.channel_obj(channel)),
            ],
        );
        self.send(&f).await;
    }

    /// `get@members` for `channel` (`""` = everyone).
    pub async fn get_members(&mut self, channel: &str) {
        let f = self.frame(
            "get@members",
            &self.id.clone(),
            &[("channel", self.channel_obj(channel))],
        );
        self.send(&f).await;
    }

    /// `channel@invitation` of `targets` to `channel`.
    pub async fn invite(&mut self, channel: &str, targets: &[&str]) {
        let list: Vec<String> = targets.iter().map(|t| m(t, "", "")).collect();
        let f = self.frame(
            "channel@invitation",
            &self.id.clone(),
            &[
                ("channel", self.channel_obj(channel)),
                ("members", format!("[{}]", list.join(","))),
            ],
        );
        self.send(&f).await;
    }

    /// `member@remove` of this client's member.
    pub async fn remove(&mut self) {
        let f = self.frame("member@remove", &self.id.clone(), &[]);
        self.send(&f).await;
    }

    /// Closes the socket.
    pub async fn close(self) {
        self.ws.close().await;
    }
}
