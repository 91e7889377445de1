//! A TCP proxy for fault tests: forwards to a target until cut; while cut, existing connections
//! are closed and new ones are accepted and closed at once; restore lets traffic through again.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy.
pub struct Proxy {
    addr: SocketAddr,
    target: Arc<parking_lot::Mutex<Option<SocketAddr>>>,
    cut: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    connections: Arc<AtomicU64>,
    delay_ms: Arc<AtomicU64>,
}

impl Proxy {
    /// Starts a proxy on an ephemeral loopback port forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let p = Self::start_deferred().await;
        p.set_target(target);
        p
    }

    /// Starts a proxy whose target is set later ([`Proxy::set_target`]): its address can be handed
    /// to the process it fronts before that process has bound its own (ephemeral) port. Until
    /// then, connections are closed at once.
    pub async fn start_deferred() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("proxy bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let connections = Arc::new(AtomicU64::new(0));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (c, g, n, d) = (
            cut.clone(),
            generation.clone(),
            connections.clone(),
            delay_ms.clone(),
        );
        let target = Arc::new(parking_lot::Mutex::new(None::<SocketAddr>));
        let t = target.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let to = *t.lock();
                let Some(to) = to.filter(|_| !c.load(Ordering::SeqCst)) else {
                    drop(client);
                    continue;
                };
                n.fetch_add(1, Ordering::SeqCst);
                let mut gen_rx = g.subscribe();
                let d = d.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(to).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    // Client -> target: each chunk is held `delay` after it was read (a latency,
                    // not a throughput limit: chunks in flight overlap), order kept.
                    let upstream = async {
                        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(
                            tokio::time::Instant,
                            Vec<u8>,
                        )>();
                        let reader = async move {
                            let mut buf = vec![0u8; 64 * 1024];
                            loop {
                                let n = match cr.read(&mut buf).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => n,
                                };
                                let due = tokio::time::Instant::now()
                                    + Duration::from_millis(d.load(Ordering::SeqCst));
                                if tx.send((due, buf[..n].to_vec())).is_err() {
                                    return;
                                }
                            }
                        };
                        let writer = async move {
                            while let Some((due, chunk)) = rx.recv().await {
                                tokio::time::sleep_until(due).await;
                                if sw.write_all(&chunk).await.is_err() {
                                    return;
                                }
                            }
                        };
                        tokio::join!(reader, writer);
                    };
                    tokio::select! {
                        _ = upstream => {}
                        _ = tokio::io::copy(&mut sr, &mut cw) => {}
                        _ = gen_rx.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            target,
            cut,
            generation,
            connections,
            delay_ms,
        }
    }

    /// Where connections are forwarded from now on.
    pub fn set_target(&self, target: SocketAddr) {
        *self.target.lock() = Some(target);
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every forwarded connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Adds `delay` of latency to everything going from clients to the target (order is kept).
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Connections forwarded so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}
