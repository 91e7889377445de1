//! Operations: the HTTP routes an operator uses to watch and drive a running node and its cluster
//! (`docs/operations.md` documents each one).
//!
//! - [`Ops`]: the operations surface of one node; [`Ops::handler`] gives the
//!   [`crate::transport::HttpHandler`] to register on the WebSocket [`crate::Server`]
//!   (`Server::http`) or to serve alone on an admin port ([`crate::transport::HttpServer`]).
//! - [`route`]: which request is which; [`access`]: who may use it (admin token, admin port).
//! - `prometheus`: `GET /metrics` (the recorder is installed by the application:
//!   [`install_prometheus_recorder`]).
//! - `admin`: the JSON admin API (publish, broadcast, channels, Presence members, peers,
//!   connections, disconnect); [`census`]: cluster-wide counts gathered with
//!   [`crate::Cluster::query`].
//! - [`api`]: the server API for backends (`/api/...`, scoped API keys, keep-alive).
//! - `status`: the HTML status page and the JSON it polls; `health`: `GET /health` (JSON anyone
//!   may read: node, ready, linked peers, unreachable configured peers).

pub(crate) mod access;
mod admin;
mod admin_error;
pub(crate) mod api;
pub(crate) mod census;
mod config;
mod health;
mod prometheus;
pub(crate) mod route;
mod status;

use crate::log_text::Printable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use metrics_exporter_prometheus::PrometheusHandle;
use parking_lot::RwLock;

pub use access::Listener;
pub(crate) use census::{Census, NodeStats};
pub use config::{AdminConfig, HttpConfig};
pub(crate) use prometheus::ScrapeGauges;
pub use prometheus::{BUILD_COMMIT, BUILD_VERSION, install_prometheus_recorder, spawn_upkeep};

use crate::cluster::{Cluster, EngineKind};
use crate::protocol::presence::PresenceProtocol;
use crate::protocol::sgc::SgcProtocol;
use crate::transport::Close;
use crate::transport::{
    HttpFuture, HttpHandler, HttpRequest, HttpResponse, KeepAlive, ServerHandle,
};
use admin_error::AdminError;
use census::{Answer, Question};
use route::{Miss, Route};

/// The operations surface of one node. Build it with its protocols, share it (`Arc`), register
/// its handlers, then attach the server and the cluster once they exist.
pub struct Ops {
    http: HttpConfig,
    admin: AdminConfig,
    sgc: Option<SgcProtocol>,
    presence: Option<PresenceProtocol>,
    metrics: Option<PrometheusHandle>,
    /// The `[api]` options and the keys they configure.
    api: api::ApiConfig,
    api_keys: api::Keys,
    /// Set once the server is bound and the cluster created (after the handlers are registered).
    late: RwLock<Late>,
    /// Set by [`Ops::drain`]: `/ready` answers 503 from then on.
    draining: AtomicBool,
}

#[derive(Default)]
struct Late {
    /// Weak: the server holds the handler, which holds this.
    server: Option<Weak<ServerHandle>>,
    cluster: Option<Cluster>,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("http", &self.http)
            .field("node", &self.node_id())
            .finish()
    }
}

impl Ops {
    /// An operations surface with these options, no protocols, no metrics recorder.
    pub fn new(http: HttpConfig, admin: AdminConfig) -> Self {
        Self {
            http,
            admin,
            sgc: None,
            presence: None,
            metrics: None,
            api: api::ApiConfig::default(),
            api_keys: api::Keys::default(),
            late: RwLock::new(Late::default()),
            draining: AtomicBool::new(false),
        }
    }

    /// Serves the sgc protocol's admin routes (publish, broadcast, channels) and counts.
    pub fn sgc(mut self, sgc: SgcProtocol) -> Self {
        self.sgc = Some(sgc);
        self
    }

    /// Serves the Presence protocol's admin routes and counts.
    pub fn presence(mut self, presence: PresenceProtocol) -> Self {
        self.presence = Some(presence);
        self
    }

    /// Serves the server API (`/api/...`) with these options and keys (without keys, its routes
    /// answer 401 `api_disabled`). The sgc protocol, when set before, takes the idempotency
    /// options.
    pub fn api(mut self, config: api::ApiConfig) -> Self {
        self.api_keys = api::Keys::new(&config);
        if let Some(sgc) = &self.sgc {
            sgc.set_idempotency(config.idempotency_window_ms, config.idempotency_max_bytes);
        }
        self.api = config;
        self
    }

    /// Renders this recorder's metrics on `GET /metrics` (see [`install_prometheus_recorder`]).
    pub fn metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// The handler of requests arriving on `listener`.
    pub fn handler(self: &Arc<Self>, listener: Listener) -> Arc<dyn HttpHandler> {
        Arc::new(OpsHandler {
            ops: self.clone(),
            listener,
        })
    }

    /// The bound WebSocket server: its connections are counted, listed and closed.
    pub fn attach_server(&self, server: &Arc<ServerHandle>) {
        self.late.write().server = Some(Arc::downgrade(server));
    }

    /// The node's cluster: its readiness, peers and cluster-wide counts. Installs this node's
    /// answers to the other nodes' operations questions ([`Cluster::answer_queries`]).
    pub fn attach_cluster(self: &Arc<Self>, cluster: &Cluster) {
        self.late.write().cluster = Some(cluster.clone());
        let me: Weak<Ops> = Arc::downgrade(self);
        cluster.answer_queries(Some(Arc::new(move |from: &str, question: &[u8]| {
            let Some(ops) = me.upgrade() else {
                return bytes::Bytes::new();
            };
            match census::decode::<Question>(question) {
                Some(q) => census::encode(&ops.answer(from, q)),
                None => {
                    tracing::debug!(peer = from, "unreadable operations question");
                    bytes::Bytes::new()
                }
            }
        })));
    }

    /// Makes `/ready` answer 503 from now on (a node about to stop: load balancers take it out
    /// before its connections are closed).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// This node's id (empty before a cluster is attached).
    pub fn node_id(&self) -> String {
        self.late
            .read()
            .cluster
            .as_ref()
            .map(|c| c.node_id().to_owned())
            .unwrap_or_default()
    }

    fn server(&self) -> Option<Arc<ServerHandle>> {
        self.late.read().server.as_ref().and_then(Weak::upgrade)
    }

    fn cluster(&self) -> Option<Cluster> {
        self.late.read().cluster.clone()
    }

    /// Ready: the server is bound, the node is not draining, and the cluster (unless its engine
    /// is `none`) is ready (mesh: every configured peer linked or its first dial settled).
    pub fn ready(&self) -> bool {
        if self.draining.load(Ordering::SeqCst) || self.server().is_none() {
            return false;
        }
        self.cluster()
            .is_none_or(|c| c.engine() == EngineKind::None || c.ready())
    }

    /// What this node reports about itself.
    pub fn local_stats(&self) -> NodeStats {
        let mut s = NodeStats {
            ready: self.ready(),
            connections: self.server().map_or(0, |s| s.connection_count() as u64),
            peers: self
                .cluster()
                .map_or(0, |c| c.connected_peer_count() as u64),
            ..NodeStats::default()
        };
        if let Some(sgc) = &self.sgc {
            let channels = sgc.channels();
            s.sgc_connections = sgc.connection_count() as u64;
            s.sgc_subscriptions = channels.iter().map(|c| c.subscribers as u64).sum();
            s.channels_total = channels.len() as u64;
            s.channels = channels
                .into_iter()
                .take(census::MAX_CHANNELS_PER_REPORT)
                .map(|c| (c.name, c.subscribers as u64))
                .collect();
        }
        if let Some(p) = &self.presence {
            s.presence_members = p.local_member_count() as u64;
        }
        s
    }

    /// Every node's report, merged (this node's, plus the answers of its live peers within
    /// `admin.query_timeout_ms`).
    pub async fn census(&self) -> Census {
        let me = self.local_stats();
        let node = self.node_id();
        let outcome = match self.cluster() {
            Some(c) => {
                c.query(
                    &census::encode(&Question::Stats),
                    self.admin.query_timeout(),
                )
                .await
            }
            None => Default::default(),
        };
        Census::merge((&node, &me), &outcome.replies, &outcome.missing)
    }

    /// The gauges `/metrics` reads at scrape time.
    fn scrape_gauges(&self) -> ScrapeGauges {
        let s = self.local_stats();
        let mut g = ScrapeGauges {
            ready: s.ready,
            connections: s.connections,
            sgc_connections: s.sgc_connections,
            sgc_channels: s.channels_total,
            sgc_subscriptions: s.sgc_subscriptions,
            presence_members_local: s.presence_members,
            peers: s.peers,
            peer_up: health::peer_up(self),
            ..ScrapeGauges::default()
        };
        if let Some(p) = &self.presence {
            g.presence_members_cluster = p.member_count() as u64;
            g.presence_channels = p.channels().len() as u64;
        }
        g
    }

    /// This node's answer to another node's question.
    fn answer(&self, from: &str, question: Question) -> Answer {
        match question {
            Question::Stats => Answer::Stats(self.local_stats()),
            Question::Disconnect { id, code, reason } => {
                let closed = self.close_local(&id, code, &reason);
                if closed {
                    tracing::info!(conn = %Printable(&id), code, by = from, "connection closed on an operator's request from another node");
                }
                Answer::Disconnected(closed)
            }
            Question::DisconnectMember { id, code, reason } => {
                let closed = self.close_member_local(&id, code, &reason);
                if closed {
                    tracing::info!(member = %Printable(&id), code, by = from, "Presence member disconnected on a request from another node");
                }
                Answer::Disconnected(closed)
            }
        }
    }

    /// Closes the connection of a Presence member of this node; false when it has none with
    /// this id.
    fn close_member_local(&self, id: &str, code: u16, reason: &str) -> bool {
        let Some(crate::hub::roster::Origin::Local(key)) =
            self.presence.as_ref().and_then(|p| p.member_origin(id))
        else {
            return false;
        };
        let conn = self
            .server()
            .and_then(|s| s.connections().into_iter().find(|c| c.key() == key));
        match conn {
            Some(c) => {
                c.close_with(Close::operator(code, reason));
                true
            }
            None => false,
        }
    }

    /// Closes a connection of this node; false when it has none with this id.
    fn close_local(&self, id: &str, code: u16, reason: &str) -> bool {
        match self.server().and_then(|s| s.connection(id)) {
            Some(c) => {
                c.close_with(Close::operator(code, reason));
                true
            }
            None => false,
        }
    }

    /// Answers one request that arrived on `listener`.
    async fn serve(self: Arc<Self>, listener: Listener, req: HttpRequest) -> HttpResponse {
        if req.path().starts_with(api::PREFIX) {
            let (name, resp) = api::serve(&self, &req).await;
            count(name, resp.status);
            return resp;
        }
        let route = match Route::parse(&req.method, req.path()) {
            Ok(r) => r,
            Err(miss) => {
                let resp = HttpResponse::from(match miss {
                    Miss::NotFound => AdminError::NoRoute,
                    Miss::Method(allow) => AdminError::Method(allow),
                    Miss::BadPath => AdminError::BadPath,
                });
                count("none", resp.status);
                return resp;
            }
        };
        let guard = match route {
            Route::Metrics | Route::StatusPage if self.http.metrics_token_required => {
                access::Guard::Admin
            }
            _ => route.guard(),
        };
        let allowed = access::check(
            guard,
            listener,
            &self.admin.token,
            req.header("authorization"),
        )
        .and_then(|()| {
            // Served without a token: closed to pages of other sites.
            if guard == access::Guard::Admin && self.admin.token.is_empty() {
                access::check_site(
                    &access::Site {
                        host: req.header("host"),
                        origin: req.header("origin"),
                        content_type: req.header("content-type"),
                        mutating: req.method != "GET" && req.method != "HEAD",
                        local: req.local,
                    },
                    &self.http.allowed_hosts,
                )
            } else {
                Ok(())
            }
        });
        if let Err(refusal) = allowed {
            tracing::debug!(peer = %req.peer, route = route.name(), listener = listener.as_str(), "operations request refused");
            let mut resp = route::error(refusal.status(), refusal.message());
            if refusal == access::Refusal::Unauthorized {
                resp = resp.with_header("WWW-Authenticate", "Bearer realm=\"wscluster\"");
            }
            count(route.name(), resp.status);
            return resp;
        }
        let name = route.name();
        let resp = self.dispatch(route, &req).await;
        tracing::debug!(peer = %req.peer, route = name, status = resp.status, "operations request");
        count(name, resp.status);
        resp
    }

    async fn dispatch(&self, route: Route, req: &HttpRequest) -> HttpResponse {
        match route {
            Route::Index => HttpResponse::text(200, INDEX),
            Route::Health => health::health(self),
            Route::Ready if self.ready() => HttpResponse::text(200, "ready\n"),
            Route::Ready => HttpResponse::text(503, "not ready\n"),
            Route::Metrics => HttpResponse::new(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                prometheus::render(self.metrics.as_ref(), &self.scrape_gauges()),
            ),
            Route::StatusPage => status::page(),
            Route::StatusJson => status::json_status(self).await,
            Route::Publish => admin::publish(self, &req.body),
            Route::Broadcast => admin::broadcast(self, &req.body),
            Route::Channels => admin::channels(self).await,
            Route::PresenceChannels => admin::presence_channels(self),
            Route::PresenceMembers(name) => admin::presence_members(self, &name),
            Route::Peers => admin::peers(self),
            Route::Connections => admin::connections(self, req.query()),
            Route::Disconnect(id) => admin::disconnect(self, &id, &req.body).await,
        }
    }
}

/// `GET /`.
const INDEX: &str = "wscluster operations routes (docs/operations.md):
GET  /health                                  the process answers (JSON: node, ready, peers)
GET  /ready                                   200 when ready, 503 otherwise
GET  /metrics                                 Prometheus text format
GET  /status                                  live status page (HTML)
GET  /status.json                             what the status page shows        [admin]
POST /admin/publish                           {channel, message, queue?}        [admin]
POST /admin/broadcast                         {channel?, message}               [admin]
GET  /admin/channels                          sgc channels, cluster-wide counts [admin]
GET  /admin/presence/channels                 Presence channels                 [admin]
GET  /admin/presence/channels/{name}/members  Presence members of a channel     [admin]
GET  /admin/peers                             peer nodes and their state        [admin]
GET  /admin/connections                       this node's connections           [admin]
POST /admin/connections/{id}/disconnect       {code?, reason?}                  [admin]
[admin]: Authorization: Bearer <admin.token>; without a token configured, only on http.admin_listen,
         to same-site requests (Host, Origin, Content-Type: application/json)
";

fn count(route: &'static str, status: u16) {
    metrics::counter!(prometheus::HTTP_REQUESTS, "route" => route, "status" => status.to_string())
        .increment(1);
}

/// [`Ops`] bound to one listener.
struct OpsHandler {
    ops: Arc<Ops>,
    listener: Listener,
}

impl HttpHandler for OpsHandler {
    fn handle(&self, request: HttpRequest) -> HttpFuture {
        Box::pin(self.ops.clone().serve(self.listener, request))
    }

    fn max_body(&self) -> usize {
        self.ops.http.max_body_bytes
    }

    fn keep_alive(&self, path: &str) -> Option<KeepAlive> {
        path.starts_with(api::PREFIX).then(|| KeepAlive {
            idle_timeout: self.ops.api.idle_timeout(),
            body_timeout: self.ops.api.body_timeout(),
        })
    }

    fn max_body_for(&self, path: &str) -> usize {
        if path.starts_with(api::PREFIX) {
            self.ops.api.max_body_bytes
        } else {
            self.ops.http.max_body_bytes
        }
    }

    fn refusal(&self, path: &str, status: u16) -> HttpResponse {
        if !path.starts_with(api::PREFIX) {
            return HttpResponse::status(status);
        }
        let e = match status {
            413 => api::ApiError::BodyTooLarge,
            408 => api::ApiError::BodyTimeout,
            _ => api::ApiError::InvalidRequest("the request body could not be read".into()),
        };
        count("api_none", e.status());
        e.response()
    }
}
