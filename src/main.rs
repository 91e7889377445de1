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
//! Exit codes: 0 after a signal, 1 when the node fails (e.g. the port is taken), 2 for a bad
//! configuration or command line.

use std::process::ExitCode;

use clap::Parser as _;

mod cli;

/// Exit code for a configuration or command-line error (clap uses the same for usage errors).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(cli::gen_secret::NAME) {
        return cli::gen_secret::run(&argv[2..]);
    }
    let args = cli::args::Args::parse();
    let config = match args.load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wscluster: {e:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.print_config {
        return match config.to_toml_string() {
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
    cli::node::raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
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
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "node failed");
            eprintln!("wscluster: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
