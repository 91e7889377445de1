//! A real three-master Redis Cluster per test: three `redis-server --cluster-enabled yes` on
//! ephemeral loopback ports (client and cluster bus), each in its own directory of one temporary
//! directory, given a third of the slots each (`CLUSTER ADDSLOTSRANGE`) and introduced to each
//! other (`CLUSTER MEET`); ready once every master says `cluster_state:ok` and knows the other
//! two. A master can be killed and started again on the same port with its `nodes.conf` kept (it
//! rejoins with its slots). Every process is killed on drop.
//!
//! `scripts/test.sh` installs Debian's `redis-server` (7.0: sharded Pub/Sub) when it is missing;
//! `REDIS_SERVER` may name another binary.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::redis::redis_server_binary;

/// How long the cluster may take to form (or to heal after a restart).
const FORM_WAIT: Duration = Duration::from_secs(30);

/// The slot ranges of the three masters.
pub const SLOT_RANGES: [(u16, u16); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot bind: {e}"));
    l.local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"))
        .port()
}

/// One master of the test cluster.
pub struct Master {
    child: Option<Child>,
    port: u16,
    bus_port: u16,
    dir: PathBuf,
}

impl Master {
    fn spawn(&mut self, password: Option<&str>) -> Child {
        let mut cmd = Command::new(redis_server_binary());
        cmd.current_dir(&self.dir).args([
            "--port",
            &self.port.to_string(),
            "--cluster-port",
            &self.bus_port.to_string(),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "10000",
            "--cluster-require-full-coverage",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            "redis.log",
        ]);
        if let Some(p) = password {
            cmd.args(["--requirepass", p, "--masterauth", p]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): run scripts/test.sh, which installs it",
                    redis_server_binary()
                )
            })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The id of the node that serves `slot` according to `nodes` (a `CLUSTER NODES` reply: one
/// line per node, its id first and the slots it serves from the ninth field on, as `a-b` or `a`;
/// a migration in progress shows as `[...]` on the masters involved).
fn owner_of(nodes: &str, slot: u16) -> Option<&str> {
    nodes.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let serves = fields.iter().skip(8).any(|range| {
            let bounds = match range.split_once('-') {
                Some((a, b)) => a.parse::<u16>().ok().zip(b.parse::<u16>().ok()),
                None => range.parse::<u16>().ok().map(|a| (a, a)),
            };
            bounds.is_some_and(|(a, b)| (a..=b).contains(&slot))
        });
        serves.then(|| fields.first().copied()).flatten()
    })
}

/// A running three-master Redis Cluster on 127.0.0.1.
pub struct RedisCluster {
    masters: Vec<Master>,
    password: Option<String>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// A cluster without a password.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A cluster whose masters require `password` (`requirepass`), when given.
    pub async fn start_with(password: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut c = Self {
            masters: Vec::new(),
            password: password.map(str::to_owned),
            _dir: dir,
        };
        for i in 0..3 {
            let d = c._dir.path().join(format!("m{i}"));
            std::fs::create_dir(&d).unwrap_or_else(|e| panic!("{e}"));
            c.masters.push(Master {
                child: None,
                port: 0,
                bus_port: 0,
                dir: d,
            });
        }
        for i in 0..3 {
            c.launch_on_free_ports(i).await;
        }
        for (i, (from, to)) in SLOT_RANGES.iter().enumerate() {
            let _: String = c
                .query(
                    i,
                    &[
                        "CLUSTER",
                        "ADDSLOTSRANGE",
                        &from.to_string(),
                        &to.to_string(),
                    ],
                )
                .await;
            // Distinct configuration epochs from the start, as `redis-cli --cluster create`
            // gives: masters that all start at 0 bump theirs one by one to resolve the
            // collisions, and a bump in the middle of a slot move can make the old owner's
            // stale claim win, leaving a slot that each of two masters says the other owns.
            let _: String = c
                .query(i, &["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()])
                .await;
        }
        for i in 1..3 {
            let (port, bus) = (c.masters[i].port, c.masters[i].bus_port);
            let _: String = c
                .query(
                    0,
                    &[
                        "CLUSTER",
                        "MEET",
                        "127.0.0.1",
                        &port.to_string(),
                        &bus.to_string(),
                    ],
                )
                .await;
        }
        c.wait_ok().await;
        c
    }

    async fn launch_on_free_ports(&mut self, i: usize) {
        for _ in 0..20 {
            let m = &mut self.masters[i];
            m.port = free_port();
            m.bus_port = free_port();
            if self.launch(i).await {
                return;
            }
        }
        panic!("redis-server could not bind free ports in 20 attempts");
    }

    /// Starts master `i` on its ports and waits until it answers; false if it exited.
    async fn launch(&mut self, i: usize) -> bool {
        let password = self.password.clone();
        let child = self.masters[i].spawn(password.as_deref());
        self.masters[i].child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping(i).await {
                return true;
            }
            let m = &mut self.masters[i];
            if let Some(c) = m.child.as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                m.child = None;
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer: {}",
                m.port,
                m.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until every master says `cluster_state:ok`, knows three masters and sees every slot
    /// served (`CLUSTER SLOTS` has the three ranges: with `cluster-require-full-coverage no`,
    /// `cluster_state:ok` alone does not say that).
    pub async fn wait_ok(&self) {
        let deadline = Instant::now() + FORM_WAIT;
        for i in 0..self.masters.len() {
            loop {
                let info: Option<String> = self.try_query(i, &["CLUSTER", "INFO"]).await;
                let slots: Option<Vec<redis::Value>> =
                    self.try_query(i, &["CLUSTER", "SLOTS"]).await;
                let ok = info.as_deref().is_some_and(|info| {
                    info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
                }) && slots.is_some_and(|s| s.len() == SLOT_RANGES.len());
                if ok {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the redis cluster did not form within {FORM_WAIT:?}: {info:?}\n{}",
                    self.masters[i].log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The seed addresses, `127.0.0.1:PORT` each.
    pub fn seeds(&self) -> Vec<String> {
        self.masters
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.port))
            .collect()
    }

    /// Master `i`'s port.
    pub fn port(&self, i: usize) -> u16 {
        self.masters[i].port
    }

    fn url(&self, i: usize) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/", self.masters[i].port),
            None => format!("redis://127.0.0.1:{}/", self.masters[i].port),
        }
    }

    async fn connection(&self, i: usize) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        redis::Client::open(self.url(i))?
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
    }

    async fn ping(&self, i: usize) -> bool {
        self.try_query::<String>(i, &["PING"]).await.is_some()
    }

    async fn try_query<T: redis::FromRedisValue>(&self, i: usize, args: &[&str]) -> Option<T> {
        let mut c = self.connection(i).await.ok()?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut c).await.ok()
    }

    /// Runs one command on master `i` and returns its reply.
    pub async fn query<T: redis::FromRedisValue>(&self, i: usize, args: &[&str]) -> T {
        let mut c = self
            .connection(i)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to redis master {i}: {e}"));
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut c)
            .await
            .unwrap_or_else(|e| panic!("redis master {i} {args:?}: {e}"))
    }

    /// The sharded channels with subscribers on master `i` (`PUBSUB SHARDCHANNELS`), sorted.
    pub async fn shard_channels(&self, i: usize) -> Vec<String> {
        let mut v: Vec<String> = self.query(i, &["PUBSUB", "SHARDCHANNELS"]).await;
        v.sort();
        v
    }

    /// How many connections of master `i` are subscribed to sharded channel `name`
    /// (`PUBSUB SHARDNUMSUB`).
    pub async fn shard_subscribers(&self, i: usize, name: &str) -> i64 {
        let reply: Vec<redis::Value> = self.query(i, &["PUBSUB", "SHARDNUMSUB", name]).await;
        match reply.get(1) {
            Some(redis::Value::Int(n)) => *n,
            other => panic!("redis master {i} PUBSUB SHARDNUMSUB {name}: {other:?}"),
        }
    }

    /// Master `i`'s process (to pause it).
    pub fn master(&self, i: usize) -> &Master {
        &self.masters[i]
    }

    /// The index of the master whose slots hold Redis channel `name`.
    pub async fn master_of(&self, name: &str) -> usize {
        let slot: i64 = self.query(0, &["CLUSTER", "KEYSLOT", name]).await;
        SLOT_RANGES
            .iter()
            .position(|(from, to)| (i64::from(*from)..=i64::from(*to)).contains(&slot))
            .unwrap_or_else(|| panic!("slot {slot} outside every range"))
    }

    /// Moves an empty slot from master `from` to master `to` (`CLUSTER SETSLOT … IMPORTING /
    /// MIGRATING / NODE`), as a resharding does; every master learns the new owner at once.
    pub async fn move_slot(&self, slot: u16, from: usize, to: usize) {
        let slot_arg = slot.to_string();
        let from_id: String = self.query(from, &["CLUSTER", "MYID"]).await;
        let to_id: String = self.query(to, &["CLUSTER", "MYID"]).await;
        let _: String = self
            .query(
                to,
                &["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &from_id],
            )
            .await;
        let _: String = self
            .query(
                from,
                &["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &to_id],
            )
            .await;
        for i in [to, from] {
            let _: String = self
                .query(i, &["CLUSTER", "SETSLOT", &slot_arg, "NODE", &to_id])
                .await;
        }
        let other = (0..3).find(|i| *i != from && *i != to).unwrap_or(0);
        let _: String = self
            .query(other, &["CLUSTER", "SETSLOT", &slot_arg, "NODE", &to_id])
            .await;
        // Every master names the new owner (a later gossip message cannot take it back).
        let deadline = Instant::now() + FORM_WAIT;
        for i in 0..self.masters.len() {
            loop {
                let nodes: String = self.query(i, &["CLUSTER", "NODES"]).await;
                if owner_of(&nodes, slot) == Some(to_id.as_str()) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "master {i} does not name {to_id} as the owner of slot {slot}:\n{nodes}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// The slot of Redis channel `name` (`CLUSTER KEYSLOT`).
    pub async fn slot_of(&self, name: &str) -> u16 {
        let slot: i64 = self.query(0, &["CLUSTER", "KEYSLOT", name]).await;
        u16::try_from(slot).unwrap_or_else(|e| panic!("slot {slot}: {e}"))
    }

    /// Kills master `i` (SIGKILL): every connection to it drops at once.
    pub fn kill(&mut self, i: usize) {
        self.masters[i].kill();
    }

    /// Starts master `i` again on the same ports with its `nodes.conf` (after
    /// [`RedisCluster::kill`], or killing it first); returns once it answers (it rejoins the
    /// cluster with its slots: [`RedisCluster::wait_ok`] waits for that).
    pub async fn relaunch(&mut self, i: usize) {
        self.kill(i);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.launch(i).await {
            assert!(
                Instant::now() < deadline,
                "ports of master {i} stayed taken: it cannot restart on them"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// [`RedisCluster::relaunch`], then waits until the cluster is whole.
    pub async fn restart(&mut self, i: usize) {
        self.relaunch(i).await;
        self.wait_ok().await;
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for m in &mut self.masters {
            m.kill();
        }
    }
}

impl super::broker::BrokerProcess for Master {
    fn pid(&self) -> u32 {
        super::broker::pid_of(self.child.as_ref(), "a redis cluster master")
    }
}
