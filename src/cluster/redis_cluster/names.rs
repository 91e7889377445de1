//! The Redis channel names of one cluster on Redis Cluster. Every name carries a hash tag, so the
//! cluster decides which slot (and so which master) carries it:
//!
//! - control, in one slot: the shared channel `<prefix>:{ctl}` and each node's own channel
//!   `<prefix>:{ctl}:node:<id>`;
//! - sgc traffic, hashed by channel name to one of `partitions` partitions: `<prefix>:{p<N>}`
//!   (shared routing: every node subscribes to every partition) or `<prefix>:{p<N>}:ch:<name>`
//!   (per-channel routing).
//!
//! A channel always hashes to the same partition (FNV-1a, the same on every node and version), so
//! its traffic stays in order; different partitions spread over the masters.

use std::sync::Arc;

use super::config::RedisClusterConfig;
use crate::cluster::broker::streams::{StreamKind, StreamNames};
use crate::cluster::redis::RedisRouting;

/// The Redis channel names under one prefix.
#[derive(Debug, Clone)]
pub struct Names {
    shared: Arc<str>,
    node_prefix: String,
    partition_prefix: String,
    partitions: u32,
    routing: RedisRouting,
}

/// FNV-1a, 64 bits: a stable hash of a channel name.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The hash tag of a Redis channel name (what is between its first `{` and the next `}`), which
/// decides its slot; the whole name when it has none.
pub fn hash_tag(name: &str) -> &str {
    if let Some(open) = name.find('{')
        && let Some(len) = name[open + 1..].find('}')
        && len > 0
    {
        return &name[open + 1..open + 1 + len];
    }
    name
}

impl Names {
    /// The names the options describe.
    pub fn new(cfg: &RedisClusterConfig) -> Self {
        let prefix = &cfg.prefix;
        Self {
            shared: Arc::from(format!("{prefix}:{{ctl}}")),
            node_prefix: format!("{prefix}:{{ctl}}:node:"),
            partition_prefix: format!("{prefix}:{{p"),
            partitions: cfg.partitions.max(1),
            routing: cfg.routing,
        }
    }

    /// The partition sgc channel `name` hashes to.
    pub fn partition_of(&self, name: &str) -> u32 {
        (fnv1a(name) % u64::from(self.partitions)) as u32
    }

    /// Partition `n`'s own channel (shared routing).
    pub fn partition(&self, n: u32) -> String {
        format!("{}{n}}}", self.partition_prefix)
    }

    /// The channels every node subscribes to whatever its clients do: the shared channel, the
    /// node's own and, in shared routing, every partition.
    pub fn fixed(&self, node_id: &str) -> Vec<String> {
        let mut v = vec![self.shared.to_string(), self.node(node_id)];
        if self.routing == RedisRouting::Shared {
            v.extend((0..self.partitions).map(|n| self.partition(n)));
        }
        v
    }

    /// Whether `name` is on the control slot (the shared channel and the node channels).
    pub fn is_control(&self, name: &str) -> bool {
        hash_tag(name) == "ctl"
    }
}

impl StreamNames for Names {
    fn shared(&self) -> &Arc<str> {
        &self.shared
    }

    fn node(&self, id: &str) -> String {
        format!("{}{id}", self.node_prefix)
    }

    fn channel(&self, name: &str) -> String {
        let p = self.partition_of(name);
        match self.routing {
            RedisRouting::Shared => self.partition(p),
            RedisRouting::Channel => format!("{}{p}}}:ch:{name}", self.partition_prefix),
        }
    }

    fn kind_of(&self, name: &str) -> StreamKind {
        if name == &*self.shared {
            StreamKind::Shared
        } else if name.starts_with(&self.node_prefix) {
            StreamKind::Node
        } else if name.starts_with(&self.partition_prefix) {
            StreamKind::Channel
        } else {
            StreamKind::Foreign
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(routing: RedisRouting) -> Names {
        Names::new(&RedisClusterConfig {
            prefix: "wsc".into(),
            partitions: 8,
            routing,
            ..RedisClusterConfig::default()
        })
    }

    #[test]
    fn control_shares_one_tag_and_channels_hash_to_partitions() {
        let n = names(RedisRouting::Channel);
        assert_eq!(&**n.shared(), "wsc:{ctl}");
        assert_eq!(n.node("a{b}"), "wsc:{ctl}:node:a{b}");
        assert_eq!(hash_tag(&n.node("a{b}")), "ctl");
        assert!(n.is_control(n.shared()) && n.is_control(&n.node("x")));
        let p = n.partition_of("room:1");
        assert!(p < 8);
        assert_eq!(n.channel("room:1"), format!("wsc:{{p{p}}}:ch:room:1"));
        assert_eq!(hash_tag(&n.channel("room:1")), format!("p{p}"));
        assert_eq!(n.kind_of("wsc:{ctl}"), StreamKind::Shared);
        assert_eq!(n.kind_of("wsc:{ctl}:node:b"), StreamKind::Node);
        assert_eq!(n.kind_of(&n.channel("x")), StreamKind::Channel);
        assert_eq!(n.kind_of("other"), StreamKind::Foreign);
        assert_eq!(n.fixed("me").len(), 2);
    }

    #[test]
    fn shared_routing_subscribes_every_partition() {
        let n = names(RedisRouting::Shared);
        let fixed = n.fixed("me");
        assert_eq!(fixed.len(), 2 + 8);
        assert!(fixed.contains(&n.channel("room:1")));
        assert_eq!(n.kind_of(&n.partition(3)), StreamKind::Channel);
        assert_eq!(hash_tag(&n.partition(3)), "p3");
    }

    #[test]
    fn channels_spread_over_partitions_stably() {
        let n = names(RedisRouting::Shared);
        let used: std::collections::HashSet<u32> =
            (0..200).map(|i| n.partition_of(&format!("c{i}"))).collect();
        assert_eq!(used.len(), 8, "200 channels use every one of 8 partitions");
        assert_eq!(n.partition_of("room:1"), n.partition_of("room:1"));
        assert_eq!(hash_tag("plain"), "plain");
        assert_eq!(hash_tag("a{}b"), "a{}b");
    }
}
