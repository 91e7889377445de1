//! Who connects where and subscribes to what: the pure arithmetic of a fan-out run.
//!
//! Subscribers are dealt to the `U` nodes in turn: subscriber `i` connects to node `i mod U` and is
//! that node's `j = i div U`-th subscriber. On each node, subscriber `j` takes the `per_sub`
//! consecutive "slots" `j·per_sub … j·per_sub + per_sub − 1`, and slot `s` is channel `s mod C`.
//! Every node therefore walks the channels in the same order on its own: a channel's subscriber
//! count differs by at most one between channels of a node, and each channel has subscribers on
//! every node as soon as a node has `C / per_sub` subscribers. Example (workload W): 900
//! subscribers, 100 channels, 3 nodes: each node gets 300 subscribers, 3 per channel, so each
//! channel has 9 subscribers, 3 on each node. Dealing in turn also spreads the connection storm
//! over the nodes.
//!
//! Publishers publish round-robin over channels: publish number `k` of publisher `p` (of `M`) goes
//! to channel `(k·M + p) mod C`, so together they walk the channels in order.

/// The fan-out layout of one run.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// Number of subscriber connections.
    pub(crate) subscribers: usize,
    /// Number of channels.
    pub(crate) channels: usize,
    /// Channels each subscriber subscribes to (capped at `channels`).
    pub(crate) per_sub: usize,
    /// Number of nodes (target URLs).
    pub(crate) nodes: usize,
}

impl Layout {
    /// A layout, with every count at least 1 and `per_sub` at most `channels`.
    pub(crate) fn new(subscribers: usize, channels: usize, per_sub: usize, nodes: usize) -> Self {
        let channels = channels.max(1);
        Self {
            subscribers,
            channels,
            per_sub: per_sub.clamp(1, channels),
            nodes: nodes.max(1),
        }
    }

    /// The node (index into the URL list) of subscriber `i`.
    pub(crate) fn node_of(&self, i: usize) -> usize {
        i % self.nodes
    }

    /// The channels (indices) of subscriber `i`.
    pub(crate) fn channels_of(&self, i: usize) -> Vec<usize> {
        let first_slot = (i / self.nodes) * self.per_sub;
        (0..self.per_sub)
            .map(|s| (first_slot + s) % self.channels)
            .collect()
    }

    /// For each channel, how many of its subscribers are on each node: `counts[channel][node]`.
    pub(crate) fn subscribers_per_channel_node(&self) -> Vec<Vec<u64>> {
        let mut counts = vec![vec![0u64; self.nodes]; self.channels];
        for i in 0..self.subscribers {
            let node = self.node_of(i);
            for ch in self.channels_of(i) {
                counts[ch][node] += 1;
            }
        }
        counts
    }

    /// The channel of publish number `k` of publisher `p` among `publishers`.
    pub(crate) fn publish_channel(&self, p: usize, k: u64, publishers: usize) -> usize {
        let m = publishers.max(1) as u64;
        ((k * m + p as u64) % self.channels as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn workload_w_puts_three_subscribers_of_every_channel_on_every_node() {
        let l = Layout::new(900, 100, 1, 3);
        let counts = l.subscribers_per_channel_node();
        assert_eq!(counts.len(), 100);
        assert!(counts.iter().all(|per_node| per_node == &vec![3, 3, 3]));
        assert_eq!(l.node_of(0), 0);
        assert_eq!(l.node_of(1), 1);
        assert_eq!(l.node_of(2), 2);
        assert_eq!(l.node_of(3), 0);
        assert_eq!(l.channels_of(0), vec![0]);
        assert_eq!(l.channels_of(2), vec![0]);
        assert_eq!(l.channels_of(3), vec![1]);
    }

    #[test]
    fn publishers_walk_the_channels_in_order() {
        let l = Layout::new(10, 5, 1, 1);
        let order: Vec<usize> = (0..3u64)
            .flat_map(|k| (0..2).map(move |p| (p, k)))
            .map(|(p, k)| l.publish_channel(p, k, 2))
            .collect();
        assert_eq!(order, vec![0, 1, 2, 3, 4, 0]);
    }

    proptest! {
        #[test]
        fn subscriptions_are_spread_evenly(
            channels in 1usize..50, per_sub in 1usize..5, nodes in 1usize..4, rounds in 1usize..4,
        ) {
            let l = Layout::new(0, channels, per_sub, nodes);
            let per_sub = l.per_sub;
            // A whole number of rounds on every node: every (channel, node) gets the same count.
            let subs = channels * nodes * rounds;
            let l = Layout::new(subs, channels, per_sub, nodes);
            let counts = l.subscribers_per_channel_node();
            let first = counts[0][0];
            prop_assert!(counts.iter().flatten().all(|&c| c == first));
            let total: u64 = counts.iter().flatten().sum();
            prop_assert_eq!(total, (subs * per_sub) as u64);
            for i in 0..subs {
                let chans = l.channels_of(i);
                let mut dedup = chans.clone();
                dedup.sort_unstable();
                dedup.dedup();
                prop_assert_eq!(dedup.len(), chans.len());
            }
        }

        #[test]
        fn counts_on_a_node_differ_by_at_most_one(
            subs in 0usize..500, channels in 1usize..50, per_sub in 1usize..5, nodes in 1usize..4,
        ) {
            let l = Layout::new(subs, channels, per_sub, nodes);
            let counts = l.subscribers_per_channel_node();
            for node in 0..l.nodes {
                let col: Vec<u64> = counts.iter().map(|per_node| per_node[node]).collect();
                let max = col.iter().copied().max().unwrap_or(0);
                let min = col.iter().copied().min().unwrap_or(0);
                prop_assert!(max - min <= 1);
            }
        }
    }
}
