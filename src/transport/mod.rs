//! The transport: TCP listener, HTTP upgrade (RFC 6455) with subprotocol negotiation and
//! authentication, and the per-connection task with its bounded outbox; plain HTTP requests handed
//! to the application's [`HttpHandler`] (on the WebSocket port, or alone on an [`HttpServer`]).

mod accept;
pub mod admission;
mod admit;
pub mod auth;
pub mod bearer;
mod close;
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
mod refusal;
mod server;
pub mod token_bucket;
mod upgrade;

pub use close::Close;
pub use connection::{Connection, ConnectionInfo, PUBLISH_RATE_EXCEEDED, new_guid};
pub use http::{HttpFuture, HttpHandler, HttpRequest, HttpResponse};
pub use http_server::HttpServer;
pub use keep_alive::KeepAlive;
pub use outbox::{CLOSE_HEARTBEAT_TIMEOUT, CLOSE_SLOW_CONSUMER, CloseReason, SendError};
pub use server::{SHUTDOWN_REASON, Server, ServerHandle};
