//! The state a server shares with its accept loops, socket tasks and connections: its
//! configuration, its live connections, and where it is in its life ([`Phase`]).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use super::admission::Admission;
use super::auth::Authenticator;
use super::connection::Connection;
use super::http::HttpHandler;
use super::in_flight::UpgradesInFlight;
use super::limits::LimitsConfig;
use super::origin::OriginPolicy;
use super::protocol::ProtocolRegistry;
use super::server_config::ServerConfig;
use crate::tasks::Tasks;
use crate::tls::CertReloader;

/// Where a server is in its life; every connection task watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Accepting and serving.
    Serving,
    /// Not accepting; open connections are closed with 1001 and may flush what they have queued.
    Draining,
    /// The shutdown deadline passed: connections still open drop their socket now.
    Forced,
}

/// What the server, its accept loops and its socket tasks share.
pub(super) struct Shared {
    pub(super) config: ServerConfig,
    pub(super) registry: ProtocolRegistry,
    pub(super) authenticator: Authenticator,
    /// Live, upgraded connections by GUID.
    pub(super) connections: Mutex<HashMap<Arc<str>, Connection>>,
    /// The application's plain HTTP routes, if any.
    pub(super) http: Option<Arc<dyn HttpHandler>>,
    /// Serving, draining or forced; set by the handle's shutdown, watched by every task.
    pub(super) phase: watch::Sender<Phase>,
    /// Signalled whenever a connection leaves `connections` or an upgrade stops being in flight
    /// (shutdown waits on it).
    pub(super) gone: Notify,
    /// Upgrades that passed the serving check and are not yet in `connections`.
    pub(super) upgrading: UpgradesInFlight,
    /// The `[limits]` options.
    pub(super) limits: LimitsConfig,
    /// Connection counts per node and per address.
    pub(super) admission: Arc<Admission>,
    /// `server.allowed_origins`.
    pub(super) origins: OriginPolicy,
    /// The TLS listener's certificate, when there is one.
    pub(super) tls: Option<Arc<CertReloader>>,
    /// One task per accepted socket (handshake, HTTP request or connection), from accept to
    /// close; stopped at the end of the handle's shutdown.
    pub(super) sockets: Tasks,
}

impl Shared {
    pub(super) fn serving(&self) -> bool {
        *self.phase.borrow() == Phase::Serving
    }
}
