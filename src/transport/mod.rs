//! The transport: TCP listener, HTTP upgrade (RFC 6455) with subprotocol negotiation and
//! authentication, and the per-connection task with its bounded outbox; plain HTTP requests handed
//! to the application's [`HttpHandler`] (on the WebSocket port, or alone on an [`HttpServer`]).

mod accept;
pub(crate) mod admission;
mod admit;
pub mod auth;
pub mod bearer;
mod close;
mod connection;
mod connection_task;
pub(crate) mod handshake;
pub(crate) mod http;
mod http_server;
mod in_flight;
mod keep_alive;
pub(crate) mod limits;
pub(crate) mod origin;
mod outbox;
pub(crate) mod protocol;
mod refusal;
mod server;
mod server_config;
mod server_state;
pub(crate) mod token_bucket;
mod upgrade;

pub use auth::AuthAttempt;
pub use bearer::{BearerAttempt, Claims, Identity};
pub use close::Close;
pub use close::CloseReason;
pub(crate) use connection::new_guid;
pub use connection::{Connection, ConnectionInfo, PUBLISH_RATE_EXCEEDED};
pub use http::{HttpFuture, HttpHandler, HttpRequest, HttpResponse};
pub use http_server::HttpServer;
pub use keep_alive::KeepAlive;
pub use outbox::SendError;
pub use protocol::{Negotiated, Protocol, ProtocolRegistry, StopFuture};
pub use server::{SHUTDOWN_REASON, Server, ServerHandle};
pub use server_config::ServerConfig;
