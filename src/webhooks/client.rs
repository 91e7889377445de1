//! The POST of one batch: a small HTTP/1.1 client over a TCP stream, or over rustls for
//! `https://` (rustls is what the node's other TLS uses; no HTTP client library is needed for one
//! request shape and one status code). One connection per request (`Connection: close`): a
//! receiver that restarts or a load balancer that moves is met afresh on every attempt.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// Largest response head read, in bytes.
const MAX_HEAD: usize = 16 * 1024;

/// Where batches go, parsed from `webhooks.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `https://`.
    pub https: bool,
    /// Host name or address (without brackets for IPv6).
    pub host: String,
    /// Port (80 or 443 unless given).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Target {
    /// Parses an `http://` or `https://` URL; the message says what is wrong.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        // Errors quote the URL, except one that may carry credentials (never echoed).
        if url.contains('@') {
            return Err(
                "credentials (user@ or user:password@) in the URL are not supported".into(),
            );
        }
        let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(format!("{url:?}: only http:// and https:// URLs"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{url:?}: spaces or control characters"));
        }
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let Some((h, after)) = r.split_once(']') else {
                return Err(format!("{url:?}: unclosed [ in the host"));
            };
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        let port = match port {
            None => {
                if https {
                    443
                } else {
                    80
                }
            }
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{url:?}: bad port {p:?}"))?,
        };
        Ok(Self {
            https,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// The `Host` header's value.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Why a POST did not get a response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PostError {
    /// Connecting, TLS, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The whole exchange took longer than `webhooks.timeout_ms`.
    #[error("timed out")]
    Timeout,
    /// The response head is not HTTP or is too long.
    #[error("bad response: {0}")]
    BadResponse(&'static str),
}

/// Posts batches to one target.
pub(crate) struct Client {
    target: Target,
    tls: Option<TlsConnector>,
    timeout: Duration,
}

impl Client {
    /// A client for `target`; `https://` trusts the CA certificates in `ca_file` (PEM) when set,
    /// else the system's.
    pub(crate) fn new(target: Target, ca_file: &str, timeout: Duration) -> Result<Self, String> {
        let tls = if target.https {
            let roots = if ca_file.is_empty() {
                let mut roots = rustls::RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err("no system CA certificate found (set webhooks.ca_file)".into());
                }
                roots
            } else {
                crate::tls::load_roots(ca_file).map_err(|e| e.to_string())?
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Self {
            target,
            tls,
            timeout,
        })
    }

    /// POSTs `body` with its signature header; the response's status code.
    pub(crate) async fn post(&self, body: &[u8], signature: &str) -> Result<u16, PostError> {
        tokio::time::timeout(self.timeout, self.exchange(body, signature))
            .await
            .map_err(|_| PostError::Timeout)?
    }

    async fn exchange(&self, body: &[u8], signature: &str) -> Result<u16, PostError> {
        let t = &self.target;
        let tcp = TcpStream::connect((t.host.as_str(), t.port)).await?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.request(tcp, body, signature).await,
            Some(tls) => {
                let name = ServerName::try_from(t.host.clone())
                    .map_err(|_| PostError::BadResponse("host is not a valid TLS server name"))?;
                let stream = tls.connect(name, tcp).await?;
                self.request(stream, body, signature).await
            }
        }
    }

    async fn request<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        body: &[u8],
        signature: &str,
    ) -> Result<u16, PostError> {
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: wscluster/{}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             X-Wscluster-Signature: {signature}\r\nConnection: close\r\n\r\n",
            self.target.path,
            self.target.host_header(),
            env!("CARGO_PKG_VERSION"),
            body.len(),
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        let mut buf = Vec::with_capacity(1024);
        loop {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(PostError::BadResponse("closed before a complete head"));
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&buf) {
                Ok(httparse::Status::Complete(_)) => {
                    return response
                        .code
                        .ok_or(PostError::BadResponse("no status code"));
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
                Ok(httparse::Status::Partial) => {
                    return Err(PostError::BadResponse("response head too long"));
                }
                Err(_) => return Err(PostError::BadResponse("not an HTTP response")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("https://hooks.example.com/in?x=1").unwrap();
        assert_eq!(
            (t.https, t.host.as_str(), t.port, t.path.as_str()),
            (true, "hooks.example.com", 443, "/in?x=1")
        );
        assert_eq!(t.host_header(), "hooks.example.com");
        let t = Target::parse("http://127.0.0.1:8099").unwrap();
        assert_eq!((t.port, t.path.as_str()), (8099, "/"));
        assert_eq!(t.host_header(), "127.0.0.1:8099");
        let t = Target::parse("http://[::1]:81/h").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 81));
        assert_eq!(t.host_header(), "[::1]:81");
        let t = Target::parse("http://h?q").unwrap();
        assert_eq!(t.path, "/?q");
        for bad in [
            "ftp://h/",
            "h:80",
            "http://",
            "http://:80/",
            "http://h:0/",
            "http://a@h/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
