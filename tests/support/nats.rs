//! A real `nats-server` per test, on ephemeral loopback ports, killed when dropped.
//!
//! `scripts/test.sh` installs Debian's `nats-server` when it is missing; `NATS_SERVER` may name
//! another binary. Nothing here assumes a NATS server is already running.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long `nats-server` may take to accept connections.
const START_WAIT: Duration = Duration::from_secs(10);

/// The `nats-server` binary.
pub fn nats_server_binary() -> String {
    std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".to_owned())
}

/// How clients must log in.
#[derive(Debug, Clone)]
pub enum NatsAuth {
    /// Anyone may connect.
    None,
    /// `--auth TOKEN`.
    Token(String),
    /// `--user USER --pass PASSWORD`.
    User(String, String),
}

/// A running `nats-server` on 127.0.0.1, with its HTTP monitoring port (for `connz`).
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    monitor: u16,
    auth: NatsAuth,
    log: tempfile::NamedTempFile,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot bind: {e}"));
    l.local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"))
        .port()
}

impl NatsServer {
    /// A server anyone may connect to.
    pub async fn start() -> Self {
        Self::start_with(NatsAuth::None).await
    }

    /// A server that requires `auth`.
    pub async fn start_with(auth: NatsAuth) -> Self {
        let mut s = Self {
            child: None,
            port: free_port(),
            monitor: free_port(),
            auth,
            log: tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}")),
        };
        // A free port may be taken by another test's process before nats-server binds it: then
        // nats-server exits, and other ports are tried.
        for _ in 0..20 {
            if s.launch().await {
                return s;
            }
            s.port = free_port();
            s.monitor = free_port();
        }
        panic!("nats-server could not bind free ports in 20 attempts");
    }

    /// Starts the process on `self.port` and waits until it greets; false if it exited.
    async fn launch(&mut self) -> bool {
        let mut cmd = Command::new(nats_server_binary());
        cmd.args([
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-m",
            &self.monitor.to_string(),
        ]);
        match &self.auth {
            NatsAuth::None => {}
            NatsAuth::Token(t) => {
                cmd.args(["--auth", t]);
            }
            NatsAuth::User(u, p) => {
                cmd.args(["--user", u, "--pass", p]);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(self.log.reopen().unwrap_or_else(|e| panic!("{e}")))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): run scripts/test.sh, which installs it",
                    nats_server_binary()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + START_WAIT;
        loop {
            if self.greets().await && self.http("/varz").await.is_some() {
                return true;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                self.child = None;
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server on port {} did not answer within {START_WAIT:?}: {}",
                self.port,
                std::fs::read_to_string(self.log.path()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether the client port sends its `INFO` greeting.
    async fn greets(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut buf = [0u8; 4];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf)).await,
            Ok(Ok(_)) if &buf == b"INFO"
        )
    }

    /// GET `path` on the monitoring port: the body, when it answered.
    pub async fn http(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.monitor)).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .ok()?
            .ok()?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let (_, body) = text.split_once("\r\n\r\n")?;
        Some(body.to_owned())
    }

    /// Each client connection's name (a node's id) with its subscriptions, sorted.
    pub async fn subscriptions(&self) -> Vec<(String, Vec<String>)> {
        let body = self
            .http("/connz?subs=1")
            .await
            .unwrap_or_else(|| panic!("nats-server monitoring did not answer"));
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("connz: {e}: {body}"));
        let mut out: Vec<(String, Vec<String>)> = v["connections"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        let mut subs: Vec<String> = c["subscriptions_list"]
                            .as_array()
                            .map(|s| {
                                s.iter()
                                    .filter_map(|x| x.as_str().map(str::to_owned))
                                    // The client's own reply inbox.
                                    .filter(|x| !x.starts_with("_INBOX."))
                                    .collect()
                            })
                            .unwrap_or_default();
                        subs.sort();
                        (c["name"].as_str().unwrap_or("").to_owned(), subs)
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Its client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://` URL for a client (with the credentials when there are some).
    pub fn url(&self) -> String {
        match &self.auth {
            NatsAuth::None => format!("nats://127.0.0.1:{}", self.port),
            NatsAuth::Token(t) => format!("nats://{t}@127.0.0.1:{}", self.port),
            NatsAuth::User(u, p) => format!("nats://{u}:{p}@127.0.0.1:{}", self.port),
        }
    }

    /// A client of the test's own (e.g. to publish garbage on the cluster's subjects).
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to nats: {e}"))
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Kills the process (SIGKILL): every connection drops at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports (after [`NatsServer::kill`], or killing it first).
    pub async fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_WAIT;
        while !self.launch().await {
            assert!(
                Instant::now() < deadline,
                "port {} stayed taken: nats-server cannot restart on it",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl super::broker::BrokerProcess for NatsServer {
    fn pid(&self) -> u32 {
        super::broker::pid_of(self.child.as_ref(), "nats-server")
    }
}
