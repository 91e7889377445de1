//! [`HttpServer`]: a listener that answers plain HTTP with an [`HttpHandler`] and nothing else (no
//! WebSocket upgrades, no session tokens). The binary runs one on `http.admin_listen` so the
//! operations routes can live on a private address.

use crate::log_text::Printable;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::handshake;
use super::http::{self, HttpHandler};
use super::refusal::Refusal;
use crate::error::{Error, Result};
use crate::tasks::Tasks;

/// How long a client has to send its request head and body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// How long requests in progress may take to finish once the listener shuts down, before they
/// are cancelled.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// A running plain-HTTP listener.
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// The accept loop.
    accept: Tasks,
    /// One task per accepted socket.
    requests: Tasks,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl HttpServer {
    /// Binds `addr` and answers every request with `handler`. Returns once the port is open.
    pub async fn bind(addr: SocketAddr, handler: Arc<dyn HttpHandler>) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let local_addr = listener.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let accept = Tasks::new();
        let requests = Tasks::new();
        accept.spawn(accept_loop(listener, handler, stop_rx, requests.clone()));
        tracing::info!(%local_addr, "HTTP admin listener");
        Ok(Self {
            local_addr,
            stop,
            accept,
            requests,
        })
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting; requests in progress get a short grace to finish (kept-alive ones end
    /// after their current request), then are cancelled. No task is left when it returns.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        self.accept.stop(SHUTDOWN_GRACE).await;
        self.requests.stop(SHUTDOWN_GRACE).await;
    }

    /// How many of the listener's tasks are running (the accept loop, one per request being
    /// served); none once [`HttpServer::shutdown`] returned.
    pub fn task_count(&self) -> usize {
        self.accept.len() + self.requests.len()
    }
}

async fn accept_loop(
    listener: TcpListener,
    handler: Arc<dyn HttpHandler>,
    mut stop: watch::Receiver<bool>,
    requests: Tasks,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                requests.spawn(serve(stream, peer, handler.clone(), stop.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<dyn HttpHandler>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = BytesMut::new();
    let head = tokio::time::timeout(
        REQUEST_TIMEOUT,
        handshake::peek_head(&mut stream, &mut buf, MAX_HEAD),
    )
    .await;
    let req = match head {
        Ok(Ok((req, len))) => {
            if let Some(keep_alive) = handler.keep_alive(req.path_only()) {
                drop(req);
                let local = stream.local_addr().ok();
                let io = handshake::Prefixed::new(buf.freeze(), stream);
                let stop = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                super::keep_alive::serve(io, peer, local, handler, keep_alive, stop).await;
                return;
            }
            bytes::Buf::advance(&mut buf, len);
            req
        }
        Ok(Err(handshake::HeadError::TooLarge(_))) => {
            Refusal::ADMIN_HEAD_TOO_LARGE.send(&mut stream, peer).await;
            return;
        }
        Ok(Err(e)) => {
            if matches!(e, handshake::HeadError::Eof | handshake::HeadError::Io(_)) {
                tracing::debug!(%peer, error = %Printable(&e.to_string()), "admin: connection closed before a request");
            } else {
                Refusal::admin_bad_request(e.to_string())
                    .send(&mut stream, peer)
                    .await;
            }
            return;
        }
        Err(_) => return,
    };
    let local = stream.local_addr().ok();
    http::answer(
        &mut stream,
        buf,
        req,
        peer,
        local,
        &*handler,
        REQUEST_TIMEOUT,
    )
    .await;
}
