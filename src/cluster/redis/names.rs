//! The Redis channel names of one cluster: the shared channel (`<prefix>`), one per node
//! (`<prefix>:node:<id>`) and, in per-channel routing, one per sgc channel (`<prefix>:ch:<name>`).

use std::sync::Arc;

use crate::cluster::broker::streams::{StreamKind, StreamNames};

/// The Redis channel names under one prefix.
#[derive(Debug, Clone)]
pub struct Names {
    shared: Arc<str>,
    node_prefix: String,
    channel_prefix: String,
}

impl Names {
    /// The names under the shared channel `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            shared: Arc::from(prefix),
            node_prefix: format!("{prefix}:node:"),
            channel_prefix: format!("{prefix}:ch:"),
        }
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
        format!("{}{name}", self.channel_prefix)
    }

    fn kind_of(&self, name: &str) -> StreamKind {
        if name == &*self.shared {
            StreamKind::Shared
        } else if name.starts_with(&self.node_prefix) {
            StreamKind::Node
        } else if name.starts_with(&self.channel_prefix) {
            StreamKind::Channel
        } else {
            StreamKind::Foreign
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_kinds() {
        let n = Names::new("wsc");
        assert_eq!(&**n.shared(), "wsc");
        assert_eq!(n.node("a"), "wsc:node:a");
        assert_eq!(n.channel("room:1"), "wsc:ch:room:1");
        assert_eq!(n.kind_of("wsc"), StreamKind::Shared);
        assert_eq!(n.kind_of("wsc:node:b"), StreamKind::Node);
        assert_eq!(n.kind_of("wsc:ch:x"), StreamKind::Channel);
        assert_eq!(n.kind_of("other"), StreamKind::Foreign);
        assert_eq!(n.kind_of("wscx"), StreamKind::Foreign);
    }
}
