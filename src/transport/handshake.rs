//! The HTTP side of a connection: reading the request head, deciding whether it is a WebSocket
//! upgrade (RFC 6455 §4.2), and writing the 101 or a plain HTTP answer. Pure functions plus one
//! bounded, timed read; the decisions (protocol, authentication) are made by `server.rs`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A parsed HTTP request head.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target (path and query).
    pub path: String,
    /// Header names lowercased, values trimmed, in arrival order (repeats kept).
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every comma-separated token of every `name` header, trimmed, in order.
    pub fn header_tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// Whether the request asks for a WebSocket upgrade (header names and tokens case-insensitive).
    pub fn is_websocket_upgrade(&self) -> bool {
        self.header_tokens("upgrade")
            .any(|t| t.eq_ignore_ascii_case("websocket"))
            && self
                .header_tokens("connection")
                .any(|t| t.eq_ignore_ascii_case("upgrade"))
    }

    /// The path without its query string.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }
}

/// Why a request head could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeadError {
    /// The peer closed before sending a whole head.
    #[error("connection closed before the request was complete")]
    Eof,
    /// The head is larger than allowed.
    #[error("request head larger than {0} bytes")]
    TooLarge(usize),
    /// The head is not valid HTTP/1.x.
    #[error("malformed HTTP request: {0}")]
    Malformed(String),
    /// Reading failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

const MAX_HEADERS: usize = 64;

/// Reads one request head from `stream` into `buf` (at most `max` bytes). On success the head is
/// consumed from `buf`; any bytes after it (a client that did not wait for the 101) stay there.
#[cfg(test)]
pub(crate) async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Request, HeadError> {
    let (req, len) = peek_head(stream, buf, max).await?;
    buf.advance(len);
    Ok(req)
}

/// [`read_head`] that leaves the head in `buf` and returns its length with it (the connection
/// may be handed on with every byte read so far).
pub(crate) async fn peek_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    max: usize,
) -> Result<(Request, usize), HeadError> {
    loop {
        if let Some(found) = parse_head(buf)? {
            return Ok(found);
        }
        if buf.len() >= max {
            return Err(HeadError::TooLarge(max));
        }
        buf.reserve(1024.min(max - buf.len()).max(1));
        let n = stream.read_buf(buf).await?;
        if n == 0 {
            return Err(HeadError::Eof);
        }
    }
}

fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let method = req.method.unwrap_or("").to_owned();
            let path = req.path.unwrap_or("/").to_owned();
            let headers = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).trim().to_owned(),
                    )
                })
                .collect();
            Ok(Some((
                Request {
                    method,
                    path,
                    headers,
                },
                len,
            )))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(HeadError::Malformed(e.to_string())),
    }
}

/// `Sec-WebSocket-Accept` for a client key (RFC 6455 §4.2.2).
pub(crate) fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

/// What is wrong with an upgrade request, before protocols and authentication are looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UpgradeProblem {
    /// Not a GET, or no usable `Sec-WebSocket-Key`.
    BadRequest(&'static str),
    /// `Sec-WebSocket-Version` is not 13.
    UnsupportedVersion,
}

/// Checks the RFC 6455 requirements of an upgrade request; returns the client key.
pub(crate) fn check_upgrade(req: &Request) -> Result<&str, UpgradeProblem> {
    if req.method != "GET" {
        return Err(UpgradeProblem::BadRequest(
            "WebSocket upgrade must be a GET",
        ));
    }
    if req.header("sec-websocket-version") != Some("13") {
        return Err(UpgradeProblem::UnsupportedVersion);
    }
    let key = req
        .header("sec-websocket-key")
        .ok_or(UpgradeProblem::BadRequest("missing Sec-WebSocket-Key"))?;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => Ok(key),
        _ => Err(UpgradeProblem::BadRequest("invalid Sec-WebSocket-Key")),
    }
}

/// The `101 Switching Protocols` answer.
pub(crate) fn switching_protocols(key: &str, protocol: Option<&str>) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        accept_key(key)
    );
    if let Some(p) = protocol {
        r.push_str("Sec-WebSocket-Protocol: ");
        r.push_str(p);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// A complete plain HTTP response that closes the connection.
pub(crate) fn http_response(
    status: u16,
    reason: &str,
    content_type: &str,
    extra: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// A stream that first yields bytes already read past the request head, then the socket.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    /// Wraps `inner`, replaying `prefix` first.
    pub(crate) fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Decodes `%XX` escapes of a URL path segment or query value; a malformed escape is kept as it is.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 3 <= b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    fn req(text: &str) -> Request {
        parse_head(text.as_bytes())
            .ok()
            .flatten()
            .map(|(r, _)| r)
            .unwrap_or_else(|| panic!("unparsed: {text}"))
    }

    #[test]
    fn upgrade_detection_is_case_insensitive_and_token_based() {
        let r = req(
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Protocol: c\r\n\r\n",
        );
        assert!(r.is_websocket_upgrade());
        assert_eq!(
            r.header_tokens("sec-websocket-protocol")
                .collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(check_upgrade(&r), Ok("dGhlIHNhbXBsZSBub25jZQ=="));
    }

    #[test]
    fn wrong_version_and_bad_key_are_refused() {
        let r = req(
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        );
        assert_eq!(check_upgrade(&r), Err(UpgradeProblem::UnsupportedVersion));
        let r = req(
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n",
        );
        assert!(matches!(
            check_upgrade(&r),
            Err(UpgradeProblem::BadRequest(_))
        ));
    }

    #[tokio::test]
    async fn head_is_read_and_leftover_kept() {
        let data = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\nEXTRA".to_vec();
        let mut rd: &[u8] = &data;
        let mut buf = BytesMut::new();
        let r = read_head(&mut rd, &mut buf, 1024).await.expect("head");
        assert_eq!(r.path, "/x");
        assert_eq!(&buf[..], b"EXTRA");
    }

    #[tokio::test]
    async fn oversized_head_is_refused() {
        let data = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(5000));
        let mut rd: &[u8] = data.as_bytes();
        let mut buf = BytesMut::new();
        assert!(matches!(
            read_head(&mut rd, &mut buf, 1024).await,
            Err(HeadError::TooLarge(1024))
        ));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%zz%"), "a b%zz%");
        assert_eq!(percent_decode("%é%4"), "%é%4");
    }
}
