//! The transport: TCP listener, HTTP upgrade (RFC 6455) with subprotocol negotiation and
//! authentication, and the per-connection task with its bounded outbox; plain HTTP requests handed
//! to the application's [`HttpHandler`] (on the WebSocket port, or alone on an [`HttpServer`]).

mod accept;
pub mod admission;
pub mod auth;
pub mod bearer;
mod connection;
mod connection_task;
pub mod handshake;
pub mod http;
mod http_server;
mod in_flight;
mod keep_alive;
pub mod limits;
pub mod origin;
mod outbox;
pub mod protocol;
mod server;
mod server_config;
pub mod token_bucket;
mod upgrade;

pub use auth::AuthAttempt;
pub use bearer::{BearerAttempt, Claims, Identity};
pub use connection::{Connection, ConnectionInfo, PUBLISH_RATE_EXCEEDED, new_guid};
pub use http::{HttpFuture, HttpHandler, HttpRequest, HttpResponse};
pub use http_server::HttpServer;
pub use keep_alive::KeepAlive;
pub use outbox::{CLOSE_HEARTBEAT_TIMEOUT, CLOSE_SLOW_CONSUMER, CloseReason, SendError};
pub use protocol::{Negotiated, Protocol, ProtocolRegistry};
pub use server::{SHUTDOWN_REASON, Server, ServerHandle};
pub use server_config::ServerConfig;
