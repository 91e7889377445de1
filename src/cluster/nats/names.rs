//! The NATS subjects of one cluster: the shared subject (`<prefix>.shared`), one per node
//! (`<prefix>.node.<token>`), in per-channel routing one per sgc channel (`<prefix>.ch.<token>`),
//! and the confirmation subject nothing subscribes to (`<prefix>.confirm`).
//!
//! NATS subjects are dot-separated tokens where `*` and `>` are wildcards, so a node id or an sgc
//! channel name becomes exactly one safe token ([`token`]): a name of 1 to 64 characters from
//! `[A-Za-z0-9_-]` that does not start with `_` is used as it is; any other name of up to 192
//! bytes becomes `_` followed by its base64url encoding (no padding); a longer one becomes `~`
//! followed by the hex SHA-256 of the name. Tokens are distinct for distinct names (hashes
//! aside, which only cost a node traffic it then drops: every envelope names its channel).

use std::sync::Arc;

use base64::Engine as _;
use sha2::Digest as _;

use crate::cluster::broker::streams::{StreamKind, StreamNames};

/// Longest name used as its own token.
const MAX_PLAIN: usize = 64;
/// Longest name encoded in base64url; longer ones are hashed.
const MAX_ENCODED: usize = 192;

/// The one subject token that stands for `name` (see the module documentation).
pub fn token(name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= MAX_PLAIN
        && !name.starts_with('_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        name.to_owned()
    } else if name.len() <= MAX_ENCODED {
        format!(
            "_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
        )
    } else {
        let digest = sha2::Sha256::digest(name.as_bytes());
        let mut out = String::with_capacity(1 + 64);
        out.push('~');
        for b in digest {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

/// The subjects under one prefix.
#[derive(Debug, Clone)]
pub struct Names {
    shared: Arc<str>,
    node_prefix: String,
    channel_prefix: String,
    confirmation: String,
}

impl Names {
    /// The subjects under `prefix` (dot-separated safe tokens, checked by the configuration).
    pub fn new(prefix: &str) -> Self {
        Self {
            shared: Arc::from(format!("{prefix}.shared")),
            node_prefix: format!("{prefix}.node."),
            channel_prefix: format!("{prefix}.ch."),
            confirmation: format!("{prefix}.confirm"),
        }
    }

    /// The subject nothing subscribes to: a request there is answered "no responders" by the
    /// server, which proves it processed what the connection sent before.
    pub fn confirmation(&self) -> &str {
        &self.confirmation
    }
}

impl StreamNames for Names {
    fn shared(&self) -> &Arc<str> {
        &self.shared
    }

    fn node(&self, id: &str) -> String {
        format!("{}{}", self.node_prefix, token(id))
    }

    fn channel(&self, name: &str) -> String {
        format!("{}{}", self.channel_prefix, token(name))
    }

    fn kind_of(&self, name: &str) -> StreamKind {
        let one_token = |rest: &str| !rest.is_empty() && !rest.contains('.');
        if name == &*self.shared {
            StreamKind::Shared
        } else if name.strip_prefix(&self.node_prefix).is_some_and(one_token) {
            StreamKind::Node
        } else if name
            .strip_prefix(&self.channel_prefix)
            .is_some_and(one_token)
        {
            StreamKind::Channel
        } else {
            StreamKind::Foreign
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::nats::config::is_safe_subject;

    #[test]
    fn names_and_kinds() {
        let n = Names::new("wsc.t1");
        assert_eq!(&**n.shared(), "wsc.t1.shared");
        assert_eq!(n.node("a"), "wsc.t1.node.a");
        assert_eq!(n.channel("news-1_x"), "wsc.t1.ch.news-1_x");
        assert_eq!(n.kind_of("wsc.t1.shared"), StreamKind::Shared);
        assert_eq!(n.kind_of("wsc.t1.node.b"), StreamKind::Node);
        assert_eq!(n.kind_of("wsc.t1.ch.x"), StreamKind::Channel);
        assert_eq!(n.kind_of("wsc.t1.ch.x.y"), StreamKind::Foreign);
        assert_eq!(n.kind_of("other"), StreamKind::Foreign);
        assert_eq!(n.kind_of("wsc.t1.sharedx"), StreamKind::Foreign);
    }

    #[test]
    fn every_name_is_one_safe_token_and_distinct_names_stay_distinct() {
        let names = [
            "room",
            "room.1",
            "room:1",
            "*",
            ">",
            "a b",
            "",
            "_x",
            "_eA",
            "x",
            "ünïcode",
            "a\nb",
            "host:5410",
        ];
        let mut seen = std::collections::HashSet::new();
        for name in names {
            let t = token(name);
            assert!(is_safe_subject(&t) || t.starts_with('~'), "{name:?} -> {t}");
            assert!(!t.contains('.'), "{name:?} -> {t}");
            assert!(seen.insert(t.clone()), "{name:?} -> {t} twice");
        }
        assert_eq!(token("room:1"), "_cm9vbTox");
        let long = "x".repeat(1000);
        let t = token(&long);
        assert!(t.starts_with('~') && t.len() == 65, "{t}");
        assert_ne!(token(&"y".repeat(1000)), t);
        assert!(token(&"z".repeat(65)).starts_with('_'));
    }
}
