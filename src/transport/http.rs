//! Plain HTTP requests next to the WebSocket upgrades: what a request that is not an upgrade looks
//! like once its body is read ([`HttpRequest`]), the answer ([`HttpResponse`]), and the seam an
//! application plugs its routes into ([`HttpHandler`], registered with
//! [`crate::Server::http`] or served alone by [`crate::transport::HttpServer`]).
//!
//! One request per connection: every answer carries `Connection: close`, unless the handler asks
//! for a keep-alive connection ([`HttpHandler::keep_alive`], served by hyper). Bodies are read whole
//! (they are small: at most [`HttpHandler::max_body`]) when the request says how long they are
//! (`Content-Length`); a chunked body is refused with 411, a longer one with 413. A client that
//! sends `Expect: 100-continue` (curl does for bodies past 1 KiB) gets its `100 Continue` first.

use crate::log_text::Printable;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::handshake::{self, Request};

/// The default body cap of a handler: 64 KiB.
pub(crate) const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// A plain HTTP request (not a WebSocket upgrade), head and body.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target as sent: path and query string.
    pub target: String,
    /// Header names lowercased, values trimmed, in arrival order (repeats kept).
    pub headers: Vec<(String, String)>,
    /// The body (empty without `Content-Length`).
    pub body: Bytes,
    /// The client's address.
    pub peer: SocketAddr,
    /// The address the request arrived on, as the client reached it (known on the admin port).
    pub local: Option<SocketAddr>,
}

impl HttpRequest {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path without its query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query string (after `?`), empty when there is none.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
}

/// The answer to an [`HttpRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// More headers, as `(name, value)`.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A response with this status, content type and body.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<Bytes>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body)
    }

    /// A plain response whose body is the status line's text (`404 Not Found`).
    pub fn status(status: u16) -> Self {
        Self::text(status, format!("{status} {}\n", reason(status)))
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The whole response as bytes (status line, headers, `Connection: close`, body).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut extra = String::new();
        for (name, value) in &self.headers {
            // A value never carries a line break into the head.
            let value: String = value.chars().filter(|c| !c.is_control()).collect();
            extra.push_str(name);
            extra.push_str(": ");
            extra.push_str(&value);
            extra.push_str("\r\n");
        }
        handshake::http_response(
            self.status,
            reason(self.status),
            self.content_type,
            &extra,
            &self.body,
        )
    }
}

/// The reason phrase of the status codes this crate answers with.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// A response in the making.
pub type HttpFuture = Pin<Box<dyn Future<Output = HttpResponse> + Send + 'static>>;

/// Answers plain HTTP requests. Registered on a [`crate::Server`] it sees every request that is
/// not a WebSocket upgrade (except the sgc session-token requests the server answers itself).
pub trait HttpHandler: Send + Sync + 'static {
    /// Answers one request. The future may wait (e.g. for other nodes) but should answer within
    /// a few seconds.
    fn handle(&self, request: HttpRequest) -> HttpFuture;

    /// The largest body accepted, in bytes; a longer one is answered with 413 without calling
    /// [`HttpHandler::handle`].
    fn max_body(&self) -> usize {
        DEFAULT_MAX_BODY
    }

    /// Whether a connection whose first request is for `path` is served keep-alive, and how
    /// (`None`: one request, then the connection closes). See [`super::KeepAlive`].
    fn keep_alive(&self, _path: &str) -> Option<super::KeepAlive> {
        None
    }

    /// The largest body of a request for `path` on a keep-alive connection.
    fn max_body_for(&self, _path: &str) -> usize {
        self.max_body()
    }

    /// The answer to a request for `path` refused before the handler sees it on a keep-alive
    /// connection (408, 413, 400).
    fn refusal(&self, _path: &str, status: u16) -> HttpResponse {
        HttpResponse::status(status)
    }
}

/// Why a request's body was not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// `Transfer-Encoding` (chunked) instead of `Content-Length`.
    #[error("a body needs Content-Length")]
    LengthRequired,
    /// `Content-Length` is not a number.
    #[error("invalid Content-Length")]
    BadLength,
    /// The body is longer than allowed.
    #[error("body of {0} bytes is too large")]
    TooLarge(u64),
    /// The client closed or the read failed before the whole body arrived.
    #[error("body incomplete: {0}")]
    Io(#[from] std::io::Error),
}

impl BodyError {
    /// The status this error is answered with (`None`: the client is gone, answer nothing).
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            BodyError::LengthRequired => Some(411),
            BodyError::BadLength => Some(400),
            BodyError::TooLarge(_) => Some(413),
            BodyError::Io(_) => None,
        }
    }
}

/// Reads the body of `req` from `stream`, after the bytes already read past its head (`buf`),
/// and builds the [`HttpRequest`]. Sends `100 Continue` when the client waits for it.
pub(crate) async fn read_request<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mut buf: BytesMut,
    req: Request,
    peer: SocketAddr,
    max_body: usize,
) -> Result<HttpRequest, BodyError> {
    if req.header("transfer-encoding").is_some() {
        return Err(BodyError::LengthRequired);
    }
    let len = match req.header("content-length") {
        None => 0,
        Some(v) => v.parse::<u64>().map_err(|_| BodyError::BadLength)?,
    };
    if len > max_body as u64 {
        return Err(BodyError::TooLarge(len));
    }
    // Bounded by `max_body` just above.
    let len = usize::try_from(len).map_err(|_| BodyError::TooLarge(len))?;
    if len > buf.len()
        && req
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    while buf.len() < len {
        buf.reserve(len - buf.len());
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
    buf.truncate(len);
    Ok(HttpRequest {
        method: req.method,
        target: req.path,
        headers: req.headers,
        body: buf.freeze(),
        peer,
        local: None,
    })
}

/// Reads the body, asks `handler`, writes its answer (or the error's status) and closes.
pub(crate) async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: BytesMut,
    req: Request,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    handler: &dyn HttpHandler,
    timeout: std::time::Duration,
) {
    let read = tokio::time::timeout(
        timeout,
        read_request(stream, buf, req, peer, handler.max_body()),
    )
    .await;
    let response = match read {
        Ok(Ok(mut request)) => {
            request.local = local;
            handler.handle(request).await
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %Printable(&e.to_string()), "HTTP request refused");
            match e.status() {
                Some(status) => HttpResponse::status(status),
                None => return,
            }
        }
        Err(_) => {
            tracing::debug!(%peer, "HTTP request body timed out");
            HttpResponse::status(408)
        }
    };
    let _ = stream.write_all(&response.to_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> (Request, BytesMut) {
        let mut buf = BytesMut::from(text.as_bytes());
        let mut rd: &[u8] = &[];
        let req =
            futures_util::FutureExt::now_or_never(handshake::read_head(&mut rd, &mut buf, 4096))
                .and_then(Result::ok)
                .unwrap_or_else(|| panic!("unparsed: {text}"));
        (req, buf)
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[tokio::test]
    async fn body_after_the_head_and_from_the_socket() {
        let (req, buf) = head("POST /a?x=1 HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234");
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"56789extra").await.unwrap_or_default();
        let r = read_request(&mut server, buf, req, peer(), 100)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&r.body[..], b"0123456789");
        assert_eq!(r.path(), "/a");
        assert_eq!(r.query(), "x=1");
    }

    #[tokio::test]
    async fn too_large_chunked_and_bad_lengths_are_refused() {
        let (mut _c, mut s) = tokio::io::duplex(64);
        let (req, buf) = head("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n");
        let e = read_request(&mut s, buf, req, peer(), 100).await.err();
        assert_eq!(e.and_then(|e| e.status()), Some(413));
        let (req, buf) = head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        let e = read_request(&mut s, buf, req, peer(), 100).await.err();
        assert_eq!(e.and_then(|e| e.status()), Some(411));
        let (req, buf) = head("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n");
        let e = read_request(&mut s, buf, req, peer(), 100).await.err();
        assert_eq!(e.and_then(|e| e.status()), Some(400));
    }

    #[tokio::test]
    async fn expect_continue_is_answered_before_the_body() {
        let (req, buf) =
            head("POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
        let (mut client, mut server) = tokio::io::duplex(64);
        let reader = async move {
            let r = read_request(&mut server, buf, req, peer(), 100).await;
            r.map(|r| r.body).ok()
        };
        let writer = async move {
            let mut got = [0u8; 25];
            client.read_exact(&mut got).await.unwrap_or_default();
            assert_eq!(&got, b"HTTP/1.1 100 Continue\r\n\r\n");
            client.write_all(b"abc").await.unwrap_or_default();
        };
        let (body, ()) = tokio::join!(reader, writer);
        assert_eq!(body.as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn header_values_cannot_split_the_head() {
        let r = HttpResponse::status(401).with_header("WWW-Authenticate", "Bearer\r\nX: y");
        let text = String::from_utf8(r.to_bytes()).unwrap_or_default();
        assert!(text.contains("WWW-Authenticate: BearerX: y\r\n"), "{text}");
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
    }
}
