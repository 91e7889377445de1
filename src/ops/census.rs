//! Cluster-wide counts: what one node reports about itself ([`NodeStats`]), the questions the
//! operations API asks the other nodes through [`crate::Cluster::query`] and their answers
//! (versioned postcard), and the merge of every node's report into one view ([`Census`]).
//!
//! sgc subscribers are local to each node, so channel counts are summed over the nodes' reports.
//! Presence needs no question: every node holds the whole cluster's roster.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// First byte of every question and answer; a node that reads another version answers nothing
/// useful and shows up as "unreadable".
const VERSION: u8 = 1;

/// At most this many channels are listed in one node's report (the total is always given).
pub(crate) const MAX_CHANNELS_PER_REPORT: usize = 10_000;

/// What a node reports about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    /// Its readiness (`GET /ready`).
    pub ready: bool,
    /// Open WebSocket connections, every protocol.
    pub connections: u64,
    /// Open sgc connections.
    pub sgc_connections: u64,
    /// sgc subscriptions (connection × channel pairs).
    pub sgc_subscriptions: u64,
    /// Presence members bound to its connections.
    pub presence_members: u64,
    /// Peers it has a live link with.
    pub peers: u64,
    /// sgc channels with local subscribers, with their counts, sorted by name (at most
    /// [`MAX_CHANNELS_PER_REPORT`]).
    pub channels: Vec<(String, u64)>,
    /// How many sgc channels it has in all (more than listed when the list was cut).
    pub channels_total: u64,
}

/// A question to the other nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Question {
    /// "Send me your [`NodeStats`]."
    Stats,
    /// "Close connection `id` if it is yours."
    Disconnect {
        /// The connection's GUID.
        id: String,
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// "Close the connection of Presence member `id` if it is yours."
    DisconnectMember {
        /// The member's id.
        id: String,
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Answer {
    /// The node's stats.
    Stats(NodeStats),
    /// Whether the node had (and closed) the connection.
    Disconnected(bool),
}

/// Encodes a question or an answer.
pub(crate) fn encode<T: Serialize>(value: &T) -> Bytes {
    let mut out = vec![VERSION];
    match postcard::to_extend(value, out) {
        Ok(v) => out = v,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode an operations query");
            out = Vec::new();
        }
    }
    Bytes::from(out)
}

/// Decodes a question or an answer; `None` for another version, empty or garbage bytes.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => postcard::from_bytes(rest).ok(),
        _ => None,
    }
}

/// One sgc channel, cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelCount {
    /// The channel.
    pub name: String,
    /// Subscribers on every node that answered.
    pub subscribers: u64,
    /// Subscribers per node (nodes without any are left out).
    pub nodes: BTreeMap<String, u64>,
}

/// One node's line in the cluster view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeLine {
    /// Its id.
    pub node: String,
    /// This node (the one answering the HTTP request).
    #[serde(rename = "self")]
    pub this: bool,
    /// `answered`, `missing` (no answer in time) or `unreadable` (an answer this node cannot
    /// read: another version, or no operations surface there).
    pub answer: &'static str,
    /// What it reported (absent unless `answer` is `answered`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<NodeStatsView>,
}

/// [`NodeStats`] without the channel list, for JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatsView {
    /// See [`NodeStats::ready`].
    pub ready: bool,
    /// See [`NodeStats::connections`].
    pub connections: u64,
    /// See [`NodeStats::sgc_connections`].
    pub sgc_connections: u64,
    /// See [`NodeStats::sgc_subscriptions`].
    pub sgc_subscriptions: u64,
    /// See [`NodeStats::channels_total`].
    pub sgc_channels: u64,
    /// See [`NodeStats::presence_members`].
    pub presence_members: u64,
    /// See [`NodeStats::peers`].
    pub peers: u64,
}

impl From<&NodeStats> for NodeStatsView {
    fn from(s: &NodeStats) -> Self {
        Self {
            ready: s.ready,
            connections: s.connections,
            sgc_connections: s.sgc_connections,
            sgc_subscriptions: s.sgc_subscriptions,
            sgc_channels: s.channels_total,
            presence_members: s.presence_members,
            peers: s.peers,
        }
    }
}

/// Every node's report merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Census {
    /// One line per node: this one first, then the others by id.
    pub nodes: Vec<NodeLine>,
    /// sgc channels, cluster-wide, sorted by name.
    pub channels: Vec<ChannelCount>,
    /// Whether a node's channel list was cut at [`MAX_CHANNELS_PER_REPORT`].
    pub channels_truncated: bool,
    /// Sums over the nodes that answered.
    pub totals: Totals,
}

/// Sums over the nodes that answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// WebSocket connections.
    pub connections: u64,
    /// sgc subscriptions.
    pub sgc_subscriptions: u64,
    /// Presence members (local ones, summed: the cluster's members).
    pub presence_members: u64,
}

impl Census {
    /// Merges this node's report (`me`) with the others' answers (`(node, bytes)`) and the nodes
    /// that did not answer.
    pub fn merge(
        me: (&str, &NodeStats),
        replies: &[(std::sync::Arc<str>, Bytes)],
        missing: &[std::sync::Arc<str>],
    ) -> Census {
        let mut census = Census::default();
        let mut channels: BTreeMap<String, ChannelCount> = BTreeMap::new();
        let mut add = |census: &mut Census, node: &str, this: bool, s: &NodeStats| {
            census.totals.connections += s.connections;
            census.totals.sgc_subscriptions += s.sgc_subscriptions;
            census.totals.presence_members += s.presence_members;
            census.channels_truncated |= s.channels_total > s.channels.len() as u64;
            for (name, n) in &s.channels {
                let c = channels
                    .entry(name.clone())
                    .or_insert_with(|| ChannelCount {
                        name: name.clone(),
                        subscribers: 0,
                        nodes: BTreeMap::new(),
                    });
                c.subscribers += n;
                *c.nodes.entry(node.to_owned()).or_default() += n;
            }
            census.nodes.push(NodeLine {
                node: node.to_owned(),
                this,
                answer: "answered",
                stats: Some(s.into()),
            });
        };
        add(&mut census, me.0, true, me.1);
        for (node, bytes) in replies {
            match decode::<Answer>(bytes) {
                Some(Answer::Stats(s)) => add(&mut census, node, false, &s),
                _ => census.nodes.push(NodeLine {
                    node: node.to_string(),
                    this: false,
                    answer: "unreadable",
                    stats: None,
                }),
            }
        }
        for node in missing {
            census.nodes.push(NodeLine {
                node: node.to_string(),
                this: false,
                answer: "missing",
                stats: None,
            });
        }
        census.nodes[1..].sort_by(|a, b| a.node.cmp(&b.node));
        census.channels = channels.into_values().collect();
        census
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn stats(channels: &[(&str, u64)]) -> NodeStats {
        NodeStats {
            ready: true,
            connections: 2,
            sgc_subscriptions: channels.iter().map(|c| c.1).sum(),
            channels: channels
                .iter()
                .map(|(n, c)| ((*n).to_owned(), *c))
                .collect(),
            channels_total: channels.len() as u64,
            ..NodeStats::default()
        }
    }

    #[test]
    fn questions_and_answers_round_trip_and_garbage_is_none() {
        let q = Question::Disconnect {
            id: "ABC".into(),
            code: 4000,
            reason: "bye".into(),
        };
        assert_eq!(decode::<Question>(&encode(&q)), Some(q));
        let a = Answer::Stats(stats(&[("x", 1)]));
        assert_eq!(decode::<Answer>(&encode(&a)), Some(a));
        assert_eq!(decode::<Answer>(b""), None);
        assert_eq!(decode::<Answer>(&[2, 0]), None);
        assert_eq!(decode::<Answer>(&[1, 200, 200]), None);
    }

    #[test]
    fn channel_counts_are_summed_across_nodes() {
        let me = stats(&[("a", 1), ("b", 2)]);
        let replies = vec![
            (Arc::from("n3"), encode(&Answer::Stats(stats(&[("b", 5)])))),
            (Arc::from("n2"), Bytes::from_static(b"\x09junk")),
        ];
        let missing = vec![Arc::from("n4")];
        let c = Census::merge(("n1", &me), &replies, &missing);
        let names: Vec<(&str, &str)> = c.nodes.iter().map(|n| (&*n.node, n.answer)).collect();
        assert_eq!(
            names,
            [
                ("n1", "answered"),
                ("n2", "unreadable"),
                ("n3", "answered"),
                ("n4", "missing")
            ]
        );
        assert_eq!(c.channels.len(), 2);
        assert_eq!(c.channels[1].name, "b");
        assert_eq!(c.channels[1].subscribers, 7);
        assert_eq!(c.channels[1].nodes.get("n3"), Some(&5));
        assert_eq!(c.totals.connections, 4);
        assert_eq!(c.totals.sgc_subscriptions, 8);
        assert!(!c.channels_truncated);
    }
}
