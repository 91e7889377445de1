//! [`Connection`]: the cheap, cloneable handle to one accepted WebSocket connection.
//!
//! Protocols and applications hold it to send frames (into the connection's bounded outbox), to close
//! the connection, and to read what the handshake learned (id, negotiated subprotocol, user, address).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::close::Close;
use super::close::CloseReason;
use super::limits::ConnectionLimits;
use super::outbox::{Outbox, Outgoing, SendError};
use crate::metrics::{self, Limit};

/// The close reason of a connection that publishes faster than
/// `limits.publishes_per_second_per_connection` (code 1008).
pub const PUBLISH_RATE_EXCEEDED: &str = Close::PUBLISH_RATE.reason;

/// What the handshake learned about a connection; fixed for the connection's life.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The connection GUID: 32 uppercase hex characters (docs/wire.md §1.2).
    pub id: Arc<str>,
    /// The negotiated subprotocol token, or `None` when the client offered none.
    pub protocol: Option<&'static str>,
    /// The client's address.
    pub peer_addr: SocketAddr,
    /// The request path of the upgrade (e.g. `/` or `/sgc/auth/url/alice/secret`).
    pub path: String,
    /// The authenticated user, when authentication is enabled and succeeded.
    pub user: Option<String>,
    /// The `Origin` header of the upgrade, if any.
    pub origin: Option<String>,
    /// The claims of the bearer token that authenticated the connection, if any.
    pub claims: Option<Arc<super::bearer::Claims>>,
}

struct Shared {
    info: ConnectionInfo,
    /// Process-unique number, cheaper than the GUID as a map key.
    key: u64,
    outbox: Outbox,
    /// Publish rate and channel name limits (none for a detached handle).
    limits: ConnectionLimits,
}

/// A handle to one WebSocket connection. Cloning is cheap (one `Arc`); the handle stays valid after
/// the connection closed, sends then fail with [`SendError::Closed`].
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.shared.info.id)
            .field("protocol", &self.shared.info.protocol)
            .field("peer", &self.shared.info.peer_addr)
            .finish()
    }
}

impl PartialEq for Connection {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}
impl Eq for Connection {}

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// A new connection GUID: a random UUID v4 as 32 uppercase hex characters, no dashes (docs/wire.md §5.1).
pub(crate) fn new_guid() -> String {
    let mut s = uuid::Uuid::new_v4().simple().to_string();
    s.make_ascii_uppercase();
    s
}

impl Connection {
    /// Creates the handle for a connection whose handshake produced `info`.
    pub(crate) fn new(info: ConnectionInfo, max_outbox_bytes: usize) -> Self {
        Self::with_limits(info, max_outbox_bytes, ConnectionLimits::default())
    }

    /// [`Connection::new`] with the `[limits]` a protocol asks about.
    pub(crate) fn with_limits(
        info: ConnectionInfo,
        max_outbox_bytes: usize,
        limits: ConnectionLimits,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                info,
                key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
                outbox: Outbox::new(max_outbox_bytes),
                limits,
            }),
        }
    }

    /// Asked by a protocol before each publish: true when the connection is within
    /// `limits.publishes_per_second_per_connection`. Past it the connection is closed with 1008
    /// [`PUBLISH_RATE_EXCEEDED`] (after what is already queued), the refusal counted and logged,
    /// and false returned: the publish must be dropped.
    pub fn publish_allowed(&self) -> bool {
        if self.shared.limits.take_publish() {
            return true;
        }
        if self.is_open() {
            self.limit_refused(Limit::PublishRate, "publish rate exceeded: closing");
            self.close_with(Close::PUBLISH_RATE);
        }
        false
    }

    /// Asked by a protocol before a subscribe or publish: whether `channel` is within
    /// `limits.max_channel_name_length` (counted and logged when it is not; the protocol answers).
    pub fn channel_allowed(&self, channel: &str) -> bool {
        let ok = self.shared.limits.channel_allowed(channel);
        if !ok {
            self.limit_refused(Limit::ChannelName, "channel name too long");
        }
        ok
    }

    /// Counts something of this connection refused by `limit` and logs it: at info the first
    /// time for the connection, at debug after that (a client repeating a refused request must
    /// not flood the log).
    pub fn limit_refused(&self, limit: Limit, detail: &str) {
        metrics::limit_refused(limit);
        let (conn, peer) = (self.id(), &self.shared.info.peer_addr);
        if self.shared.limits.first_refusal() {
            tracing::info!(conn, %peer, limit = limit.label(), detail, "refused by a limit (logged once per connection)");
        } else {
            tracing::debug!(conn, %peer, limit = limit.label(), detail, "refused by a limit");
        }
    }

    /// The connection GUID (32 uppercase hex characters).
    pub fn id(&self) -> &str {
        &self.shared.info.id
    }

    /// The connection GUID as a shared string (cheap to clone into maps and events).
    pub fn id_arc(&self) -> Arc<str> {
        self.shared.info.id.clone()
    }

    /// A process-unique number for this connection, handy as a map key.
    pub fn key(&self) -> u64 {
        self.shared.key
    }

    /// Everything the handshake learned.
    pub fn info(&self) -> &ConnectionInfo {
        &self.shared.info
    }

    /// The negotiated subprotocol, if any.
    pub fn protocol(&self) -> Option<&'static str> {
        self.shared.info.protocol
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<&str> {
        self.shared.info.user.as_deref()
    }

    /// The claims of the bearer token that authenticated the connection (e.g. `roles`), if any.
    pub fn claims(&self) -> Option<&super::bearer::Claims> {
        self.shared.info.claims.as_deref()
    }

    /// Queues a text frame. `text` must be UTF-8; encoders in this crate guarantee it.
    /// Sharing one `Bytes` between many connections costs no copy.
    pub fn send_text(&self, text: Bytes) -> Result<(), SendError> {
        self.shared.outbox.push(Outgoing::Text(text))
    }

    /// Queues a text frame from a string.
    pub fn send_str(&self, text: &str) -> Result<(), SendError> {
        self.send_text(Bytes::copy_from_slice(text.as_bytes()))
    }

    /// Queues a binary frame.
    pub fn send_binary(&self, data: Bytes) -> Result<(), SendError> {
        self.shared.outbox.push(Outgoing::Binary(data))
    }

    /// Closes the connection after the frames already queued, with one of the node's named
    /// closes ([`Close`]) or an application's own [`CloseReason`].
    pub fn close_with(&self, close: impl Into<CloseReason>) {
        self.shared.outbox.close(close.into());
    }

    /// Whether the connection is still open (no close asked for or seen).
    pub fn is_open(&self) -> bool {
        !self.shared.outbox.is_closed()
    }

    /// Bytes queued for this connection and not yet written to its socket.
    pub fn queued_bytes(&self) -> usize {
        self.shared.outbox.queued_bytes()
    }

    /// The most bytes this connection's outbox holds (`server.max_outbox_bytes`) before it is
    /// closed as a slow consumer.
    pub fn max_outbox_bytes(&self) -> usize {
        self.shared.outbox.max_bytes()
    }

    pub(crate) fn outbox(&self) -> &Outbox {
        &self.shared.outbox
    }

    /// A handle for tests and embedders that need a connection without a socket: frames sent to it
    /// are kept in its outbox. Used by the unit tests of protocol rules.
    #[doc(hidden)]
    pub fn detached(id: &str, protocol: Option<&'static str>) -> Self {
        Self::new(
            ConnectionInfo {
                id: Arc::from(id),
                protocol,
                peer_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                path: "/".into(),
                user: None,
                origin: None,
                claims: None,
            },
            usize::MAX / 2,
        )
    }

    /// Takes the text frames queued so far on a [`Connection::detached`] handle (tests only).
    #[doc(hidden)]
    pub fn drain_sent_text(&self) -> Vec<String> {
        let mut q = std::collections::VecDeque::new();
        let fut = self.shared.outbox.take(&mut q);
        // The outbox's `take` returns at once when there is something queued or a close.
        let _ = futures_util::FutureExt::now_or_never(fut);
        q.into_iter()
            .filter_map(|o| match o {
                Outgoing::Text(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                Outgoing::Binary(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_32_uppercase_hex() {
        let g = new_guid();
        assert_eq!(g.len(), 32);
        assert!(
            g.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
    }

    #[test]
    fn detached_connection_keeps_what_was_sent() {
        let c = Connection::detached("A", Some("esegece.com"));
        c.send_str("one").ok();
        c.send_str("two").ok();
        assert_eq!(c.drain_sent_text(), vec!["one", "two"]);
        assert!(c.drain_sent_text().is_empty());
    }
}
