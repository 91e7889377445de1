//! A real `redis-server` per test, on an ephemeral loopback port, killed when dropped.
//!
//! `scripts/test.sh` installs Debian's `redis-server` when it is missing; `REDIS_SERVER` may name
//! another binary. Nothing here assumes a Redis is already running.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `redis-server` may take to accept connections.
const START_WAIT: Duration = Duration::from_secs(10);

/// The `redis-server` binary.
pub fn redis_server_binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// A running `redis-server` on 127.0.0.1.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    log: tempfile::NamedTempFile,
    /// With TLS: the TLS port and the certificate, key and CA files (`--tls-*`).
    tls: Option<(u16, [String; 3])>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot bind: {e}"));
    l.local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"))
        .port()
}

impl RedisServer {
    /// A server without a password.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A server that requires `password` (`requirepass`), when given.
    pub async fn start_with(password: Option<&str>) -> Self {
        let mut s = Self {
            child: None,
            port: free_port(),
            password: password.map(str::to_owned),
            log: tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}")),
            tls: None,
        };
        s.start_on_free_ports().await;
        s
    }

    /// A server without a password that also listens with TLS (`--tls-port`, certificate and key
    /// files, clients not asked for certificates); the plain port stays for the test's own checks.
    pub async fn start_tls(cert_file: &str, key_file: &str, ca_file: &str) -> Self {
        let mut s = Self {
            child: None,
            port: free_port(),
            password: None,
            log: tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}")),
            tls: Some((
                free_port(),
                [
                    cert_file.to_owned(),
                    key_file.to_owned(),
                    ca_file.to_owned(),
                ],
            )),
        };
        s.start_on_free_ports().await;
        s
    }

    /// The TLS port (servers started with [`RedisServer::start_tls`]).
    pub fn tls_port(&self) -> Option<u16> {
        self.tls.as_ref().map(|(p, _)| *p)
    }

    async fn start_on_free_ports(&mut self) {
        let s = self;
        // The free port may be taken by another test's process before redis-server binds it:
        // then redis-server exits, and another port is tried.
        for _ in 0..20 {
            if s.launch().await {
                return;
            }
            s.port = free_port();
            if let Some((p, _)) = s.tls.as_mut() {
                *p = free_port();
            }
        }
        panic!("redis-server could not bind a free port in 20 attempts");
    }

    /// Starts the process on `self.port` and waits until it answers; false if it exited (its
    /// port was taken).
    async fn launch(&mut self) -> bool {
        let mut cmd = Command::new(redis_server_binary());
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            "",
        ]);
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        if let Some((port, [cert, key, ca])) = &self.tls {
            cmd.args(["--tls-port", &port.to_string()]);
            cmd.args(["--tls-cert-file", cert, "--tls-key-file", key]);
            cmd.args(["--tls-ca-cert-file", ca, "--tls-auth-clients", "no"]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(self.log.reopen().unwrap_or_else(|e| panic!("{e}")))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): run scripts/test.sh, which installs it",
                    redis_server_binary()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + START_WAIT;
        loop {
            if self.ping().await.is_ok() {
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
                "redis-server on port {} did not answer within {START_WAIT:?}: {}",
                self.port,
                std::fs::read_to_string(self.log.path()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://` URL for a client (with the password when there is one).
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    async fn ping(&self) -> redis::RedisResult<()> {
        let mut c = self.connection().await?;
        redis::cmd("PING").query_async::<String>(&mut c).await?;
        Ok(())
    }

    /// Runs one command and returns its reply.
    pub async fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut c = self
            .connection()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to redis: {e}"));
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut c)
            .await
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// Publishes raw bytes on a Redis channel (for hostile-input tests).
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> i64 {
        let mut c = self
            .connection()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to redis: {e}"));
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut c)
            .await
            .unwrap_or_else(|e| panic!("redis PUBLISH: {e}"))
    }

    /// How many clients are subscribed to `channel` (PUBSUB NUMSUB).
    pub async fn subscribers(&self, channel: &str) -> i64 {
        let (_, n): (String, i64) = self.query(&["PUBSUB", "NUMSUB", channel]).await;
        n
    }

    /// The Redis channels with at least one subscriber, sorted.
    pub async fn channels(&self) -> Vec<String> {
        let mut v: Vec<String> = self.query(&["PUBSUB", "CHANNELS"]).await;
        v.sort();
        v
    }

    /// Kills the process (SIGKILL): every connection drops at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (after [`RedisServer::kill`]).
    pub async fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_WAIT;
        while !self.launch().await {
            assert!(
                Instant::now() < deadline,
                "port {} stayed taken: redis-server cannot restart on it",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl super::broker::BrokerProcess for RedisServer {
    fn pid(&self) -> u32 {
        super::broker::pid_of(self.child.as_ref(), "redis-server")
    }
}
