//! The `wscluster` binary: one node of a wscluster cluster.
//!
//! Reads its configuration (defaults < `--config` TOML file < `WSCLUSTER_…` environment < flags),
//! starts logging, raises the open-file limit, serves the sgc protocol until SIGINT or SIGTERM, then
//! closes every connection and exits 0. It prints one line on standard output once the listener is
//! bound, with the real address (port 0 picks a free port):
//!
//! ```text
//! wscluster listening on ws://127.0.0.1:40123 (node alpha)
//! ```
//!
//! Exit codes: 0 after a signal, 1 when the node fails (e.g. the port is taken: one line naming
//! the flag or option that sets that port), 2 for a bad configuration or command line (every
//! problem listed, including certificate, key and CA files that cannot be read or used).
//!
//! Subcommands (`src/cli/commands.rs`): `check-config` checks the configuration as a start would,
//! `version`, and `health` asks a node's `/health` (for container health checks).

use std::process::ExitCode;

use clap::Parser as _;

mod cli;

use cli::commands::{EXIT_CONFIG, report_problems};

fn main() -> ExitCode {
    let args = cli::args::Args::parse();
    if let Some(command) = &args.command {
        return cli::commands::run(command, &args);
    }
    let (config, sources) = match args.load_checked(None) {
        Ok(c) => c,
        Err(problems) => {
            report_problems(&problems);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.print_config {
        return match cli::redact::redacted_toml(&config) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wscluster: cannot print the configuration: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = cli::logging::init(&config.node) {
        eprintln!("wscluster: {e:#}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if args.cluster_secret.is_some() {
        tracing::warn!(
            "--cluster-secret shows the secret in the process list: prefer --cluster-secret-file \
             (cluster.secret_file) or WSCLUSTER_CLUSTER__SECRET"
        );
    }
    for variable in sources.ignored_env() {
        tracing::debug!(
            variable,
            "environment variable ignored: not an option (options are WSCLUSTER_<SECTION>__<FIELD> \
             or a documented short name)"
        );
    }
    cli::node::raise_open_file_limit();
    let runtime = match runtime_builder(config.node.worker_threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wscluster: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli::node::run(config));
    // Everything the node owns has been closed by now; a blocking task still running (a DNS
    // lookup of `--peers-dns` stuck on an unresponsive resolver) must not hold the exit.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // One line on standard error: through the logger so JSON logs stay JSON, or printed when
        // the log filter drops errors.
        Err(e) => {
            let line = match e.downcast_ref::<cli::node::PortInUse>() {
                Some(in_use) => in_use.to_string(),
                None => format!("node failed: {e:#}"),
            };
            if tracing::enabled!(tracing::Level::ERROR) {
                tracing::error!("{line}");
            } else {
                eprintln!("wscluster: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The async runtime `node.worker_threads` asks for: 1 is a single-threaded runtime (every task
/// on the main thread: no cross-thread wake-ups), 0 one worker per usable CPU, N that many.
fn runtime_builder(worker_threads: usize) -> tokio::runtime::Builder {
    match worker_threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        0 => tokio::runtime::Builder::new_multi_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
    }
}
