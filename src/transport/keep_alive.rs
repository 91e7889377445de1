//! The persistent HTTP/1.1 server: connections whose first request the [`HttpHandler`] wants
//! served keep-alive ([`HttpHandler::keep_alive`], the server API under `/api/`) are handed to
//! hyper's HTTP/1.1 server with the bytes already read replayed. It keeps the connection open
//! between requests, answers pipelined requests in order, closes a connection idle (or slow to
//! send a request head) for [`KeepAlive::idle_timeout`], caps bodies at
//! [`HttpHandler::max_body_for`] (413) and gives them [`KeepAlive::body_timeout`] (408).
//! Every request on such a connection goes to the handler, whatever its path.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use super::http::{HttpHandler, HttpRequest, HttpResponse};

/// Largest request head accepted on a keep-alive connection (431 past it).
const MAX_HEAD: usize = 16 * 1024;

/// How a keep-alive connection is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// How long the connection may wait for its next request, and a request head may take.
    pub idle_timeout: Duration,
    /// How long a request body may take to arrive (408 after it).
    pub body_timeout: Duration,
}

/// Serves `io` with hyper until the client closes, the idle timeout passes, or `stop` completes
/// (then the request in progress is answered and the connection closed).
pub(crate) async fn serve<S>(
    io: S,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    handler: Arc<dyn HttpHandler>,
    keep_alive: KeepAlive,
    stop: impl Future<Output = ()>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let handler = handler.clone();
        async move {
            Ok::<_, Infallible>(answer(req, peer, local, &*handler, keep_alive.body_timeout).await)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(keep_alive.idle_timeout)
        .max_buf_size(MAX_HEAD.max(8192))
        .keep_alive(true)
        .pipeline_flush(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::pin!(stop);
    let done = tokio::select! {
        r = conn.as_mut() => Some(r),
        () = &mut stop => None,
    };
    let result = match done {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "keep-alive HTTP connection ended with an error");
    }
}

/// Reads one request's body (capped, timed), asks the handler, and builds hyper's answer.
async fn answer(
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    handler: &dyn HttpHandler,
    body_timeout: Duration,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let max = handler.max_body_for(&path);
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return close(convert(handler.refusal(&path, 413)));
    }
    let body = match tokio::time::timeout(body_timeout, Limited::new(body, max).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) => {
            let status = if e.is::<http_body_util::LengthLimitError>() {
                413
            } else {
                400
            };
            tracing::debug!(%peer, error = %e, "request body refused");
            return close(convert(handler.refusal(&path, status)));
        }
        Err(_) => {
            tracing::debug!(%peer, "request body timed out");
            return close(convert(handler.refusal(&path, 408)));
        }
    };
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).trim().to_owned(),
            )
        })
        .collect();
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_owned());
    let request = HttpRequest {
        method: parts.method.as_str().to_owned(),
        target,
        headers,
        body,
        peer,
        local,
    };
    convert(handler.handle(request).await)
}

/// An [`HttpResponse`] as hyper's.
fn convert(r: HttpResponse) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(r.body));
    *out.status_mut() =
        http::StatusCode::from_u16(r.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let h = out.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(r.content_type),
    );
    for (name, value) in r.headers {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            h.append(name, v);
        }
    }
    out
}

/// Closes the connection after this answer (its request body was not read to the end).
fn close(mut r: hyper::Response<Full<Bytes>>) -> hyper::Response<Full<Bytes>> {
    r.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    r
}
