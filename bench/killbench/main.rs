//! `wscluster-killbench`: how long after a node dies do the survivors' Presence clients see its
//! members leave? (See `bench/README.md`, "Cluster benchmarks".) It prints figures; it asserts
//! nothing.
//!
//! Three real `wscluster` nodes on loopback (fixed mesh ports, each the others' `--peer`), N
//! Presence members on each (every other one in one of C channels shared by all nodes). A round:
//! every client lists every member (`get@members`), one node is sent SIGKILL or SIGTERM, and the
//! time from just before the `kill(2)` call to the last `member@remove` of one of its members read by
//! a survivor's client is measured; every survivor client must see every one of them (missing
//! ones are counted and the round fails). The node is then restarted under the same name and its
//! members joined again; the next round kills the next node.
//!
//! Map: `node` (processes), `client` (Presence clients and what they know), `distribution`
//! (the summary).

mod client;
mod distribution;
mod node;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::time::Instant;

use crate::client::Clients;
use crate::distribution::Distribution;
use crate::node::{Node, NodeSpec};

/// SIGKILL / SIGTERM a cluster node and measure how long until the survivors' Presence clients
/// have seen every one of its members removed.
#[derive(Debug, Parser)]
#[command(name = "wscluster-killbench", version)]
struct Cli {
    /// The node binary (default: `wscluster` next to this program).
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// `taskset -c` CPU list for the nodes (none: not pinned).
    #[arg(long)]
    node_cpu: Option<String>,
    /// Rounds per signal.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Signals to measure, in order (`KILL`, `TERM`).
    #[arg(long = "signal", default_values_t = ["KILL".to_owned(), "TERM".to_owned()])]
    signals: Vec<String>,
    /// Presence members per node.
    #[arg(long, default_value_t = 50)]
    members: usize,
    /// Shared channels (every other member joins one).
    #[arg(long, default_value_t = 5)]
    channels: usize,
    /// First of the three fixed mesh ports (loopback).
    #[arg(long, default_value_t = 17431)]
    cluster_port_base: u16,
    /// Extra node option `key=value` (repeatable), e.g. `cluster.peer_timeout_ms=3000`.
    #[arg(long = "node-set")]
    node_sets: Vec<String>,
    /// Directory for the nodes' logs.
    #[arg(long, default_value = "target/killbench")]
    log_dir: PathBuf,
    /// Longest wait for a purge, seconds (then the round fails).
    #[arg(long, default_value_t = 10.0)]
    purge_timeout: f64,
    /// Longest wait for a node to start and its members to be known everywhere, seconds.
    #[arg(long, default_value_t = 10.0)]
    setup_timeout: f64,
    /// On a failed setup, keep the nodes running this many seconds before stopping (to inspect
    /// them).
    #[arg(long, default_value_t = 0.0)]
    hold_on_failure: f64,
    /// Hard limit on the whole run, seconds (exit code 2; nodes are killed).
    #[arg(long, default_value_t = 900.0)]
    max_run_time: f64,
}

/// The measurements of one signal.
#[derive(Debug, Default)]
struct Tally {
    /// Kill → last removal, ms, of the complete rounds.
    last_ms: Vec<f64>,
    /// Kill → first removal, ms, of the complete rounds.
    first_ms: Vec<f64>,
    /// Rounds where some survivor did not see some removal in time.
    failed: usize,
    /// (survivor client, member) removals never seen, over all rounds.
    missing: usize,
    /// Restarts after which the members never converged (the cluster was started afresh).
    unconverged: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("killbench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("killbench: {e}");
                    return ExitCode::FAILURE;
                }
            };
        // Dropping `bench` (interrupted or out of time) drops its nodes, which kills them.
        tokio::select! {
            r = bench(&cli) => match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => { eprintln!("killbench: {e}"); ExitCode::FAILURE }
            },
            _ = tokio::signal::ctrl_c() => { eprintln!("killbench: interrupted"); ExitCode::FAILURE }
            _ = term.recv() => { eprintln!("killbench: terminated"); ExitCode::FAILURE }
            _ = tokio::time::sleep(secs(cli.max_run_time)) => {
                eprintln!("killbench: --max-run-time reached; stopping");
                ExitCode::from(2)
            }
        }
    })
}

/// Seconds to a duration (negative or absurd values clamp).
fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::from_secs(86_400))
}

/// The whole benchmark.
async fn bench(cli: &Cli) -> Result<(), String> {
    let bin = match &cli.node_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("current exe: {e}"))?
            .with_file_name("wscluster"),
    };
    std::fs::create_dir_all(&cli.log_dir).map_err(|e| format!("{}: {e}", cli.log_dir.display()))?;
    let ports: Vec<u16> = (0..3).map(|i| cli.cluster_port_base + i).collect();
    let specs: Vec<NodeSpec> = (0..3)
        .map(|i| NodeSpec {
            name: format!("kb-{}", i + 1),
            bin: bin.clone(),
            cpu: cli.node_cpu.clone(),
            cluster_port: ports[i],
            peer_ports: ports.iter().copied().filter(|&p| p != ports[i]).collect(),
            secret: "killbench-secret".to_owned(),
            sets: cli.node_sets.clone(),
            log: cli.log_dir.join(format!("kb-{}.log", i + 1)),
        })
        .collect();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "wscluster-killbench: 3 nodes ({}), {} Presence members per node ({} in {} shared channels), {} rounds per signal; this process may use {cpus} CPU(s); node CPUs: {}",
        bin.display(),
        cli.members,
        cli.members.div_ceil(2),
        cli.channels,
        cli.rounds,
        cli.node_cpu.as_deref().unwrap_or("any"),
    );

    let mut clients = Clients::new();
    let mut nodes = start_cluster(cli, &specs, &mut clients).await?;

    let mut results = Vec::new();
    let mut round = 0;
    for signal in &cli.signals {
        let mut tally = Tally::default();
        for r in 0..cli.rounds {
            let victim = round % 3;
            round += 1;
            let node = nodes[victim].take().ok_or("node missing")?;
            let gone = clients.members_of(victim);
            clients.watch(&gone);
            clients.drop_node(victim);
            let t0 = Instant::now();
            node.signal(signal)?;
            let done = clients
                .pump_until(t0 + secs(cli.purge_timeout), |c| {
                    c.watched_still_known() == 0
                })
                .await;
            let missing = clients.watched_still_known();
            let seen = clients.removals();
            let ms = |t: Option<Instant>| t.map(|t| (t - t0).as_secs_f64() * 1e3);
            match (done, ms(seen.first), ms(seen.last)) {
                (true, Some(first), Some(last)) => {
                    tally.first_ms.push(first);
                    tally.last_ms.push(last);
                    eprintln!(
                        "SIG{signal} round {}: kb-{} down, {} removals on {} survivor clients: first {first:.2} ms, last {last:.2} ms",
                        r + 1,
                        victim + 1,
                        gone.len(),
                        2 * cli.members
                    );
                }
                _ => {
                    tally.failed += 1;
                    tally.missing += missing;
                    eprintln!(
                        "SIG{signal} round {}: kb-{} down: {missing} removals not seen within {:.1} s (FAILED)",
                        r + 1,
                        victim + 1,
                        cli.purge_timeout
                    );
                }
            }
            if !node.reap(Instant::now() + Duration::from_secs(10)).await {
                eprintln!(
                    "kb-{} did not exit within 10 s of SIG{signal}; killed",
                    victim + 1
                );
            }
            nodes[victim] = Some(start_node(cli, &specs[victim], victim, &mut clients).await?);
            if let Err(e) = clients.sync(Instant::now() + secs(cli.setup_timeout)).await {
                // Not a purge measurement, but worth counting: the restarted node and the
                // survivors never agreed on the members. Start a fresh cluster and go on.
                tally.unconverged += 1;
                eprintln!("killbench: after restarting kb-{}: {e}", victim + 1);
                if cli.hold_on_failure > 0.0 {
                    for (i, n) in nodes
                        .iter()
                        .enumerate()
                        .filter_map(|(i, n)| Some((i, n.as_ref()?)))
                    {
                        eprintln!("  kb-{}: pid {} ws {}", i + 1, n.pid(), n.ws);
                    }
                    eprintln!("killbench: holding the nodes {} s", cli.hold_on_failure);
                    tokio::time::sleep(secs(cli.hold_on_failure)).await;
                }
                drop(nodes);
                nodes = start_cluster(cli, &specs, &mut clients).await?;
            }
        }
        results.push((signal.clone(), tally));
    }
    print_results(cli, &results);
    Ok(())
}

/// Forgets every client and starts the three nodes with their members, until every client lists
/// every member.
async fn start_cluster(
    cli: &Cli,
    specs: &[NodeSpec],
    clients: &mut Clients,
) -> Result<Vec<Option<Node>>, String> {
    let mut nodes = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        clients.drop_node(i);
        nodes.push(Some(start_node(cli, spec, i, clients).await?));
    }
    clients
        .sync(Instant::now() + secs(cli.setup_timeout))
        .await
        .map_err(|e| format!("fresh cluster: {e}"))?;
    Ok(nodes)
}

/// Starts node `index` and connects its members.
async fn start_node(
    cli: &Cli,
    spec: &NodeSpec,
    index: usize,
    clients: &mut Clients,
) -> Result<Node, String> {
    let deadline = Instant::now() + secs(cli.setup_timeout);
    let node = Node::start(spec, deadline).await?;
    for m in 0..cli.members {
        let channel = (m % 2 == 0).then(|| format!("kb-room-{}", (m / 2) % cli.channels.max(1)));
        let name = format!("{}-m{m}", spec.name);
        clients
            .connect(index, node.ws, &name, channel.as_deref(), deadline)
            .await
            .map_err(|e| format!("{} member {m}: {e}", spec.name))?;
    }
    Ok(node)
}

/// Prints one line per signal.
fn print_results(cli: &Cli, results: &[(String, Tally)]) {
    println!(
        "kill → last member@remove of the dead node's {} members on every one of the {} survivor clients (ms):",
        cli.members,
        2 * cli.members
    );
    println!(
        "{:<8} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} | {:>9} {:>11}",
        "signal",
        "rounds",
        "failed",
        "missing",
        "min",
        "p50",
        "p90",
        "p99",
        "max",
        "mean",
        "first p50",
        "unconverged"
    );
    for (signal, t) in results {
        let rounds = t.last_ms.len() + t.failed;
        let p50 = |v: &[f64]| Distribution::of(v).map_or(f64::NAN, |d| d.p50);
        let head = format!(
            "SIG{signal:<5} {rounds:>6} {:>6} {:>8}",
            t.failed, t.missing
        );
        match Distribution::of(&t.last_ms) {
            Some(d) => println!(
                "{head} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} | {:>9.2} {:>11}",
                d.min,
                d.p50,
                d.p90,
                d.p99,
                d.max,
                d.mean,
                p50(&t.first_ms),
                t.unconverged
            ),
            None => println!("{head} (no complete round) | unconverged {}", t.unconverged),
        }
    }
    println!(
        "failed: rounds where some survivor client did not see some removal within {:.1} s \
         (missing: those removals); unconverged: restarts after which the members were not \
         listed everywhere within {:.1} s (a fresh cluster was started)",
        cli.purge_timeout, cli.setup_timeout
    );
}
