//! The command line. Each flag becomes a dotted option key for [`Config::load`], so flags, the
//! environment and the file set the very same options (see `docs/configuration.md`).

use std::path::PathBuf;

use wscluster::Config;
use wscluster::config::{ConfigError, Sources};

/// wscluster: a clustered WebSocket pub/sub server for sgcWebSockets clients.
///
/// Every option can be set in a TOML file (--config), by an environment variable
/// (WSCLUSTER_<SECTION>__<FIELD>, e.g. WSCLUSTER_SERVER__MAX_MESSAGE_SIZE=65536) or by a flag
/// (--set section.field=value); flags win over the environment, which wins over the file.
/// Short variables: WSCLUSTER_CONFIG, WSCLUSTER_LISTEN, WSCLUSTER_NODE_NAME, WSCLUSTER_LOG_LEVEL,
/// WSCLUSTER_LOG_FORMAT. Other WSCLUSTER_ variables without `__` (such as the WSCLUSTER_SERVICE_HOST
/// Kubernetes sets) are ignored. See wscluster.example.toml and docs/configuration.md.
#[derive(Debug, clap::Parser)]
#[command(name = "wscluster", version)]
pub(crate) struct Args {
    /// TOML configuration file [env: WSCLUSTER_CONFIG]
    #[arg(long, value_name = "FILE", env = "WSCLUSTER_CONFIG", hide_env = true)]
    pub(crate) config: Option<PathBuf>,

    /// Address and port to listen on, e.g. 127.0.0.1:0 (server.listen) [default: 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) listen: Option<String>,

    /// The node's name in the cluster (node.name) [default: <host name>:<port>]
    #[arg(long, value_name = "NAME")]
    pub(crate) node_name: Option<String>,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive (node.log_level)
    /// [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub(crate) log_level: Option<String>,

    /// Log format (node.log_format) [default: human]
    #[arg(long, value_name = "FORMAT", value_parser = ["human", "json"])]
    pub(crate) log_format: Option<String>,

    /// Cluster engine: none, mesh, redis, redis-cluster or nats (cluster.engine) [default: mesh]
    #[arg(long, value_name = "ENGINE", value_parser = ["none", "mesh", "redis", "redis-cluster", "nats"])]
    pub(crate) cluster_engine: Option<String>,

    /// The mesh cluster port; 0 picks a free one (cluster.mesh.port) [default: 5410]
    #[arg(long, value_name = "PORT")]
    pub(crate) cluster_port: Option<String>,

    /// A peer's cluster address to dial, HOST:PORT (repeatable; cluster.mesh.peers)
    #[arg(long = "peer", value_name = "HOST:PORT")]
    pub(crate) peers: Vec<String>,

    /// A DNS name whose addresses are all peers, NAME:PORT (e.g. a Kubernetes headless Service);
    /// resolved again every cluster.mesh.dns_refresh_ms (repeatable; cluster.mesh.peers_dns)
    #[arg(long = "peers-dns", value_name = "NAME:PORT")]
    pub(crate) peers_dns: Vec<String>,

    /// The shared cluster secret (cluster.secret); it shows in the process list: prefer
    /// --cluster-secret-file or WSCLUSTER_CLUSTER__SECRET
    #[arg(long, value_name = "SECRET")]
    pub(crate) cluster_secret: Option<String>,

    /// A file holding the shared cluster secret, one trailing newline ignored; make one with
    /// `wscluster gen-secret > FILE` (cluster.secret_file)
    #[arg(long, value_name = "FILE")]
    pub(crate) cluster_secret_file: Option<String>,

    /// The cluster's name; nodes of other clusters are refused (cluster.name) [default: wscluster]
    #[arg(long, value_name = "NAME")]
    pub(crate) cluster_name: Option<String>,

    /// Redis URL, redis://[USER:PASSWORD@]HOST:PORT/DB or rediss://... for TLS; wins over
    /// --redis-host/--redis-port (cluster.redis.url)
    #[arg(long, value_name = "URL")]
    pub(crate) redis_url: Option<String>,

    /// Redis host (cluster.redis.host) [default: 127.0.0.1]
    #[arg(long, value_name = "HOST")]
    pub(crate) redis_host: Option<String>,

    /// Redis port (cluster.redis.port) [default: 6379]
    #[arg(long, value_name = "PORT")]
    pub(crate) redis_port: Option<String>,

    /// The shared Redis channel, also the prefix of the engine's other Redis channels
    /// (cluster.redis.channel) [default: wscluster]
    #[arg(long, value_name = "NAME")]
    pub(crate) redis_channel: Option<String>,

    /// Redis routing: shared (one Redis channel) or channel (a Redis channel per channel)
    /// (cluster.redis.routing) [default: shared]
    #[arg(long, value_name = "MODE", value_parser = ["shared", "channel"])]
    pub(crate) redis_routing: Option<String>,

    /// A Redis Cluster seed node, HOST:PORT (repeatable; cluster.redis_cluster.nodes)
    #[arg(long = "redis-cluster-node", value_name = "HOST:PORT")]
    pub(crate) redis_cluster_nodes: Vec<String>,

    /// A NATS server, nats://[USER:PASSWORD@]HOST:PORT or tls://... (repeatable;
    /// cluster.nats.urls)
    #[arg(long = "nats-url", value_name = "URL")]
    pub(crate) nats_urls: Vec<String>,

    /// The first subject tokens of the NATS engine's subjects (cluster.nats.subject_prefix)
    /// [default: wscluster]
    #[arg(long, value_name = "PREFIX")]
    pub(crate) nats_subject_prefix: Option<String>,

    /// NATS routing: shared (one subject) or channel (a subject per channel)
    /// (cluster.nats.routing) [default: shared]
    #[arg(long, value_name = "MODE", value_parser = ["shared", "channel"])]
    pub(crate) nats_routing: Option<String>,

    /// Set any option by its file key, e.g. --set server.max_message_size=65536 (repeatable;
    /// applied before the flags above)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) set: Vec<String>,

    /// Print the effective configuration as TOML (secrets, passwords and tokens shown as
    /// <redacted>) and exit
    #[arg(long)]
    pub(crate) print_config: bool,

    /// A subcommand instead of running a node (check-config, version, health)
    #[command(subcommand)]
    pub(crate) command: Option<super::commands::Command>,
}

impl Args {
    /// The configuration these flags, the process environment and the file (`file` instead of
    /// `--config` when given) give, checked as a start would: every problem, each as one line.
    /// Also returns the sources, whose ignored variables the caller logs once logging is up.
    pub(crate) fn load_checked(
        &self,
        file: Option<PathBuf>,
    ) -> Result<(Config, Sources), Vec<String>> {
        let mut sources = self.sources().map_err(|e| vec![e.to_string()])?;
        if file.is_some() {
            sources.file = file;
        }
        match Config::load_checked(&sources) {
            Ok(config) => Ok((config, sources)),
            Err(problems) => Err(problems.iter().map(ToString::to_string).collect()),
        }
    }

    /// The layers: the file (flag, else `WSCLUSTER_CONFIG`), the environment, then `--set` in the
    /// order given, then the dedicated flags.
    fn sources(&self) -> Result<Sources, ConfigError> {
        let mut sources = Sources::from_process_env();
        sources.file = self.config.clone();
        for kv in &self.set {
            let Some((key, value)) = kv.split_once('=') else {
                return Err(ConfigError::Flag {
                    flag: format!("--set {kv}"),
                    message: "expected KEY=VALUE, e.g. server.max_message_size=65536".into(),
                });
            };
            let key = key.trim();
            sources
                .flags
                .push((format!("--set {key}"), key.to_owned(), value.to_owned()));
        }
        for (flag, key, value) in [
            ("--listen", "server.listen", &self.listen),
            ("--node-name", "node.name", &self.node_name),
            ("--log-level", "node.log_level", &self.log_level),
            ("--log-format", "node.log_format", &self.log_format),
            ("--cluster-engine", "cluster.engine", &self.cluster_engine),
            ("--cluster-port", "cluster.mesh.port", &self.cluster_port),
            ("--cluster-secret", "cluster.secret", &self.cluster_secret),
            (
                "--cluster-secret-file",
                "cluster.secret_file",
                &self.cluster_secret_file,
            ),
            ("--cluster-name", "cluster.name", &self.cluster_name),
            ("--redis-url", "cluster.redis.url", &self.redis_url),
            ("--redis-host", "cluster.redis.host", &self.redis_host),
            ("--redis-port", "cluster.redis.port", &self.redis_port),
            (
                "--redis-channel",
                "cluster.redis.channel",
                &self.redis_channel,
            ),
            (
                "--redis-routing",
                "cluster.redis.routing",
                &self.redis_routing,
            ),
            (
                "--nats-subject-prefix",
                "cluster.nats.subject_prefix",
                &self.nats_subject_prefix,
            ),
            ("--nats-routing", "cluster.nats.routing", &self.nats_routing),
        ] {
            if let Some(v) = value {
                sources
                    .flags
                    .push((flag.to_owned(), key.to_owned(), v.clone()));
            }
        }
        for (flag, key, values) in [
            ("--peer", "cluster.mesh.peers", &self.peers),
            ("--peers-dns", "cluster.mesh.peers_dns", &self.peers_dns),
            (
                "--redis-cluster-node",
                "cluster.redis_cluster.nodes",
                &self.redis_cluster_nodes,
            ),
            ("--nats-url", "cluster.nats.urls", &self.nats_urls),
        ] {
            if !values.is_empty() {
                let list: Vec<String> = values.iter().map(|p| toml_string(p.trim())).collect();
                sources.flags.push((
                    flag.to_owned(),
                    key.to_owned(),
                    format!("[{}]", list.join(", ")),
                ));
            }
        }
        Ok(sources)
    }
}

/// `s` as a TOML basic string (an element of the `--peer` array).
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn flags_become_option_keys_in_order() {
        let args = Args::try_parse_from([
            "wscluster",
            "--listen",
            "127.0.0.1:0",
            "--set",
            "server.listen=127.0.0.1:5",
            "--set",
            "node.log_level = debug",
            "--node-name",
            "alpha",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let flags: Vec<(String, String)> = args
            .sources()
            .unwrap_or_else(|e| panic!("{e}"))
            .flags
            .into_iter()
            .map(|(_, k, v)| (k, v))
            .collect();
        let pairs: Vec<(&str, &str)> = flags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("server.listen", "127.0.0.1:5"),
                ("node.log_level", " debug"),
                ("server.listen", "127.0.0.1:0"),
                ("node.name", "alpha"),
            ]
        );
    }

    #[test]
    fn repeated_peers_dns_flags_become_one_list() {
        let args = Args::try_parse_from([
            "wscluster",
            "--peers-dns",
            "a.example:5410",
            "--peers-dns",
            "b.example:5411",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let config = Config::load(&Sources {
            flags: args.sources().unwrap_or_else(|e| panic!("{e}")).flags,
            ..Sources::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.cluster.mesh.peers_dns,
            ["a.example:5410", "b.example:5411"]
        );
        let bad = Args::try_parse_from(["wscluster", "--peers-dns", "no-port"])
            .unwrap_or_else(|e| panic!("{e}"));
        let err = Config::load(&Sources {
            flags: bad.sources().unwrap_or_else(|e| panic!("{e}")).flags,
            ..Sources::default()
        });
        assert!(err.is_err(), "a name without a port is refused");
    }

    #[test]
    fn set_without_equals_is_an_error() {
        let args = Args::try_parse_from(["wscluster", "--set", "server.listen"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(args.sources(), Err(ConfigError::Flag { .. })));
    }

    #[test]
    fn log_format_is_checked_by_the_parser() {
        assert!(Args::try_parse_from(["wscluster", "--log-format", "xml"]).is_err());
    }
}
