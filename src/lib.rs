//! # wscluster
//!
//! A WebSocket pub/sub server speaking the sgcWebSockets `esegece.com` (sgc) and
//! `presence.esegece.com` (Presence) protocols, whose nodes form one cluster.
//!
//! ## Crate map, in the order a publish travels
//!
//! - [`transport`]: the listener, the HTTP upgrade (subprotocol choice, authentication), and one
//!   task per connection that reads frames and writes its bounded [`transport::Connection`] outbox.
//! - [`protocol`]: the [`protocol::Protocol`] trait and the codecs: [`protocol::json`] (the tolerant
//!   sgcJSON reader and writers), [`protocol::sgc`] and [`protocol::presence`] (frames and rules).
//! - [`hub`]: channels → local subscribers; a publish is encoded once and the same bytes are queued
//!   to every subscriber.
//! - [`tasks`]: the owner of a component's background tasks (spawn, then stop and wait).
//! - [`relay`]: the seam to the cluster: protocols emit events other nodes must replay and accept
//!   events from them; the interest gate.
//! - [`cluster`]: the [`cluster::Cluster`] component and its protocol adapters, the inter-node
//!   [`cluster::envelope`], sans-I/O membership and interest routing, and the `mesh` engine.
//! - [`config`]: every option and its default.
//! - [`ops`]: the operations surface: health, readiness, Prometheus metrics, the JSON admin API and
//!   the status page, served over HTTP on the WebSocket port or a separate admin port.
//! - [`metrics`]: every metric's name and description (the binary installs the recorder).
//! - [`tls`]: `wss://` for clients (reloadable certificate) and TLS for mesh links.
//! - [`webhooks`]: signed lifecycle events POSTed to the application, a crashed node's reported by
//!   a survivor.
//!
//! ## Embedding
//!
//! ```no_run
//! use std::sync::Arc;
//! use wscluster::{Config, Server, SgcProtocol};
//!
//! # async fn run() -> wscluster::Result<()> {
//! let config = Config::default();
//! let sgc = SgcProtocol::new(config.sgc.clone());
//! let server = Server::new(config.server.clone())
//!     .protocol(Arc::new(sgc.clone()))
//!     .bind()
//!     .await?;
//! println!("listening on {}", server.local_addr());
//! sgc.broadcast("hello everyone", "", &Default::default());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

pub mod cluster;
pub mod config;
pub mod error;
pub mod hub;
pub mod log_text;
pub mod metrics;
pub mod ops;
pub mod protocol;
pub mod relay;
pub mod tasks;
pub mod tls;
pub mod transport;
pub mod webhooks;

pub use cluster::{Cluster, ClusterConfig, PresenceAdapter, SgcAdapter};
pub use config::Config;
pub use error::{Error, Result};
pub use protocol::presence::PresenceProtocol;
pub use protocol::sgc::SgcProtocol;
pub use protocol::{Protocol, ProtocolRegistry};
pub use transport::{Connection, Server, ServerHandle};
