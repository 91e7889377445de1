//! Running a node: bind the server with its protocols, announce the address, wait for a signal,
//! shut down.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use wscluster::{
    ChannelRules, Cluster, Config, HttpServer, Listener, Ops, PresenceAdapter, PresenceProtocol,
    Server, SgcAdapter, SgcProtocol, Tasks, Webhooks, install_prometheus_recorder, spawn_upkeep,
};

/// Raises the soft limit of open files to the hard limit: each connection is a file descriptor, and
/// the usual soft limit (1024) is far below what a node serves. Failure is logged, not fatal.
pub(crate) fn raise_open_file_limit() {
    let before = rlimit::Resource::NOFILE.get().ok();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) => tracing::info!(
            before = before.map(|(soft, _)| soft),
            now,
            hard = before.map(|(_, hard)| hard),
            "open-file limit"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

/// Serves until SIGINT or SIGTERM, then shuts down gracefully: stops accepting, says bye to the
/// peers, closes every connection (1001) after what is queued for it, within
/// `server.shutdown_timeout_ms`. A second signal during the shutdown ends it at once (an error).
pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
    // Listen for signals before announcing the address: whoever reads the line may signal at once.
    let mut stop = Signals::new().context("cannot install signal handlers")?;
    // The binary's own background tasks: SIGHUP reload and metrics upkeep.
    let tasks = Tasks::new();
    let sgc = SgcProtocol::new(config.sgc.clone());
    let presence = PresenceProtocol::new(config.presence.clone());
    let rules = ChannelRules::new(&config.auth.rules)
        .map_err(anyhow::Error::msg)?
        .with_roles_claim(&config.auth.jwt.roles_claim);
    let rules = Arc::new(rules);
    sgc.channel_rules(rules.clone());
    presence.channel_rules(rules);
    let ops = operations(&config, &sgc, &presence, &tasks);
    let mut server = Server::new(config.server.clone())
        .protocol(Arc::new(sgc.clone()))
        .protocol(Arc::new(presence.clone()))
        .auth(config.auth.clone())
        .limits(config.limits.clone());
    if config.http.on_websocket_port {
        server = server.http(ops.handler(Listener::WebSocket));
    }
    let server = Arc::new(server.bind().await.map_err(|e| {
        let tls = config.server.tls.listen_addr().ok().flatten();
        port_in_use(e, |addr| {
            if tls.is_some_and(|t| t.to_string() == addr)
                && config.server.listen.to_string() != addr
            {
                "server.tls.listen"
            } else {
                "--listen (server.listen)"
            }
        })
        .context("cannot start the WebSocket server")
    })?);
    ops.attach_server(&server);
    reload_on_sighup(&server, &tasks).context("cannot install the SIGHUP handler")?;
    let addr = server.local_addr();
    let name = config.node.effective_name(addr.port());
    let cluster = Cluster::new(name.as_str(), config.cluster.clone());
    // Before the cluster starts: a peer that dies at once is reported too.
    let webhooks = Webhooks::start(&config.webhooks, &name)
        .map_err(|message| anyhow::anyhow!("webhooks: {message}"))?;
    if let Some(w) = &webhooks {
        w.observe_sgc(&sgc);
        w.observe_presence(&presence);
        cluster.attach(w.adapter());
    }
    cluster.attach(SgcAdapter::with_interest_routing(
        sgc,
        config.cluster.interest_routing,
    ));
    cluster.attach(PresenceAdapter::new(presence));
    cluster.start().await.map_err(|e| {
        port_in_use(e, |_| "--cluster-port (cluster.mesh.port)").context("cannot start the cluster")
    })?;
    ops.attach_cluster(&cluster);
    let admin = match config.http.admin_addr().map_err(anyhow::Error::msg)? {
        Some(a) => Some(
            HttpServer::bind(a, ops.handler(Listener::Admin))
                .await
                .map_err(|e| {
                    port_in_use(e, |_| "http.admin_listen")
                        .context("cannot start the admin HTTP listener")
                })?,
        ),
        None => None,
    };
    tracing::info!(%addr, node = %name, "node started");
    println!("wscluster listening on ws://{addr} (node {name})");
    if let Some(tls) = server.tls_local_addr() {
        println!("wscluster listening on wss://{tls}");
    }
    if let Some(engine) = cluster.running_engine() {
        println!("wscluster cluster {}", engine.describe());
    }
    if let Some(a) = &admin {
        println!("wscluster admin on http://{}", a.local_addr());
    }
    let _ = std::io::stdout().flush();

    let signal = stop.next().await;
    let timeout = config.server.shutdown_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    tracing::info!(
        signal,
        timeout_ms = config.server.shutdown_timeout_ms,
        "shutting down: refusing new connections, saying bye to peers, closing clients (1001)"
    );
    // Not ready from now on: load balancers stop sending clients here.
    ops.drain();
    let graceful = async {
        // New connections are refused first: nothing may join a node that is leaving.
        server.stop_accepting().await;
        // Bye next: peers purge this node's members at once. The node's own clients are about to
        // be closed, so they are not shown the remote members leaving.
        cluster.shutdown().await;
        // Then every client gets what is queued for it and a 1001 close, until the deadline.
        let forced = server.shutdown_by(deadline).await;
        // Their departures are reported before the node exits (until the same deadline).
        if let Some(w) = &webhooks {
            w.shutdown(deadline).await;
        }
        forced
    };
    tokio::select! {
        forced = graceful => {
            if let Some(a) = &admin {
                a.shutdown().await;
            }
            tasks.stop(std::time::Duration::ZERO).await;
            tracing::info!(forced, "stopped");
            Ok(())
        }
        signal = stop.next() => {
            tracing::warn!(signal, "second signal: exiting without waiting for connections");
            anyhow::bail!("interrupted during shutdown by {signal}");
        }
    }
}

/// A listener's port is taken by another process: the one line the operator sees, naming the
/// flag or option that chooses that port.
#[derive(Debug, thiserror::Error)]
#[error("port in use: cannot listen on {addr} ({error}); choose another port with {setting}")]
pub(crate) struct PortInUse {
    addr: String,
    error: std::io::Error,
    setting: &'static str,
}

/// `e` as a [`PortInUse`] when it is a bind failing with "address in use" (`setting` names the
/// option for the address), else as it is.
fn port_in_use(e: wscluster::Error, setting: impl Fn(&str) -> &'static str) -> anyhow::Error {
    match e {
        wscluster::Error::Bind { addr, source }
            if source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            let setting = setting(&addr);
            PortInUse {
                addr,
                error: source,
                setting,
            }
            .into()
        }
        other => other.into(),
    }
}

/// On SIGHUP, reloads the TLS listener's certificate and key (the outcome is logged); open
/// connections are untouched. Without a TLS listener SIGHUP is ignored.
fn reload_on_sighup(server: &Arc<wscluster::ServerHandle>, tasks: &Tasks) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup())?;
        let server = Arc::downgrade(server);
        tasks.spawn(async move {
            while hup.recv().await.is_some() {
                let Some(server) = server.upgrade() else {
                    return;
                };
                match server.reload_tls() {
                    Some(_) => {}
                    None => tracing::info!("SIGHUP: no TLS listener, nothing to reload"),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (server, tasks);
    Ok(())
}

/// The operations surface: Prometheus recorder (the binary owns the process-wide one), health,
/// readiness, admin API and status page (docs/operations.md).
fn operations(
    config: &Config,
    sgc: &SgcProtocol,
    presence: &PresenceProtocol,
    tasks: &Tasks,
) -> Arc<Ops> {
    let mut o = Ops::new(config.http.clone(), config.admin.clone())
        .sgc(sgc.clone())
        .presence(presence.clone())
        .api(config.api.clone());
    match install_prometheus_recorder() {
        Ok(handle) => {
            // Handles made before the recorder is installed record nothing: this runs before
            // the server and the cluster exist.
            wscluster::metrics::describe();
            spawn_upkeep(handle.clone(), tasks);
            o = o.metrics(handle);
        }
        Err(e) => tracing::warn!(error = %e, "metrics recorder not installed"),
    }
    Arc::new(o)
}

/// SIGINT and SIGTERM (Ctrl-C elsewhere), installed once.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Waits for the next signal and names it.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
