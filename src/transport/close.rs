//! [`Close`]: every WebSocket close the node sends a client, by name (code and reason text), in
//! one place (docs/wire.md §1.9 lists the same names). A connection is closed with
//! [`super::Connection::close_with`].
//!
//! Some are sent by the WebSocket layer itself (a protocol violation, invalid UTF-8, a message
//! over the size limit): they are named here so that the list is complete, and their reason is
//! the layer's.

/// A WebSocket close the node sends: its code (RFC 6455 §7.4) and reason text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    /// The close code.
    pub code: u16,
    /// The reason text (empty for the closes the WebSocket layer words itself).
    pub reason: &'static str,
}

impl Close {
    /// 1000: the connection's task ended (the client closed, or the socket failed) and closes
    /// what is left of it.
    pub const NORMAL: Close = Close::new(1000, "connection closed");
    /// 1000: closed by `POST /admin/connections/<G>/disconnect` without a code or reason.
    pub const BY_OPERATOR: Close = Close::new(1000, "disconnected by an operator");
    /// 1000: closed by the server API's `POST /api/disconnect` without a code or reason.
    pub const BY_SERVER_API: Close = Close::new(1000, "disconnected by the server");
    /// 1001: the node shuts down (what was queued for the client is sent first).
    pub const SHUTDOWN: Close = Close::new(1001, "server shutting down");
    /// 1001: the client answered no ping within `server.heartbeat_timeout_ms`.
    pub const HEARTBEAT_TIMEOUT: Close = Close::new(1001, "heartbeat timeout");
    /// 1002: a WebSocket protocol violation by the client (sent by the WebSocket layer).
    pub const PROTOCOL_ERROR: Close = Close::new(1002, "");
    /// 1007: a text message that is not valid UTF-8 (sent by the WebSocket layer).
    pub const INVALID_UTF8: Close = Close::new(1007, "");
    /// 1008: the client's outbound queue passed `server.max_outbox_bytes`; the reason sent says
    /// the cap ([`Close::slow_consumer`]).
    pub const SLOW_CONSUMER: Close = Close::new(1008, "slow consumer");
    /// 1008: more publishes than `limits.publishes_per_second_per_connection`.
    pub const PUBLISH_RATE: Close = Close::new(1008, "publish rate exceeded");
    /// 1008: an sgc transaction passed `sgc.transaction_max_bytes` (or the per-connection cap).
    pub const TRANSACTION_TOO_LARGE: Close = Close::new(1008, "transaction too large");
    /// 1009: a message over `server.max_message_size` or the protocol's limit (sent by the
    /// WebSocket layer).
    pub const MESSAGE_TOO_BIG: Close = Close::new(1009, "");
    /// 1011: a protocol callback or an application hook panicked on this connection's frame.
    pub const INTERNAL_ERROR: Close = Close::new(1011, "internal error");

    /// Every close the node sends, by name (the names docs/wire.md §1.9 uses).
    pub const ALL: &'static [(&'static str, Close)] = &[
        ("NORMAL", Close::NORMAL),
        ("BY_OPERATOR", Close::BY_OPERATOR),
        ("BY_SERVER_API", Close::BY_SERVER_API),
        ("SHUTDOWN", Close::SHUTDOWN),
        ("HEARTBEAT_TIMEOUT", Close::HEARTBEAT_TIMEOUT),
        ("PROTOCOL_ERROR", Close::PROTOCOL_ERROR),
        ("INVALID_UTF8", Close::INVALID_UTF8),
        ("SLOW_CONSUMER", Close::SLOW_CONSUMER),
        ("PUBLISH_RATE", Close::PUBLISH_RATE),
        ("TRANSACTION_TOO_LARGE", Close::TRANSACTION_TOO_LARGE),
        ("MESSAGE_TOO_BIG", Close::MESSAGE_TOO_BIG),
        ("INTERNAL_ERROR", Close::INTERNAL_ERROR),
    ];

    const fn new(code: u16, reason: &'static str) -> Self {
        Self { code, reason }
    }

    /// Whether an operator (admin or server API) may close a connection with `code`: 1000, or
    /// the private-use range 3000..=4999.
    pub fn operator_code_allowed(code: u16) -> bool {
        code == 1000 || (3000..=4999).contains(&code)
    }

    /// An operator's close with their own code and reason (checked by the caller with
    /// [`Close::operator_code_allowed`]; a reason over 123 bytes is cut).
    pub fn operator(code: u16, reason: &str) -> CloseReason {
        CloseReason::new(code, reason)
    }

    /// [`Close::SLOW_CONSUMER`] with the cap that was passed.
    pub fn slow_consumer(cap: usize) -> CloseReason {
        CloseReason::new(
            Close::SLOW_CONSUMER.code,
            format!(
                "{}: more than {cap} bytes queued",
                Close::SLOW_CONSUMER.reason
            ),
        )
    }
}

impl From<Close> for CloseReason {
    fn from(c: Close) -> Self {
        CloseReason::new(c.code, c.reason)
    }
}

/// Why the server is closing a connection: the close code and reason sent to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// WebSocket close code (RFC 6455 §7.4).
    pub code: u16,
    /// Human-readable reason, at most 123 bytes on the wire.
    pub reason: String,
}

impl CloseReason {
    /// A close with the given code and reason (the node's own are named by [`Close`]).
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > 123 {
            let mut cut = 123;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        Self { code, reason }
    }

    /// The close sent to a client whose outbound queue passed its byte cap.
    pub fn slow_consumer(cap: usize) -> Self {
        Close::slow_consumer(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/wire.md §1.9 lists every close by its name, with its code and reason.
    #[test]
    fn the_wire_reference_lists_every_close() {
        let wire = include_str!("../../docs/wire.md");
        for (name, close) in Close::ALL {
            let row = wire
                .lines()
                .find(|l| l.contains(&format!("`Close::{name}`")))
                .unwrap_or_else(|| panic!("docs/wire.md §1.9 has no row for Close::{name}"));
            assert!(
                row.starts_with(&format!("| {} |", close.code)),
                "Close::{name}: {row}"
            );
            if !close.reason.is_empty() {
                assert!(
                    row.contains(&format!("`{}", close.reason)),
                    "Close::{name}: {row}"
                );
            }
        }
    }

    #[test]
    fn slow_consumer_names_its_cap_and_operator_codes_are_checked() {
        let r = Close::slow_consumer(10);
        assert_eq!(
            (r.code, r.reason.as_str()),
            (1008, "slow consumer: more than 10 bytes queued")
        );
        assert!(Close::operator_code_allowed(1000));
        assert!(Close::operator_code_allowed(4999));
        assert!(!Close::operator_code_allowed(1001));
        assert!(!Close::operator_code_allowed(5000));
        assert_eq!(
            CloseReason::from(Close::SHUTDOWN).reason,
            "server shutting down"
        );
    }
}
