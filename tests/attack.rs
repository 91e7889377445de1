//! Every attack of `wscluster-attack` (`bench/attack/`, listed in `docs/security.md`, "Attacks we
//! test") against the node binary started as a user would: no security option, loopback ephemeral
//! ports. Each attack must be refused or bounded; the failure lists the rows that were not.
//!
//! Two tests, run side by side by the test harness: the memory attacks (the longest: about 200 MiB
//! sent to a node) and all the others. Within each, the tool runs its attacks one after another,
//! each on its own node.
//!
//! This runs the debug build of the node (`CARGO_BIN_EXE_wscluster`), not the release one that
//! `scripts/attack.sh` attacks: it is the same code, and the memory bounds checked are what the
//! node keeps on its heap, which does not depend on the optimisation level.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The rows of the memory attacks.
const MEMORY: [&str; 4] = [
    "transaction-memory",
    "retained-memory",
    "channel-poisoning",
    "channel-name-memory",
];

/// The rows of every other attack.
const OTHERS: [&str; 11] = [
    "open-cluster-port",
    "handshake-oracle",
    "stranger-joins",
    "log-injection-mesh",
    "log-injection-ws",
    "oversize-fragmented",
    "oversize-frame",
    "admin-cross-site-post",
    "admin-foreign-host-get",
    "presence-id-claim",
    "jwt-crit",
];

/// The tool's own deadlines end every attack well before this.
const WATCHDOG: Duration = Duration::from_secs(300);

/// Runs the tool on the attack groups `only` and asserts that each of `expected` has a row and
/// that every row is refused or bounded.
fn attack(only: &str, expected: &[&str]) -> Result<(), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wscluster-attack"))
        .arg(env!("CARGO_BIN_EXE_wscluster"))
        .args(["--only", only])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("start wscluster-attack: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            break status;
        }
        if started.elapsed() > WATCHDOG {
            let _ = child.kill();
            return Err(format!("wscluster-attack still running after {WATCHDOG:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = reader.join().map_err(|_| "stdout reader panicked")?;
    let rows: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{l}: {e}")))
        .collect::<Result<_, _>>()?;
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or("").to_owned();
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|a| !rows.iter().any(|r| field(r, "attack") == *a))
        .collect();
    let failing: Vec<String> = rows
        .iter()
        .filter(|r| !matches!(field(r, "result").as_str(), "refused" | "bounded"))
        .map(|r| {
            format!(
                "  {}: {} [{}] {}",
                field(r, "attack"),
                field(r, "result"),
                field(r, "bound"),
                field(r, "detail")
            )
        })
        .collect();
    if !missing.is_empty() || !failing.is_empty() {
        return Err(format!(
            "missing rows: {missing:?}\nnot refused or bounded:\n{}\n\nthe tool's table:\n{out}",
            failing.join("\n")
        ));
    }
    if !status.success() {
        return Err(format!("wscluster-attack exited {status}:\n{out}"));
    }
    Ok(())
}

/// 80 MiB in one open transaction, 100 MiB retained, 6 MiB retained on one channel against a
/// new subscriber, 40 channel names of 1 MB.
#[test]
fn memory_attacks_are_bounded() {
    attack("memory", &MEMORY).unwrap_or_else(|e| panic!("{e}"));
}

/// The cluster port, the handshake, a stranger node, log injection, oversize messages, the
/// admin listener cross-site, Presence id claims, JWT `crit`.
#[test]
fn other_attacks_are_refused() {
    attack("mesh,logs,frames,admin,identity", &OTHERS).unwrap_or_else(|e| panic!("{e}"));
}
