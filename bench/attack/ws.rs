//! A raw WebSocket client over TCP: the upgrade request written by hand (so an attack can put any
//! byte in the path or a header), frames written one by one (so an attack can fragment a message
//! as it likes), and frames read back with the close code, if any. Client frames are masked.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

/// Text frame opcode.
pub(crate) const TEXT: u8 = 0x1;
/// Continuation frame opcode.
pub(crate) const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// An open WebSocket connection.
pub(crate) struct Ws {
    rd: Reader,
    wr: OwnedWriteHalf,
}

/// The reading half of a connection.
pub(crate) struct Reader {
    rd: OwnedReadHalf,
    buf: Vec<u8>,
    /// Pongs owed for pings read (sent by [`Ws::recv`]; a split reader drops them).
    pongs: Vec<Vec<u8>>,
}

/// What reading a connection gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Msg {
    /// A whole text message.
    Text(String),
    /// A close frame with its code (if it had one) and reason.
    Close(Option<u16>, String),
    /// The TCP connection ended (or was reset) without a close frame.
    Eof(String),
    /// Nothing arrived before the deadline.
    Timeout,
}

/// The answer to an upgrade request.
pub(crate) enum Upgrade {
    /// 101: the connection is a WebSocket.
    Open(Ws),
    /// Any other answer: its status code.
    Refused(u16),
}

/// Reads an HTTP response head (up to the blank line) from `stream`; the bytes after it are
/// returned too.
async fn read_head(stream: &mut TcpStream, deadline: Instant) -> Result<(String, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let rest = buf[end + 4..].to_vec();
            return Ok((head, rest));
        }
        if buf.len() > 64 * 1024 {
            return Err("response head too long".into());
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| "no HTTP response before the deadline".to_owned())?
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!(
                "connection closed before a full response head ({} bytes)",
                buf.len()
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The status code of a response head.
pub(crate) fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Sends an upgrade request for `path` offering `protocol`, with `headers` added as given (raw
/// bytes: an attack may put control characters in them). `Host` is `addr` unless `headers`
/// has one.
pub(crate) async fn upgrade(
    addr: SocketAddr,
    path: &[u8],
    protocol: &str,
    headers: &[(&str, &[u8])],
) -> Result<Upgrade, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let key = base64::engine::general_purpose::STANDARD.encode(fastrand::u128(..).to_be_bytes());
    let mut req = Vec::new();
    req.extend_from_slice(b"GET ");
    req.extend_from_slice(path);
    req.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.extend_from_slice(format!("Host: {addr}\r\n").as_bytes());
    }
    req.extend_from_slice(
        format!(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n"
        )
        .as_bytes(),
    );
    for (name, value) in headers {
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    stream
        .write_all(&req)
        .await
        .map_err(|e| format!("write upgrade: {e}"))?;
    let (head, rest) = read_head(&mut stream, deadline).await?;
    let status = status_of(&head);
    if status != 101 {
        return Ok(Upgrade::Refused(status));
    }
    let (rd, wr) = stream.into_split();
    Ok(Upgrade::Open(Ws {
        rd: Reader {
            rd,
            buf: rest,
            pongs: Vec::new(),
        },
        wr,
    }))
}

/// [`upgrade`] with no extra header, failing unless the server switches protocols.
pub(crate) async fn connect(addr: SocketAddr, path: &str, protocol: &str) -> Result<Ws, String> {
    match upgrade(addr, path.as_bytes(), protocol, &[]).await? {
        Upgrade::Open(ws) => Ok(ws),
        Upgrade::Refused(status) => Err(format!("upgrade refused with {status}")),
    }
}

/// One masked client frame.
fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    // Large frames go out with the all-zero masking key (valid, RFC 6455 §5.3: the server
    // unmasks whatever the key): masking megabytes byte by byte would make the tool, not the
    // node, the bottleneck of the memory attacks.
    let mask = if len > 4096 {
        [0u8; 4]
    } else {
        fastrand::u32(..).to_be_bytes()
    };
    out.extend_from_slice(&mask);
    if mask == [0u8; 4] {
        out.extend_from_slice(payload);
    } else {
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    }
    out
}

/// Writes one frame.
pub(crate) async fn write_frame(
    wr: &mut OwnedWriteHalf,
    opcode: u8,
    fin: bool,
    payload: &[u8],
) -> Result<(), String> {
    wr.write_all(&frame(opcode, fin, payload))
        .await
        .map_err(|e| format!("write: {e}"))
}

impl Ws {
    /// Sends a whole text message in one frame.
    pub(crate) async fn send(&mut self, text: &str) -> Result<(), String> {
        self.flush_pongs().await?;
        write_frame(&mut self.wr, TEXT, true, text.as_bytes()).await
    }

    async fn flush_pongs(&mut self) -> Result<(), String> {
        for p in std::mem::take(&mut self.rd.pongs) {
            write_frame(&mut self.wr, PONG, true, &p).await?;
        }
        Ok(())
    }

    /// Reads the next message (answering pings), or [`Msg::Timeout`] at `deadline`.
    pub(crate) async fn recv(&mut self, deadline: Instant) -> Msg {
        let m = self.rd.recv(deadline).await;
        let _ = self.flush_pongs().await;
        m
    }

    /// Reads until a text message `pred` accepts, returning it; anything else that ends the
    /// connection, or the deadline, is an error naming what came instead.
    pub(crate) async fn recv_until(
        &mut self,
        deadline: Instant,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<String, Msg> {
        loop {
            match self.recv(deadline).await {
                Msg::Text(t) if pred(&t) => return Ok(t),
                Msg::Text(_) => {}
                other => return Err(other),
            }
        }
    }

    /// Sends a close frame (1000) and waits for the server to end the connection.
    pub(crate) async fn close(mut self) {
        let _ = write_frame(&mut self.wr, CLOSE, true, &1000u16.to_be_bytes()).await;
        let deadline = Instant::now() + Duration::from_secs(3);
        while let Msg::Text(_) = self.rd.recv(deadline).await {}
    }

    /// The two halves, for reading while writing.
    pub(crate) fn split(self) -> (Reader, OwnedWriteHalf) {
        (self.rd, self.wr)
    }

    /// The connection again from its two halves.
    pub(crate) fn join(rd: Reader, wr: OwnedWriteHalf) -> Self {
        Self { rd, wr }
    }
}

impl Reader {
    /// Reads more bytes into the buffer; false at the end of the stream.
    async fn fill(&mut self, deadline: Instant) -> Result<bool, Msg> {
        let mut chunk = vec![0u8; 64 * 1024];
        match tokio::time::timeout_at(deadline, self.rd.read(&mut chunk)).await {
            Err(_) => Err(Msg::Timeout),
            Ok(Err(e)) => Err(Msg::Eof(format!("read error: {e}"))),
            Ok(Ok(0)) => Ok(false),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
        }
    }

    /// One frame: (fin, opcode, payload).
    async fn frame(&mut self, deadline: Instant) -> Result<(bool, u8, Vec<u8>), Msg> {
        loop {
            if let Some((fin, op, payload, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Ok((fin, op, payload));
            }
            if !self.fill(deadline).await? {
                return Err(Msg::Eof(
                    "TCP connection closed without a close frame".into(),
                ));
            }
        }
    }

    /// Reads the next message, or [`Msg::Timeout`] at `deadline`.
    pub(crate) async fn recv(&mut self, deadline: Instant) -> Msg {
        let mut message: Vec<u8> = Vec::new();
        loop {
            let (fin, op, payload) = match self.frame(deadline).await {
                Ok(f) => f,
                Err(m) => return m,
            };
            match op {
                CLOSE => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    let reason =
                        String::from_utf8_lossy(payload.get(2..).unwrap_or(&[])).into_owned();
                    return Msg::Close(code, reason);
                }
                PING => self.pongs.push(payload),
                PONG => {}
                _ => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return Msg::Text(String::from_utf8_lossy(&message).into_owned());
                    }
                }
            }
        }
    }
}

/// Parses one server frame from the front of `buf`: (fin, opcode, payload, bytes used).
fn parse(buf: &[u8]) -> Option<(bool, u8, Vec<u8>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let fin = buf[0] & 0x80 != 0;
    let op = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        127 => {
            let b: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(b)).ok()?, 10)
        }
        n => (usize::from(n), 2),
    };
    let mask = if masked {
        let m: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(m)
    } else {
        None
    };
    let payload = buf.get(at..at + len)?;
    let payload = match mask {
        Some(m) => payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ m[i % 4])
            .collect(),
        None => payload.to_vec(),
    };
    Some((fin, op, payload, at + len))
}
