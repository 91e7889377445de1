//! The command line: global options (targets, measured PIDs, limits, output) and one subcommand
//! per scenario with its own options. Durations are in seconds and may be fractional.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::conn::Target;
use crate::fanout::FanoutOpts;
use crate::idle::IdleOpts;
use crate::presence::{ChurnOpts, MembersOpts};
use crate::run::RunOpts;
use crate::wire::Proto;

/// Load generator for wscluster: speaks the sgc and Presence wire protocols as clients do and
/// prints throughput, loss, latency, and the node's CPU and memory. One run = one scenario; every
/// run is bounded in time and count and stops by itself.
#[derive(Debug, Parser)]
#[command(name = "wscluster-loadgen", version)]
pub(crate) struct Cli {
    /// Options shared by every scenario.
    #[command(flatten)]
    pub(crate) global: Global,
    /// The scenario to run.
    #[command(subcommand)]
    pub(crate) scenario: Scenario,
}

/// Options shared by every scenario.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// A node to connect to (repeat for several nodes; clients are dealt to them in turn).
    /// Must be a loopback address unless --allow-non-loopback.
    #[arg(long = "url", global = true, default_value = "ws://127.0.0.1:8080")]
    pub(crate) urls: Vec<String>,
    /// The node publishers (and the presence-members requester) connect to; one of --url.
    /// Default: the first --url.
    #[arg(long, global = true)]
    pub(crate) publisher_url: Option<String>,
    /// A node process whose CPU (/proc/PID/stat) and RSS (/proc/PID/status) are measured
    /// (repeat for several nodes; figures are summed).
    #[arg(long = "node-pid", global = true)]
    pub(crate) node_pids: Vec<u32>,
    /// Also print the figures as one JSON line (after the table).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// A name for this run, shown in the table and as "label" in the JSON line.
    #[arg(long, global = true)]
    pub(crate) label: Option<String>,
    /// Runtime worker threads (default: the CPUs this process may run on, e.g. 1 under
    /// `taskset -c 1`); 1 uses a single-threaded runtime.
    #[arg(long, global = true)]
    pub(crate) threads: Option<usize>,
    /// Connections being set up at the same time.
    #[arg(long, global = true, default_value_t = 256)]
    pub(crate) connect_concurrency: usize,
    /// Longest setup of one connection (connect, upgrade, session, subscriptions), seconds.
    #[arg(long, global = true, default_value_t = 30.0)]
    pub(crate) connect_timeout: f64,
    /// Longest setup of all connections, seconds.
    #[arg(long, global = true, default_value_t = 600.0)]
    pub(crate) setup_timeout: f64,
    /// Hard limit on the whole run, seconds: the run is abandoned (exit code 2) after it.
    #[arg(long, global = true, default_value_t = 1800.0)]
    pub(crate) max_run_time: f64,
    /// Allow --url hosts outside the loopback range (never used by the project's scripts).
    #[arg(long, global = true)]
    pub(crate) allow_non_loopback: bool,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub(crate) enum Scenario {
    /// sgc fan-out: N subscribers over C channels, M publishers at a total rate.
    Fanout(FanoutArgs),
    /// K idle subscribed sgc connections: node RSS per connection.
    Idle(IdleArgs),
    /// Presence: members join and leave channels at a steady rate.
    PresenceChurn(ChurnArgs),
    /// Presence: get@members latency on a channel with many members.
    PresenceMembers(MembersArgs),
    /// Presence: publish@msg fan-out to the members of channels.
    PresenceFanout(PresenceFanoutArgs),
    /// Prints one line per run of a file of --json lines (no connection is made).
    Summary {
        /// The file (e.g. target/bench/…/results.jsonl).
        file: std::path::PathBuf,
    },
}

/// Publishing options shared by both fan-out scenarios.
#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// Channels.
    #[arg(long, default_value_t = 100)]
    channels: usize,
    /// Publishing connections.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Total publishes per second over all publishers; 0 = as fast as possible with at most
    /// --max-inflight publishes in flight.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Message body size in bytes (a send timestamp padded with `x`).
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Publishes in flight (not yet delivered to all their receivers), at most.
    #[arg(long, default_value_t = 256)]
    max_inflight: u64,
    /// Deliveries in flight, at most (caps --max-inflight when channels have many receivers;
    /// at least one publish is always allowed).
    #[arg(long, default_value_t = 100_000)]
    max_inflight_deliveries: u64,
    /// Seconds of publishing before the measured window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Longest wait, in seconds, for the window's deliveries after it ends.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Channel names are this prefix followed by the channel number.
    #[arg(long, default_value = "bench-")]
    channel_prefix: String,
    /// With several --url: longest wait, in seconds, for a probe publish to reach every node
    /// before the run starts (the nodes must be clustered).
    #[arg(long, default_value_t = 30.0)]
    probe_timeout: f64,
}

/// `fanout` options.
#[derive(Debug, Args)]
pub(crate) struct FanoutArgs {
    /// Subscriber connections.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Channels each subscriber subscribes to.
    #[arg(long, default_value_t = 1)]
    channels_per_sub: usize,
    /// Deal the subscribers only to the first N --url nodes (default: all). With
    /// --publisher-url on another node, every delivery crosses the cluster.
    #[arg(long)]
    subscriber_nodes: Option<usize>,
    /// Publishing options.
    #[command(flatten)]
    publish: PublishArgs,
}

/// `presence-fanout` options.
#[derive(Debug, Args)]
pub(crate) struct PresenceFanoutArgs {
    /// Members (publishers are among them).
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Channels each member joins.
    #[arg(long, default_value_t = 1)]
    channels_per_member: usize,
    /// Publishing options (default one channel: use --channels 1).
    #[command(flatten)]
    publish: PublishArgs,
}

/// `idle` options.
#[derive(Debug, Args)]
pub(crate) struct IdleArgs {
    /// Connections to open (each subscribes to one channel).
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Channels the connections are spread over.
    #[arg(long, default_value_t = 100)]
    channels: usize,
    /// Seconds to wait after setup (and after closing) before reading RSS.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Seconds to hold the connections idle (node CPU is measured over it).
    #[arg(long, default_value_t = 5.0)]
    hold: f64,
    /// Channel names are this prefix followed by the channel number.
    #[arg(long, default_value = "idle-")]
    channel_prefix: String,
}

/// `presence-churn` options.
#[derive(Debug, Args)]
pub(crate) struct ChurnArgs {
    /// Members.
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Channels the members join and leave (each member uses one).
    #[arg(long, default_value_t = 100)]
    channels: usize,
    /// Join + leave operations per second over all members.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of operations before the measured window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Longest wait, in seconds, for the last confirmations.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Channel names are this prefix followed by the channel number.
    #[arg(long, default_value = "churn-")]
    channel_prefix: String,
}

/// `presence-members` options.
#[derive(Debug, Args)]
pub(crate) struct MembersArgs {
    /// Members, all in one channel.
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// The channel.
    #[arg(long, default_value = "members-bench")]
    channel: String,
    /// Measured get@members requests (one at a time).
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Requests before the measured ones.
    #[arg(long, default_value_t = 20)]
    warmup_requests: usize,
    /// Longest wait, in seconds, for the join storm to drain before measuring.
    #[arg(long, default_value_t = 120.0)]
    settle_timeout: f64,
    /// Longest wait for one reply, seconds.
    #[arg(long, default_value_t = 10.0)]
    reply_timeout: f64,
}

/// Seconds (as given on the command line) to a [`Duration`]; negative or absurd values clamp.
pub(crate) fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::from_secs(86_400))
}

impl Global {
    /// The run options: parses and checks the URLs.
    pub(crate) fn run_opts(&self) -> Result<RunOpts, String> {
        let targets = self
            .urls
            .iter()
            .map(|u| Target::parse(u, self.allow_non_loopback))
            .collect::<Result<Vec<_>, _>>()?;
        let publisher_node =
            match &self.publisher_url {
                None => 0,
                Some(u) => self.urls.iter().position(|x| x == u).ok_or_else(|| {
                    format!("--publisher-url {u} must be one of the --url values")
                })?,
            };
        Ok(RunOpts {
            targets,
            publisher_node,
            node_pids: self.node_pids.iter().map(u32::to_string).collect(),
            connect_concurrency: self.connect_concurrency,
            connect_timeout: secs(self.connect_timeout),
            setup_timeout: secs(self.setup_timeout),
        })
    }
}

impl PublishArgs {
    /// The fan-out options for `receivers` receivers in `per_receiver` channels each.
    fn fanout(&self, proto: Proto, receivers: usize, per_receiver: usize) -> FanoutOpts {
        FanoutOpts {
            proto,
            receivers,
            channels: self.channels,
            channels_per_receiver: per_receiver,
            channel_prefix: self.channel_prefix.clone(),
            publishers: self.publishers,
            rate: self.rate.max(0.0),
            payload: self.payload,
            warmup: secs(self.warmup),
            duration: secs(self.duration),
            drain: secs(self.drain),
            max_inflight: self.max_inflight,
            max_inflight_deliveries: self.max_inflight_deliveries,
            probe_timeout: secs(self.probe_timeout),
            receiver_nodes: None,
        }
    }
}

impl FanoutArgs {
    /// The `fanout` options.
    pub(crate) fn opts(&self) -> FanoutOpts {
        FanoutOpts {
            receiver_nodes: self.subscriber_nodes,
            ..self
                .publish
                .fanout(Proto::Sgc, self.subscribers, self.channels_per_sub)
        }
    }
}

impl PresenceFanoutArgs {
    /// The `presence-fanout` options.
    pub(crate) fn opts(&self) -> FanoutOpts {
        self.publish
            .fanout(Proto::Presence, self.members, self.channels_per_member)
    }
}

impl IdleArgs {
    /// The `idle` options, given the open-file limit in force.
    pub(crate) fn opts(&self, nofile: u64) -> IdleOpts {
        IdleOpts {
            connections: self.connections,
            channels: self.channels,
            channel_prefix: self.channel_prefix.clone(),
            settle: secs(self.settle),
            hold: secs(self.hold),
            nofile,
        }
    }
}

impl ChurnArgs {
    /// The `presence-churn` options.
    pub(crate) fn opts(&self) -> ChurnOpts {
        ChurnOpts {
            members: self.members,
            channels: self.channels,
            channel_prefix: self.channel_prefix.clone(),
            rate: self.rate,
            warmup: secs(self.warmup),
            duration: secs(self.duration),
            drain: secs(self.drain),
        }
    }
}

impl MembersArgs {
    /// The `presence-members` options.
    pub(crate) fn opts(&self) -> MembersOpts {
        MembersOpts {
            members: self.members,
            channel: self.channel.clone(),
            requests: self.requests,
            warmup_requests: self.warmup_requests,
            settle_timeout: secs(self.settle_timeout),
            reply_timeout: secs(self.reply_timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn urls_and_publisher_url_are_checked() {
        let cli = Cli::parse_from([
            "x",
            "--url",
            "ws://127.0.0.1:1",
            "--url",
            "ws://127.0.0.1:2",
            "--publisher-url",
            "ws://127.0.0.1:2",
            "fanout",
        ]);
        let r = cli.global.run_opts().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.publisher_node, 1);
        assert_eq!(r.targets.len(), 2);
        let bad = Cli::parse_from(["x", "--publisher-url", "ws://127.0.0.1:9", "idle"]);
        assert!(bad.global.run_opts().is_err());
        let remote = Cli::parse_from(["x", "--url", "ws://192.168.1.1:80", "idle"]);
        assert!(remote.global.run_opts().is_err());
    }

    #[test]
    fn durations_clamp() {
        assert_eq!(secs(-1.0), Duration::ZERO);
        assert_eq!(secs(1.5), Duration::from_millis(1500));
        assert_eq!(secs(f64::NAN), Duration::ZERO);
    }
}
