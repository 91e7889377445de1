//! [`Server`]: binds the listeners, keeps the table of live connections (for shutdown and
//! server-side lookups) and shuts down in phases; each accepted socket is served by `upgrade.rs`
//! (HTTP answers, refusals, the WebSocket upgrade).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::admission::Admission;
use super::auth::{AuthConfig, AuthHook, Authenticator};
use super::bearer::{BearerAttempt, BearerHook, Identity};
use super::close::Close;
use super::connection::Connection;
use super::http::HttpHandler;
use super::in_flight::UpgradesInFlight;
use super::limits::LimitsConfig;
use super::origin::OriginPolicy;
use super::protocol::{Protocol, ProtocolRegistry};
use super::server_config::ServerConfig;
use super::server_state::{Phase, Shared};
use crate::error::{Error, Result};
use crate::metrics;
use crate::tasks::Tasks;
use crate::tls::{CertReloader, TlsError};

/// The close reason a client reads when the server shuts down (code 1001, "going away").
pub const SHUTDOWN_REASON: &str = Close::SHUTDOWN.reason;

/// How long connections forced closed at the shutdown deadline may take to run their protocol's
/// `on_disconnect` before [`ServerHandle::shutdown`] returns anyway.
const FORCED_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long the accept loops may take to return once the server stops serving (they return at
/// their next poll; this only bounds a stuck one before it is cancelled).
const LISTENERS_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// A node's WebSocket server, configured and then bound with [`Server::bind`].
pub struct Server {
    config: ServerConfig,
    registry: ProtocolRegistry,
    auth: AuthConfig,
    auth_hook: Option<AuthHook>,
    bearer_hook: Option<BearerHook>,
    http: Option<Arc<dyn HttpHandler>>,
    limits: LimitsConfig,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.config.listen)
            .field("registry", &self.registry)
            .finish()
    }
}

impl Server {
    /// A server with these listener settings and no protocols yet.
    pub fn new(config: ServerConfig) -> Self {
        Self {
            config,
            registry: ProtocolRegistry::new(),
            auth: AuthConfig::default(),
            auth_hook: None,
            bearer_hook: None,
            http: None,
            limits: LimitsConfig::default(),
        }
    }

    /// Sets the admission limits (`[limits]`; all off by default).
    pub fn limits(mut self, limits: LimitsConfig) -> Self {
        self.limits = limits;
        self
    }

    /// Offers `protocol` under its subprotocol token.
    pub fn protocol(mut self, protocol: Arc<dyn Protocol>) -> Self {
        self.registry.register(protocol);
        self
    }

    /// Serves connections that offered no subprotocol with `protocol` (without one, such
    /// connections are accepted and their messages ignored).
    pub fn fallback(mut self, protocol: Arc<dyn Protocol>) -> Self {
        self.registry.set_fallback(protocol);
        self
    }

    /// Sets the authentication options (docs/wire.md §1.6).
    pub fn auth(mut self, auth: AuthConfig) -> Self {
        self.auth = auth;
        self
    }

    /// Sets the application's credential check, asked after the configured user list.
    pub fn auth_hook(
        mut self,
        hook: impl Fn(&super::auth::AuthAttempt<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.auth_hook = Some(Arc::new(hook));
        self
    }

    /// Answers plain HTTP requests (not WebSocket upgrades) with `handler`; without one they get
    /// 404. The sgc session-token requests (`/sgc/req/auth/session/...`) stay the server's.
    pub fn http(mut self, handler: Arc<dyn HttpHandler>) -> Self {
        self.http = Some(handler);
        self
    }

    /// Sets the application's bearer-token check (`Authorization: Bearer`, or a token query
    /// parameter): the identity the token proves, or `None` to refuse. It replaces the built-in
    /// JWT verification of `auth.jwt`.
    pub fn bearer_hook(
        mut self,
        hook: impl Fn(&BearerAttempt<'_>) -> Option<Identity> + Send + Sync + 'static,
    ) -> Self {
        self.bearer_hook = Some(Arc::new(hook));
        self
    }

    /// Binds the listener (and the TLS listener when `server.tls.listen` is set) and starts
    /// accepting. Returns once the ports are open.
    pub async fn bind(self) -> Result<ServerHandle> {
        let authenticator = Authenticator::new(self.auth, self.auth_hook)
            .with_bearer(self.bearer_hook)
            .map_err(Error::Config)?;
        let listener = TcpListener::bind(self.config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: self.config.listen.to_string(),
                source,
            })?;
        let local_addr = listener.local_addr()?;
        let tls_addr = self
            .config
            .tls
            .listen_addr()
            .map_err(|m| Error::Config(format!("server.tls: {m}")))?;
        let tls = match tls_addr {
            Some(addr) => {
                let reloader = CertReloader::new(&self.config.tls)
                    .map_err(|e| Error::Config(format!("server.tls: {e}")))?;
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Bind {
                        addr: addr.to_string(),
                        source,
                    })?;
                Some((l, Arc::new(reloader)))
            }
            None => None,
        };
        let (phase, _) = watch::channel(Phase::Serving);
        let shared = Arc::new(Shared {
            admission: Arc::new(Admission::new(self.limits.clone())),
            origins: OriginPolicy::new(&self.config.allowed_origins),
            limits: self.limits,
            authenticator,
            registry: self.registry,
            config: self.config,
            connections: Mutex::new(HashMap::new()),
            http: self.http,
            phase,
            gone: Notify::new(),
            upgrading: UpgradesInFlight::default(),
            tls: tls.as_ref().map(|(_, r)| r.clone()),
            sockets: Tasks::new(),
        });
        let listeners = Tasks::new();
        listeners.spawn(super::accept::accept_loop(listener, shared.clone(), false));
        tracing::info!(%local_addr, "WebSocket server listening");
        let mut tls_local_addr = None;
        if let Some((l, reloader)) = tls {
            let addr = l.local_addr()?;
            tls_local_addr = Some(addr);
            listeners.spawn(super::accept::accept_loop(l, shared.clone(), true));
            if let Some(every) = shared.config.tls.reload_interval() {
                listeners.spawn(super::accept::poll_certificate(
                    reloader,
                    every,
                    shared.phase.subscribe(),
                ));
            }
            tracing::info!(local_addr = %addr, "WebSocket TLS server listening");
        }
        Ok(ServerHandle {
            local_addr,
            tls_local_addr,
            shared,
            listeners,
        })
    }
}

/// A running server: its address, its live connections, and shutdown.
pub struct ServerHandle {
    local_addr: SocketAddr,
    tls_local_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    /// The accept loops (plain, TLS) and the certificate polling: they end when the server stops
    /// serving.
    listeners: Tasks,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl ServerHandle {
    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the TLS listener is bound to, when there is one.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls_local_addr
    }

    /// Loads the TLS listener's certificate and key files again (what SIGHUP does in the binary).
    /// New connections get the new certificate; open ones keep theirs. A failure keeps the old
    /// certificate and is returned. `None` when there is no TLS listener.
    pub fn reload_tls(&self) -> Option<Result<(), TlsError>> {
        self.shared.tls.as_ref().map(|r| r.reload())
    }

    /// The live connection with this GUID.
    pub fn connection(&self, id: &str) -> Option<Connection> {
        self.shared.connections.lock().get(id).cloned()
    }

    /// Every live connection (a snapshot).
    pub fn connections(&self) -> Vec<Connection> {
        self.shared.connections.lock().values().cloned().collect()
    }

    /// How many upgraded connections are open.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.lock().len()
    }

    /// How many sockets are open on the WebSocket port: upgraded connections, and those still in
    /// their handshake or plain HTTP requests (what `limits.max_connections` counts).
    pub fn open_sockets(&self) -> usize {
        self.shared.admission.open()
    }

    /// Stops accepting: the listener is closed (new TCP connections are refused by the operating
    /// system) and upgrades still in their handshake are refused with 503. Open connections are
    /// left alone until [`ServerHandle::shutdown_by`]. Idempotent.
    pub async fn stop_accepting(&self) {
        self.shared.phase.send_if_modified(|p| {
            let serving = *p == Phase::Serving;
            if serving {
                *p = Phase::Draining;
            }
            serving
        });
        // They watch the phase and return at once; the grace only bounds a stuck one.
        self.listeners.stop(LISTENERS_GRACE).await;
    }

    /// How many of the server's tasks are running: accept loops, certificate polling and one per
    /// accepted socket (none once [`ServerHandle::shutdown_by`] returned).
    pub fn task_count(&self) -> usize {
        self.listeners.len() + self.shared.sockets.len()
    }

    /// [`ServerHandle::shutdown_by`] with the deadline `server.shutdown_timeout_ms` from now.
    pub async fn shutdown(&self) -> usize {
        let timeout = self.shared.config.shutdown_timeout();
        self.shutdown_by(Instant::now() + timeout).await
    }

    /// Stops accepting, closes every connection with 1001 "server shutting down" after what it
    /// already has queued, and waits until `deadline` for the connections to flush and finish
    /// their close handshake. Connections still open then are closed without waiting (their
    /// protocol still hears `on_disconnect`). Returns how many were closed that way. When it
    /// returns, no task of the server is left, and the protocols' own tasks are stopped
    /// ([`Protocol::stop`]).
    pub async fn shutdown_by(&self, deadline: Instant) -> usize {
        let forced = self.close_connections_by(deadline).await;
        // Every connection is gone (or was forced): what is left of the socket tasks (their last
        // steps, plain HTTP requests) gets what remains until the deadline, then is cancelled
        // and waited for.
        let grace = deadline.saturating_duration_since(Instant::now());
        self.shared.sockets.stop(grace).await;
        for p in self.shared.registry.all() {
            p.stop().await;
        }
        forced
    }

    /// The connection part of [`ServerHandle::shutdown_by`].
    async fn close_connections_by(&self, deadline: Instant) -> usize {
        self.stop_accepting().await;
        let conns: Vec<Connection> = self.shared.connections.lock().values().cloned().collect();
        for c in &conns {
            c.close_with(Close::SHUTDOWN);
        }
        if self.wait_for_connections(deadline).await {
            return 0;
        }
        let forced = self.connection_count();
        let _ = self.shared.phase.send(Phase::Forced);
        ::metrics::counter!(metrics::WS_SHUTDOWN_FORCED).increment(forced as u64);
        tracing::warn!(
            forced,
            "shutdown deadline passed: closing the remaining connections without waiting"
        );
        self.wait_for_connections(Instant::now() + FORCED_GRACE)
            .await;
        forced
    }

    /// No connection open and no upgrade on its way to becoming one.
    fn nothing_left(&self) -> bool {
        self.shared.upgrading.count() == 0 && self.connection_count() == 0
    }

    /// Waits until no connection is left (true) or `deadline` passes (false).
    async fn wait_for_connections(&self, deadline: Instant) -> bool {
        loop {
            let gone = self.shared.gone.notified();
            tokio::pin!(gone);
            gone.as_mut().enable();
            if self.nothing_left() {
                return true;
            }
            tokio::select! {
                () = gone => {}
                () = tokio::time::sleep_until(deadline) => return self.nothing_left(),
            }
        }
    }
}
