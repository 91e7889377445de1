//! sgc (`esegece.com`) test helpers: start a node with an [`SgcProtocol`], the exact frames the
//! Delphi and JS clients send (docs/wire.md §2.4), the exact frames the server must send (§2.3), and a
//! round-trip barrier that proves what did *not* arrive.

use std::sync::Arc;

use wscluster::internals::protocol::sgc::{SgcConfig, SgcProtocol};
use wscluster::{Server, ServerHandle};

use super::{WsClient, init_logs, test_server_config};

/// A node serving only the sgc protocol with `config`.
pub async fn sgc_server(config: SgcConfig) -> (ServerHandle, SgcProtocol) {
    sgc_server_with(config, |_| {}).await
}

/// A node serving only the sgc protocol, with hooks set by `setup` before it listens.
pub async fn sgc_server_with(
    config: SgcConfig,
    setup: impl FnOnce(&SgcProtocol),
) -> (ServerHandle, SgcProtocol) {
    init_logs();
    let sgc = SgcProtocol::new(config);
    setup(&sgc);
    let server = Server::new(test_server_config())
        .protocol(Arc::new(sgc.clone()))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    (server, sgc)
}

impl WsClient {
    /// Round trip: `sgc@protocol` must be answered by the very next frame, the raw text
    /// `esegece.com`. Anything queued to this client before the request shows up first and fails.
    pub async fn barrier(&mut self) {
        self.send(js::PROTOCOL).await;
        self.expect("esegece.com").await;
    }

    /// Subscribes the Delphi way and expects the S3 confirmation.
    pub async fn subscribe(&mut self, channel: &str) {
        self.send(&delphi::subscribe(channel)).await;
        self.expect(&s3(channel, Some("qosLevel0"), None)).await;
    }
}

/// Frames of the Delphi client `TsgcWSPClient_sgc`, `QoS.Level = qosLevel0` unless given.
pub mod delphi {
    /// `Subscribe(ch)`.
    pub fn subscribe(ch: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@subscribe","params":{{"channel":"{ch}","qos":"qosLevel0"}},"qos":"qosLevel0"}}"#
        )
    }
    /// `UnSubscribe(ch)`.
    pub fn unsubscribe(ch: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@unsubscribe","params":{{"channel":"{ch}","qos":"qosLevel0"}},"qos":"qosLevel0"}}"#
        )
    }
    /// `UnSubscribeAll`.
    pub const UNSUBSCRIBE_ALL: &str = r#"{"jsonrpc":"2.0","method":"sgc@unsubscribe_all","params":{"qos":"qosLevel0"},"qos":"qosLevel0"}"#;
    /// `Publish(m, ch, '', queue)`; `message` is the JSON value as the client writes it.
    pub fn publish(message: &str, ch: &str, queue: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@publish","params":{{"message":{message},"channel":"{ch}","qos":"qosLevel0","queue":"{queue}"}},"qos":"qosLevel0"}}"#
        )
    }
    /// `Publish` with `QoS.Level = qos` and an id (QoS 1 and 2).
    pub fn publish_qos(message: &str, ch: &str, queue: &str, qos: &str, id: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@publish","params":{{"message":{message},"channel":"{ch}","qos":"{qos}","queue":"{queue}"}},"qos":"{qos}","id":"{id}"}}"#
        )
    }
    /// `Broadcast(m, ch)`.
    pub fn broadcast(message: &str, ch: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@broadcast","params":{{"message":{message},"channel":"{ch}","qos":"qosLevel0"}},"qos":"qosLevel0"}}"#
        )
    }
    /// `WriteData(m)`.
    pub fn write_data(message: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@message","params":{{"message":{message},"qos":"qosLevel0"}},"qos":"qosLevel0"}}"#
        )
    }
    /// `RPC(id, method, params)`; `params` is the JSON value as written.
    pub fn rpc(id: &str, method: &str, params: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"qos":"qosLevel0","id":"{id}"}}"#
        )
    }
    /// `RPC(id, method)` with empty params (the quirk: params is the qos/queue object).
    pub fn rpc_no_params(id: &str, method: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","method":"{method}","params":{{"qos":"qosLevel0","queue":"queueLevel0"}},"qos":"qosLevel0","id":"{id}"}}"#
        )
    }
    /// `Notify(method, params)`.
    pub fn notify(method: &str, params: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"qos":"qosLevel0"}}"#)
    }
    /// `GetSession`.
    pub const GET_SESSION: &str = r#"{"jsonrpc":"2.0","method":"sgc@session","params":{"qos":"qosLevel0"},"qos":"qosLevel0"}"#;
    /// `StartTransaction(ch)` (`sgc@transaction`), `Commit(ch)` (`sgc@commit`), `RollBack(ch)`
    /// (`sgc@rollback`).
    pub fn tx(method: &str, ch: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","method":"{method}","params":{{"channel":"{ch}","qos":"qosLevel0"}},"qos":"qosLevel0"}}"#
        )
    }
    /// The automatic acknowledgment of S1, S9 and S10.
    pub fn ack(id: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0","result":{{"method":"sgc@acknowledgment"}},"id":"{id}"}}"#)
    }
    /// The automatic PubRel after S8.
    pub fn pubrel(id: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@pubrel","params":{{"qos":"qosLevel2"}},"qos":"qosLevel2","id":"{id}"}}"#
        )
    }
}

/// Frames of the JS client `sgcws` (string concatenation, with spaces).
pub mod js {
    /// `socket.send(m)`.
    pub fn send(message: &str, id: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0", "method":"sgc@message", "params":{{"message":"{message}"}}, "id":"{id}"}}"#
        )
    }
    /// `socket.subscribe(ch)`.
    pub fn subscribe(ch: &str, id: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0", "method":"sgc@subscribe", "params":{{"channel":"{ch}", "message":""}}, "id":"{id}"}}"#
        )
    }
    /// `socket.unsubscribe(ch)`.
    pub fn unsubscribe(ch: &str, id: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0", "method":"sgc@unsubscribe", "params":{{"channel":"{ch}", "message":""}}, "id":"{id}"}}"#
        )
    }
    /// `socket.publish(m, ch)`; `message` is inserted raw when it starts with `{`, `[` or `"`.
    pub fn publish(message: &str, ch: &str, id: &str) -> String {
        let m = if message.starts_with(['{', '[', '"']) {
            message.to_owned()
        } else {
            format!("\"{message}\"")
        };
        format!(
            r#"{{"jsonrpc":"2.0", "method":"sgc@publish", "params":{{"channel":"{ch}", "message":{m}}}, "id":"{id}"}}"#
        )
    }
    /// `socket.broadcast(m, ch)`.
    pub fn broadcast(message: &str, ch: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0", "method":"sgc@broadcast", "params":{{"channel":"{ch}", "message":"{message}"}}}}"#
        )
    }
    /// `socket.rpc(id, method, params)` (2021: params quoted).
    pub fn rpc(id: &str, method: &str, params: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0", "method":"{method}", "params":"{params}", "id":"{id}"}}"#)
    }
    /// `socket.notify(method)` (2021).
    pub fn notify(method: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0", "method":"{method}", "params":""}}"#)
    }
    /// `socket.getsession()`.
    pub const GET_SESSION: &str = r#"{"jsonrpc":"2.0", "method":"sgc@session"}"#;
    /// `sgc@protocol` (used as the round-trip barrier).
    pub const PROTOCOL: &str = r#"{"jsonrpc":"2.0", "method":"sgc@protocol"}"#;
    /// `socket.starttransaction(ch)` / `commit(ch)` / `rollback(ch)` by method name.
    pub fn tx(method: &str, ch: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0", "method":"{method}", "params":{{"channel":"{ch}", "message":""}}}}"#
        )
    }
    /// `socket.pubrel(id)`, with `qos` only when `qoslevel2()` was set.
    pub fn pubrel(id: &str, qos2: bool) -> String {
        let q = if qos2 { r#", "qos":"qosLevel2""# } else { "" };
        format!(
            r#"{{"jsonrpc":"2.0", "method":"sgc@pubrel", "params":{{"channel":"", "message":""{q}}}, "id":"{id}"}}"#
        )
    }
}

/// S1.
pub fn s1(guid: &str, qos: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","result":{{"method":"sgc@session","message":"{guid}"}},"qos":"{qos}","id":"{guid}"}}"#
    )
}

/// S2.
pub fn s2(id: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","result":{{"method":"sgc@acknowledgment"}},"id":"{id}"}}"#)
}

fn qos_id(qos: Option<&str>, id: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(q) = qos {
        s.push_str(&format!(r#","qos":"{q}""#));
    }
    if let Some(i) = id {
        s.push_str(&format!(r#","id":"{i}""#));
    }
    s
}

/// S3.
pub fn s3(ch: &str, qos: Option<&str>, id: Option<&str>) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","result":{{"method":"sgc@subscribe","channel":"{ch}"}}{}}}"#,
        qos_id(qos, id)
    )
}

/// S4.
pub fn s4(ch: &str, qos: Option<&str>, id: Option<&str>) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","result":{{"method":"sgc@unsubscribe","channel":"{ch}"}}{}}}"#,
        qos_id(qos, id)
    )
}

/// S5; `message` is the JSON value as written.
pub fn s5(ch: &str, message: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","result":{{"method":"sgc@event","channel":"{ch}","message":{message}}}}}"#
    )
}

/// S6 / S6b; `message` is the JSON value as written.
pub fn s6(ch: &str, message: &str, qos: Option<&str>, id: Option<&str>) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","result":{{"method":"sgc@message","channel":"{ch}","message":{message}}}{}}}"#,
        qos_id(qos, id)
    )
}

/// S7; `message` is the JSON value as written.
pub fn s7(message: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"sgc@message","params":{{"message":{message}}}}}"#)
}

/// S8.
pub fn s8(id: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","result":{{"method":"sgc@pubrec"}},"id":"{id}"}}"#)
}

/// S9; `result` is the JSON value as written.
pub fn s9(result: &str, qos: &str, id: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","result":{result},"qos":"{qos}","id":"{id}"}}"#)
}

/// S10 (`data` as written JSON, or none).
pub fn s10(code: i64, message: &str, data: Option<&str>, qos: &str, id: &str) -> String {
    let d = data.map(|d| format!(r#","data":{d}"#)).unwrap_or_default();
    format!(
        r#"{{"jsonrpc":"2.0","error":{{"code":{code},"message":"{message}"{d}}},"qos":"{qos}","id":"{id}"}}"#
    )
}

/// The vendor text of a refused RPC.
pub const METHOD_NOT_FOUND: &str =
    "Method not found. The method does not exist / is not available.";

/// The next value a hook sent into `rx`, waiting at most [`super::DEFAULT_WAIT`].
pub async fn next_event<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(super::DEFAULT_WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no hook event within {:?}", super::DEFAULT_WAIT))
        .unwrap_or_else(|| panic!("hook channel closed"))
}

/// Asserts no hook event is waiting. Hooks run on the reader task before later frames of the same
/// connection are processed, so after a [`WsClient::barrier`] any event would already be there.
pub fn no_event<T: std::fmt::Debug>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) {
    if let Ok(e) = rx.try_recv() {
        panic!("unexpected hook event: {e:?}");
    }
}

/// Connects an sgc client and returns it with its GUID (after checking S1 exactly).
pub async fn client(addr: std::net::SocketAddr) -> (WsClient, String) {
    let (c, guid) = WsClient::sgc(addr).await;
    assert_eq!(guid.len(), 32, "GUID: {guid}");
    (c, guid)
}
