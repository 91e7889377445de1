//! Client connections: where to connect (loopback only unless told otherwise), the WebSocket
//! upgrade with the protocol's subprotocol token, waiting for a frame with a deadline, and the
//! reading loop every connection runs until the run stops it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use http::{HeaderValue, Uri};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_websockets::{ClientBuilder, Message, WebSocketStream};

use crate::wire::Proto;

/// A client WebSocket over plain TCP.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// A node to connect to: its `ws://` URL and the socket address it resolves to.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The URL as given (shown in reports).
    pub(crate) url: String,
    /// The parsed URL (path and host header of the upgrade).
    uri: Uri,
    /// Where the TCP connection goes.
    addr: SocketAddr,
}

impl Target {
    /// Parses a `ws://host:port/path` URL. The host must be an IP literal or `localhost`; it must
    /// be a loopback address unless `allow_non_loopback` (the load generator is meant for this
    /// machine's nodes: it never aims a load at a host by accident).
    pub(crate) fn parse(url: &str, allow_non_loopback: bool) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        if uri.scheme_str() != Some("ws") {
            return Err(format!("{url}: only ws:// URLs are supported"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("{url}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse()
                .map_err(|_| format!("{url}: the host must be an IP address or localhost"))?
        };
        if !ip.is_loopback() && !allow_non_loopback {
            return Err(format!(
                "{url}: not a loopback address (pass --allow-non-loopback to target another host)"
            ));
        }
        let port = uri.port_u16().unwrap_or(80);
        Ok(Self {
            url: url.to_owned(),
            uri,
            addr: SocketAddr::new(ip, port),
        })
    }

    /// Opens a TCP connection and upgrades it, offering `proto`'s subprotocol token; fails if the
    /// server does not choose it. The whole attempt is bounded by `timeout`.
    pub(crate) async fn connect(&self, proto: Proto, timeout: Duration) -> Result<Ws, String> {
        tokio::time::timeout(timeout, self.connect_inner(proto))
            .await
            .map_err(|_| "connect timed out".to_owned())?
    }

    /// [`Target::connect`] without the deadline.
    async fn connect_inner(&self, proto: Proto) -> Result<Ws, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("tcp connect: {e}"))?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("tcp nodelay: {e}"))?;
        let token = proto.subprotocol();
        let builder = ClientBuilder::from_uri(self.uri.clone())
            .add_header(
                http::header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(token),
            )
            .map_err(|e| format!("upgrade request: {e}"))?;
        let (ws, resp) = builder
            .connect_on(tcp)
            .await
            .map_err(|e| format!("upgrade: {e}"))?;
        let chosen = resp
            .headers()
            .get(http::header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok());
        if chosen != Some(token) {
            return Err(format!(
                "upgrade: server chose subprotocol {chosen:?}, not {token}"
            ));
        }
        Ok(ws)
    }
}

/// Waits for the next text frame, answering pings on the way; a close, an error, the end of
/// the stream or the deadline is an error naming what happened.
pub(crate) async fn next_text<S>(ws: &mut S, deadline: Instant) -> Result<String, String>
where
    S: Stream<Item = Result<Message, tokio_websockets::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| "timed out waiting for the server".to_owned())?;
        match msg {
            None => return Err("connection closed by the server".to_owned()),
            Some(Err(e)) => return Err(format!("read: {e}")),
            Some(Ok(m)) => {
                if let Some(text) = m.as_text() {
                    return Ok(text.to_owned());
                }
                if let Some((code, reason)) = m.as_close() {
                    return Err(format!(
                        "closed by the server: {} {reason}",
                        u16::from(code)
                    ));
                }
            }
        }
    }
}

/// Why a reading loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// The run told it to stop.
    Stopped,
    /// The server closed the connection or it failed; the text says how.
    Lost(String),
}

/// Reads frames, handing each text frame to `on_text`, until `stop` turns true or the connection
/// ends. Pings are answered by the stream itself while it is read.
pub(crate) async fn read_until_stopped<S>(
    ws: &mut S,
    stop: &mut watch::Receiver<bool>,
    mut on_text: impl FnMut(&str),
) -> End
where
    S: Stream<Item = Result<Message, tokio_websockets::Error>> + Unpin,
{
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return End::Stopped,
            msg = ws.next() => match msg {
                None => return End::Lost("connection closed by the server".to_owned()),
                Some(Err(e)) => return End::Lost(format!("read: {e}")),
                Some(Ok(m)) => {
                    if let Some(text) = m.as_text() {
                        on_text(text);
                    } else if let Some((code, reason)) = m.as_close() {
                        return End::Lost(format!("closed by the server: {} {reason}", u16::from(code)));
                    }
                }
            },
        }
    }
}

/// Counts of failures by kind, for the report ("3× tcp connect: Connection refused").
#[derive(Debug, Default)]
pub(crate) struct Failures {
    /// Failure text → how many times.
    by_kind: Mutex<BTreeMap<String, u64>>,
}

impl Failures {
    /// Counts one failure.
    pub(crate) fn add(&self, what: &str) {
        *self.by_kind.lock().entry(what.to_owned()).or_default() += 1;
    }

    /// Total failures.
    pub(crate) fn total(&self) -> u64 {
        self.by_kind.lock().values().sum()
    }

    /// The most frequent kinds, most frequent first; empty when there were none.
    pub(crate) fn summary(&self) -> String {
        let map = self.by_kind.lock();
        let mut kinds: Vec<(&String, &u64)> = map.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1));
        let mut parts: Vec<String> = kinds
            .iter()
            .take(4)
            .map(|(k, n)| format!("{n}× {k}"))
            .collect();
        if kinds.len() > 4 {
            parts.push(format!("… {} more kinds", kinds.len() - 4));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted_by_default() {
        assert!(Target::parse("ws://127.0.0.1:8080", false).is_ok());
        assert!(Target::parse("ws://localhost:8080/x", false).is_ok());
        assert!(Target::parse("ws://[::1]:8080", false).is_ok());
        assert!(Target::parse("ws://127.0.0.2:9", false).is_ok());
        assert!(Target::parse("ws://10.0.0.1:8080", false).is_err());
        assert!(Target::parse("ws://10.0.0.1:8080", true).is_ok());
        assert!(Target::parse("ws://example.com:8080", true).is_err());
        assert!(Target::parse("wss://127.0.0.1:8080", false).is_err());
        assert!(Target::parse("not a url", false).is_err());
    }

    #[test]
    fn failures_are_summarised_most_frequent_first() {
        let f = Failures::default();
        f.add("a");
        f.add("b");
        f.add("b");
        assert_eq!(f.total(), 3);
        assert_eq!(f.summary(), "2× b; 1× a");
        assert_eq!(Failures::default().summary(), "");
    }
}
