//! `wscluster-loadgen`: the load generator of wscluster's benchmarks (see `bench/README.md`).
//!
//! It is a client of the node's *wire* protocols only (sgc `esegece.com`, Presence
//! `presence.esegece.com`, `docs/wire.md`), never of its internals, so it measures any
//! node or cluster that speaks them. It prints figures; it asserts nothing.
//!
//! Map, in the order a run uses it:
//! - `cli`: flags → options; `run`: options shared by scenarios, setup progress, CPU windows.
//! - `conn`: targets (loopback only by default), upgrade, reading loop; `session`: a connection's
//!   setup as a real client does it (session, subscribe / member + channel joins).
//! - `wire`: the frames sent and the classification of frames received; `payload`: the timestamped
//!   message body; `clock`: the one monotonic clock of the process.
//! - scenarios: `fanout` (sgc and Presence fan-out, with `layout`, `publisher` paced by `pacing`,
//!   `flow` and `tally`), `idle`,
//!   `presence` (churn, members) over a `members` pool.
//! - figures: `latency` (HdrHistogram), `procfs` (node CPU and RSS), `report` (table and JSON).

mod cli;
mod clock;
mod conn;
mod fanout;
mod flow;
mod idle;
mod latency;
mod layout;
mod members;
mod pacing;
mod payload;
mod presence;
mod procfs;
mod publisher;
mod report;
mod run;
mod session;
mod summary;
mod tally;
mod wire;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Scenario};
use crate::report::Report;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Scenario::Summary { file } = &cli.scenario {
        return match std::fs::read_to_string(file) {
            Ok(text) => {
                print!("{}", summary::summarize(&text));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wscluster-loadgen: {}: {e}", file.display());
                ExitCode::FAILURE
            }
        };
    }
    let nofile = raise_nofile_limit();
    let threads = cli.global.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wscluster-loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = clock::now_ns();
    let max_run_time = cli::secs(cli.global.max_run_time);
    let outcome = runtime
        .block_on(async { tokio::time::timeout(max_run_time, run(&cli, nofile, threads)).await });
    // Connections still open are dropped with the runtime; do not wait for stragglers.
    runtime.shutdown_background();
    match outcome {
        Ok(Ok(report)) => {
            print!("{}", report.table());
            if cli.global.json {
                println!("{}", report.json_line());
            }
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("wscluster-loadgen: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!(
                "wscluster-loadgen: abandoned after --max-run-time {}s",
                cli.global.max_run_time
            );
            ExitCode::from(2)
        }
    }
}

/// Runs the chosen scenario and adds the run's context to its report.
async fn run(cli: &Cli, nofile: u64, threads: usize) -> Result<Report, String> {
    let r = cli.global.run_opts()?;
    let mut report = match &cli.scenario {
        Scenario::Fanout(a) => fanout::run(&a.opts(), &r).await?,
        Scenario::PresenceFanout(a) => fanout::run(&a.opts(), &r).await?,
        Scenario::Idle(a) => idle::run(&a.opts(nofile), &r).await?,
        Scenario::PresenceChurn(a) => presence::churn(&a.opts(), &r).await?,
        Scenario::PresenceMembers(a) => presence::members(&a.opts(), &r).await?,
        Scenario::Summary { .. } => return Err("summary takes no connection".to_owned()),
    };
    if let Some(label) = &cli.global.label {
        report.set_label(label);
    }
    report.section("machine");
    report.int(
        "cpus_online",
        "CPUs online (nproc --all)",
        cpus_online() as u64,
        "",
    );
    report.int(
        "loadgen_threads",
        "load generator threads",
        threads as u64,
        "",
    );
    Ok(report)
}

/// Raises this process's soft open-file limit to its hard limit; returns the soft limit in force.
fn raise_nofile_limit() -> u64 {
    match rlimit::Resource::NOFILE.get() {
        Ok((soft, hard)) if soft < hard => match rlimit::Resource::NOFILE.set(hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                eprintln!("wscluster-loadgen: cannot raise the open-file limit to {hard}: {e}");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(e) => {
            eprintln!("wscluster-loadgen: cannot read the open-file limit: {e}");
            1024
        }
    }
}

/// CPUs online on the machine (not only those this process may use).
fn cpus_online() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| parse_cpu_list(s.trim()))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Counts the CPUs of a list like `0-3,5`.
fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut n = 0;
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => n += b.parse::<usize>().ok()? - a.parse::<usize>().ok()? + 1,
            None => {
                part.parse::<usize>().ok()?;
                n += 1;
            }
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(parse_cpu_list("0-1"), Some(2));
        assert_eq!(parse_cpu_list("0-3,5,7-8"), Some(7));
        assert_eq!(parse_cpu_list("x"), None);
    }
}
