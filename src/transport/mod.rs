//! The transport: TCP listener, HTTP upgrade (RFC 6455) with subprotocol negotiation and
//! authentication, and the per-connection task with its bounded outbox.

pub mod auth;
mod connection;
mod connection_task;
pub mod handshake;
mod outbox;
mod server;

pub use connection::{Connection, ConnectionInfo, new_guid};
pub use outbox::{CLOSE_HEARTBEAT_TIMEOUT, CLOSE_SLOW_CONSUMER, CloseReason, SendError};
pub use server::{SHUTDOWN_REASON, Server, ServerHandle};
