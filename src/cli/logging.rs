//! Logging: `tracing` events to standard error, human-readable or one JSON object per line,
//! filtered by `node.log_level`. Standard output is kept for the one "listening on" line.
//!
//! Human logs are coloured only when standard error is a terminal and `NO_COLOR` is not set to a
//! non-empty value (the `NO_COLOR` convention): files, pipes and journals get plain text. JSON
//! logs write every integer field as a string ([`super::json_log`]).

use std::io::IsTerminal as _;

use anyhow::{Context as _, anyhow};
use tracing_subscriber::EnvFilter;
use wscluster::config::NodeConfig;

use super::json_log::{JsonLines, JsonStringFields};

/// Level names accepted as a whole filter (anything else must be a `tracing` directive).
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Installs the global subscriber.
pub(crate) fn init(node: &NodeConfig) -> anyhow::Result<()> {
    let filter = filter(&node.log_level)?;
    // Colours only on a terminal: a log file or journal gets no escape sequences at all, so any
    // control character there would have to come from input (which is escaped).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = if node.log_format == "json" {
        builder
            .with_ansi(false)
            .fmt_fields(JsonStringFields)
            .event_format(JsonLines)
            .try_init()
    } else {
        builder
            .with_ansi(colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR"),
            ))
            .try_init()
    };
    installed.map_err(|e| anyhow!("cannot install the logger: {e}"))
}

/// Whether human logs are coloured: on a terminal, unless `NO_COLOR` is set to a non-empty value.
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The filter for `level`. A single word must be a level name: `tracing` would take any other word
/// as a module name and silently log nothing useful (`--log-level verbose`).
fn filter(level: &str) -> anyhow::Result<EnvFilter> {
    let level = level.trim();
    let is_directive = level.contains(['=', ',', ':', '[']);
    if !is_directive && !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
        return Err(anyhow!(
            "node.log_level: {level:?} is not a level ({}) nor a filter directive such as \
             \"info,wscluster::transport=debug\"",
            LEVELS.join(", ")
        ));
    }
    // The Redis Cluster client logs every failed attempt to reach a node that is away (many a
    // second); the redis-cluster engine logs what matters once, so a plain level keeps the
    // client's own lines to errors. A directive decides for itself.
    let level = if is_directive || level.eq_ignore_ascii_case("off") {
        level.to_owned()
    } else {
        format!("{level},{QUIET_CLIENT}")
    };
    EnvFilter::try_new(&level).with_context(|| format!("node.log_level: {level:?}"))
}

/// The directive added to a plain level: the Redis Cluster client's own log lines (through
/// `log`), errors only.
const QUIET_CLIENT: &str = "redis::cluster_handling=error";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_are_accepted() {
        for ok in [
            "info",
            "DEBUG",
            "off",
            "info,wscluster::transport=debug",
            "wscluster=trace",
        ] {
            assert!(filter(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn a_plain_level_quiets_the_redis_cluster_client_and_off_stays_off() {
        assert_eq!(
            filter("info").map(|f| f.to_string()).ok().as_deref(),
            Some("redis::cluster_handling=error,info")
        );
        assert_eq!(
            filter("off").map(|f| f.to_string()).ok().as_deref(),
            Some("off")
        );
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }

    #[test]
    fn unknown_words_are_refused() {
        for bad in ["verbose", "", "info,wscluster=loud"] {
            assert!(filter(bad).is_err(), "{bad}");
        }
    }
}
