//! A real HTTP receiver for webhook tests: listens on loopback, records every POST (headers and
//! raw body) and answers 200.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::tls::Issued;

/// One POST as received.
#[derive(Debug, Clone)]
pub struct Post {
    /// The status it was answered with.
    pub status: u16,
    /// Its headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Its raw body.
    pub body: Vec<u8>,
}

impl Post {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body's `events` array.
    pub fn events(&self) -> Vec<Value> {
        let v: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("webhook body is not JSON ({e})"));
        v["events"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("no events array in {v}"))
    }
}

/// The receiver; stops listening when dropped.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// How many of the next POSTs are answered 500 (then 200).
    failing: Arc<std::sync::atomic::AtomicUsize>,
    posts: Arc<Mutex<Vec<Post>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback address nothing listens on now (a receiver that is down), to start one on later.
pub async fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    l.local_addr().unwrap_or_else(|e| panic!("addr: {e}"))
}

impl Receiver {
    /// A receiver on an ephemeral loopback port.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// A receiver on `addr`.
    pub async fn start_on(addr: SocketAddr) -> Self {
        Self::listen(addr, None).await
    }

    /// Answers the next `n` POSTs with 500 (they are still recorded, with that status).
    pub fn fail_next(&self, n: usize) {
        self.failing.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// An `https://` receiver on an ephemeral loopback port presenting `cert`.
    pub async fn start_tls(cert: &Issued) -> Self {
        let certs =
            wscluster::internals::tls::load_certs(&cert.cert()).unwrap_or_else(|e| panic!("{e}"));
        let key =
            wscluster::internals::tls::load_key(&cert.key()).unwrap_or_else(|e| panic!("{e}"));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("{e}"))
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap_or_else(|e| panic!("{e}"));
        let acceptor = TlsAcceptor::from(Arc::new(config));
        Self::listen(SocketAddr::from(([127, 0, 0, 1], 0)), Some(acceptor)).await
    }

    async fn listen(addr: SocketAddr, tls: Option<TlsAcceptor>) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let posts: Arc<Mutex<Vec<Post>>> = Arc::default();
        let failing: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let p = posts.clone();
        let f = failing.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let (p, f) = (p.clone(), f.clone());
                match tls.clone() {
                    None => {
                        tokio::spawn(read_post(s, p, f));
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            if let Ok(s) = acceptor.accept(s).await {
                                read_post(s, p, f).await;
                            }
                        });
                    }
                }
            }
        });
        Self {
            addr,
            failing,
            posts,
            task,
        }
    }

    /// `http://<addr>/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// `https://<addr>/hook`.
    pub fn https_url(&self) -> String {
        format!("https://{}/hook", self.addr)
    }

    /// Every POST so far.
    pub fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every event accepted (answered 200) so far, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.posts()
            .iter()
            .filter(|p| p.status == 200)
            .flat_map(Post::events)
            .collect()
    }

    /// Polls until `cond` holds for the events received (failing the test after `wait`); returns
    /// them.
    pub async fn wait_for(
        &self,
        what: &str,
        wait: Duration,
        cond: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let events = self.events();
            if cond(&events) {
                return events;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "webhooks: {what} not received within {wait:?}; received {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Reads one POST, records it, then answers it (so a batch is recorded before the next one can be
/// sent): 500 while `failing` counts down, else 200.
async fn read_post<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    posts: Arc<Mutex<Vec<Post>>>,
    failing: Arc<std::sync::atomic::AtomicUsize>,
) -> Option<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (headers, body_start, len) = loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut h = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut h);
        if let Ok(httparse::Status::Complete(at)) = req.parse(&buf) {
            assert_eq!(req.method, Some("POST"));
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let len = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(0);
            break (headers, at, len);
        }
    };
    while buf.len() < body_start + len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let fail = failing
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        )
        .is_ok();
    let status = if fail { 500 } else { 200 };
    posts.lock().unwrap_or_else(|e| e.into_inner()).push(Post {
        status,
        headers,
        body: buf[body_start..body_start + len].to_vec(),
    });
    let answer = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        if fail { "Internal Server Error" } else { "OK" }
    );
    let _ = s.write_all(answer.as_bytes()).await;
    let _ = s.shutdown().await;
    Some(())
}
