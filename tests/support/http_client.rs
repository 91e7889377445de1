//! A small HTTP/1.1 client that keeps its connection: requests are written as given (one at a
//! time, or several at once to pipeline them) and answers read back in order by their
//! `Content-Length`. Works over TCP or TLS ([`super::ClientIo`]).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ClientIo, DEFAULT_WAIT};

/// One answer.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl HttpReply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// `error.code` of a JSON error body ("" when there is none).
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A kept-alive HTTP/1.1 connection.
pub struct HttpClient {
    io: Box<dyn ClientIo>,
    buf: Vec<u8>,
}

/// The text of one request (`Host: test`, the body's `Content-Length`, `headers` as given).
pub fn request_text(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r
}

impl HttpClient {
    /// Connects to `addr` over TCP.
    pub async fn connect(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let _ = tcp.set_nodelay(true);
        Self::over(Box::new(tcp))
    }

    /// A client over an open stream (e.g. TLS).
    pub fn over(io: Box<dyn ClientIo>) -> Self {
        Self {
            io,
            buf: Vec::new(),
        }
    }

    /// Writes raw bytes (one or more requests).
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.io
            .write_all(bytes)
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
    }

    /// Sends one request and reads its answer.
    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> HttpReply {
        self.write_raw(request_text(method, path, headers, body).as_bytes())
            .await;
        self.read_reply().await
    }

    /// Reads the next answer (fails the test when none comes within [`DEFAULT_WAIT`]).
    pub async fn read_reply(&mut self) -> HttpReply {
        match tokio::time::timeout(DEFAULT_WAIT, self.try_read_reply()).await {
            Ok(Some(r)) => r,
            Ok(None) => panic!("connection closed before an answer"),
            Err(_) => panic!("no answer within {DEFAULT_WAIT:?}"),
        }
    }

    /// The next answer; `None` when the connection closes first.
    pub async fn try_read_reply(&mut self) -> Option<HttpReply> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(len)) = resp.parse(&self.buf) {
                let status = resp.code.unwrap_or(0);
                let headers: Vec<(String, String)> = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).trim().to_owned(),
                        )
                    })
                    .collect();
                let body_len: usize = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= len + body_len {
                    let body = String::from_utf8_lossy(&self.buf[len..len + body_len]).into_owned();
                    self.buf.drain(..len + body_len);
                    if status == 100 {
                        continue;
                    }
                    return Some(HttpReply {
                        status,
                        headers,
                        body,
                    });
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.io.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Whether the server closes the connection within `wait` (reading and dropping anything
    /// it still sends).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.io.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }
}
