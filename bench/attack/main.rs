//! `wscluster-attack`: tries, against a wscluster binary started as a user would (no security
//! option, loopback ephemeral ports), the attacks a node must withstand on a real network, and
//! prints a table `attack | result | bound` and one JSON line per attack. Exit 0 only when every
//! attack was refused or bounded. Nothing is sent to an address other than loopback.
//!
//! Map: `node` (start a node, read its addresses, memory and log), `ws` (a raw WebSocket client),
//! `sgc` (the client frames), the attacks: `mesh` (open cluster port, handshake oracle, a stranger
//! joining), `memory` (transaction, retained, channel names, channel poisoning), `frames`
//! (oversize messages), `admin` (cross-site admin), `identity` (Presence ids, JWT `crit`), `logs`
//! (log injection); `report` (the table and JSON lines). `docs/security.md` lists the attacks.

mod admin;
mod frames;
mod identity;
mod logs;
mod memory;
mod mesh;
mod node;
mod report;
mod sgc;
mod ws;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::report::Row;

/// What every attack needs: the binary and its effective default configuration.
pub(crate) struct Ctx {
    /// The wscluster binary under attack.
    pub(crate) bin: PathBuf,
    /// Its `--print-config` (the defaults a user gets).
    pub(crate) config: toml::Table,
    /// `server.max_message_size`: the largest frame a client may send.
    pub(crate) max_message: usize,
}

impl Ctx {
    fn value(&self, key: &str) -> Option<toml::Value> {
        node::flat_keys(&self.config)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// A string option of the default configuration.
    pub(crate) fn config_str(&self, key: &str) -> Option<String> {
        self.value(key).and_then(|v| v.as_str().map(str::to_owned))
    }

    /// An integer option of the default configuration.
    pub(crate) fn config_u64(&self, key: &str) -> Option<u64> {
        self.value(key)
            .and_then(|v| v.as_integer())
            .and_then(|i| u64::try_from(i).ok())
    }
}

const USAGE: &str = "usage: wscluster-attack PATH-TO-WSCLUSTER [--only NAME[,NAME...]]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(bin) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').map(str::to_owned).collect());
    let bin = match node::binary(bin) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("wscluster-attack: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match node::print_config(&bin) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wscluster-attack: {e}");
            return ExitCode::from(2);
        }
    };
    let mut ctx = Ctx {
        bin,
        config,
        max_message: 0,
    };
    ctx.max_message = ctx
        .config_u64("server.max_message_size")
        .map_or(1 << 20, |v| v as usize);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wscluster-attack: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rows = runtime.block_on(run(&ctx, only.as_deref()));
    print!("{}", report::table(&rows));
    for r in &rows {
        println!("{}", r.json());
    }
    if !rows.is_empty() && rows.iter().all(|r| r.outcome.held()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Whether the attack group `name` is selected.
fn wanted(only: Option<&[String]>, name: &str) -> bool {
    only.is_none_or(|o| o.iter().any(|n| n == name))
}

/// Every attack, in sequence (they measure one node's memory: nothing runs beside them).
async fn run(ctx: &Ctx, only: Option<&[String]>) -> Vec<Row> {
    let mut rows = Vec::new();
    if wanted(only, "mesh") || wanted(only, "logs") {
        match mesh::victim(ctx) {
            Ok(node) => {
                let (row, exposed) = mesh::open_port(ctx, &node);
                rows.push(row);
                rows.push(mesh::oracle(ctx, &node).await);
                rows.push(mesh::stranger_joins(ctx, &node, exposed).await);
                let mesh_sent = mesh::inject(ctx, &node).await;
                let ws_sent = logs::inject_ws(&node).await;
                rows.extend(logs::check(&node, mesh_sent, ws_sent));
            }
            Err(e) => {
                for name in [
                    "open-cluster-port",
                    "handshake-oracle",
                    "stranger-joins",
                    "log-injection-mesh",
                    "log-injection-ws",
                ] {
                    rows.push(Row::error(name, &e));
                }
            }
        }
    }
    if wanted(only, "memory") {
        rows.push(memory::transaction(ctx).await);
        rows.push(memory::retained(ctx).await);
        rows.push(memory::poison(ctx).await);
        rows.push(memory::channel_names(ctx).await);
    }
    if wanted(only, "frames") {
        match node::Node::start(
            &ctx.bin,
            &["--cluster-engine".into(), "none".into()],
            node::Expect::default(),
        ) {
            Ok(n) => rows.extend(frames::run(ctx, n.ws).await),
            Err(e) => {
                rows.push(Row::error("oversize-fragmented", &e));
                rows.push(Row::error("oversize-frame", e));
            }
        }
    }
    if wanted(only, "admin") {
        rows.extend(admin::run(ctx).await);
    }
    if wanted(only, "identity") {
        rows.push(identity::presence_claim(ctx).await);
        rows.push(identity::jwt_crit(ctx).await);
    }
    rows
}
