//! # wscluster
//!
//! A WebSocket pub/sub server speaking the sgcWebSockets `esegece.com` (sgc) and
//! `presence.esegece.com` (Presence) protocols, whose nodes form one cluster.
//!
//! ## Crate map, in the order a publish travels
//!
//! The modules are private; the crate root re-exports what an application uses (below).
//!
//! - `transport`: the listener, the HTTP upgrade (subprotocol choice, authentication), and one
//!   task per connection that reads frames and writes its bounded [`Connection`] outbox; the
//!   [`Protocol`] trait and [`ProtocolRegistry`] the handshake consults.
//! - `protocol`: the codecs: `json` (the tolerant sgcJSON reader and writers), `sgc` and
//!   `presence` (frames and rules; [`SgcProtocol`], [`PresenceProtocol`]), `access`
//!   ([`ChannelRules`]).
//! - `hub`: channels → local subscribers; a publish is encoded once and the same bytes are queued
//!   to every subscriber.
//! - `tasks`: the owner of a component's background tasks (spawn, then stop and wait).
//! - `relay`: the seam to the cluster: protocols emit events other nodes must replay and accept
//!   events from them; the interest gate.
//! - `cluster`: the [`Cluster`] component and its protocol adapters ([`SgcAdapter`],
//!   [`PresenceAdapter`]), the inter-node envelope, sans-I/O membership and interest routing, the
//!   [`Engine`] seam and the engines (`mesh`, `redis`, `redis_cluster`, `nats`).
//! - [`config`] (public): every option and its default ([`Config`] and its sections).
//! - `ops`: the operations surface ([`Ops`]): health, readiness, Prometheus metrics, the JSON
//!   admin API and the status page, served over HTTP on the WebSocket port or a separate admin
//!   port.
//! - [`metrics`] (public): every metric's name and description (the binary installs the recorder).
//! - `tls`: `wss://` for clients (reloadable certificate) and TLS for mesh links.
//! - `webhooks`: signed lifecycle events POSTed to the application ([`Webhooks`]), a crashed
//!   node's reported by a survivor.
//! - `log_text`, `error`: text from the network made safe for a log line; [`Error`] and
//!   [`Result`].
//!
//! `internals` (hidden from the documentation) re-exports the private modules for this crate's
//! own integration tests, benchmark tools and fuzz targets; it is no stable API.
//!
//! The binaries' dependencies (command line, logging setup) are behind the default `cli` feature:
//! `default-features = false` builds the library alone.
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

mod cluster;
pub mod config;
mod error;
mod hub;
mod log_text;
pub mod metrics;
mod ops;
mod protocol;
mod relay;
mod tasks;
mod tls;
mod transport;
mod webhooks;

// The server and what an application plugs into it.
pub use transport::{
    AuthAttempt, BearerAttempt, Claims, Close, CloseReason, Connection, ConnectionInfo, HttpFuture,
    HttpHandler, HttpRequest, HttpResponse, HttpServer, Identity, KeepAlive, Negotiated, Protocol,
    ProtocolRegistry, SendError, Server, ServerHandle, StopFuture,
};
// The owner of background tasks (the binary's and an embedding application's own).
pub use tasks::Tasks;
// The protocols and the channel rules they apply.
pub use protocol::access::ChannelRules;
pub use protocol::presence::PresenceProtocol;
pub use protocol::sgc::{RpcError, SgcProtocol};
// The cluster, its protocol adapters and the engine seam.
pub use cluster::engine::{Engine, EngineHandler};
pub use cluster::{Cluster, ClusterConfig, EngineKind, PresenceAdapter, SgcAdapter};
// Configuration and errors.
pub use config::Config;
pub use error::{Error, Result};
// The operations surface (health, metrics, admin API) and lifecycle webhooks.
pub use ops::{
    BUILD_COMMIT, BUILD_VERSION, Listener, Ops, install_prometheus_recorder, spawn_upkeep,
};
pub use webhooks::Webhooks;

/// The modules below the public face, reachable for this crate's own integration tests, benchmark
/// tools and fuzz targets (wire codecs, engines, frame parsers). Not a stable API: an application
/// uses the items re-exported at the crate root.
#[doc(hidden)]
pub mod internals {
    /// What the tests reach of the `cluster` module: the engines, the envelope, membership.
    pub mod cluster {
        pub use crate::cluster::{
            Cluster, ClusterConfig, ClusterEvent, EngineKind, PeerState, PresenceAdapter,
            SgcAdapter, engine, envelope, fuzzing, membership, mesh, nats, redis, redis_cluster,
        };
    }
    /// What the tests reach of the `hub` module: the Presence roster.
    pub mod hub {
        pub use crate::hub::roster;
    }
    /// What the tests reach of the `ops` module.
    pub mod ops {
        pub use crate::ops::{AdminConfig, HttpConfig, Listener, Ops};
    }
    /// What the tests and fuzz targets reach of the `protocol` module: the codecs.
    pub mod protocol {
        pub use crate::protocol::{access, json, presence, sgc};
    }
    /// What the tests reach of the `relay` module.
    pub mod relay {
        pub use crate::relay::Relay;
    }
    /// What the tests reach of the `tls` module.
    pub mod tls {
        pub use crate::tls::{MeshTlsConfig, TlsConfig, load_certs, load_key};
    }
    /// What the tests reach of the `transport` module: authentication and close reasons.
    pub mod transport {
        pub use crate::transport::{
            HttpServer, PUBLISH_RATE_EXCEEDED, SHUTDOWN_REASON, auth, bearer,
        };
    }
}
