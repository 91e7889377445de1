//! Per-connection transactions (spec §2.10): while a transaction is open on channel C, every later
//! message of that connection whose channel is C is queued; commit hands the queue back in order,
//! rollback drops it. Pure state; the protocol decides what a message is.

use std::collections::HashMap;

use super::inbound::Inbound;

/// The open transactions of one connection, by channel.
#[derive(Debug, Default)]
pub struct Transactions {
    open: HashMap<String, Vec<Inbound>>,
}

impl Transactions {
    /// Opens (or restarts, empty) the transaction on `channel`. Returns false when `max_open`
    /// other transactions are already open.
    pub fn open(&mut self, channel: &str, max_open: usize) -> bool {
        if let Some(q) = self.open.get_mut(channel) {
            q.clear();
            return true;
        }
        if self.open.len() >= max_open {
            return false;
        }
        self.open.insert(channel.to_owned(), Vec::new());
        true
    }

    /// Whether a transaction is open on `channel`.
    pub fn is_open(&self, channel: &str) -> bool {
        self.open.contains_key(channel)
    }

    /// Takes `msg` if a transaction is open on its channel: queued, or dropped when the
    /// transaction already holds `max_messages`. Gives it back when no transaction is open on its
    /// channel (then process it now).
    pub fn offer(&mut self, msg: Inbound, max_messages: usize) -> Option<Inbound> {
        match self.open.get_mut(msg.channel.as_str()) {
            None => Some(msg),
            Some(q) if q.len() >= max_messages => {
                tracing::debug!(channel = msg.channel, "transaction full: message dropped");
                None
            }
            Some(q) => {
                q.push(msg);
                None
            }
        }
    }

    /// How many messages the transaction on `channel` holds (0 when none is open).
    pub fn queued(&self, channel: &str) -> usize {
        self.open.get(channel).map_or(0, Vec::len)
    }

    /// Closes the transaction on `channel` and returns its messages in arrival order (empty when
    /// none was open).
    pub fn commit(&mut self, channel: &str) -> Vec<Inbound> {
        self.open.remove(channel).unwrap_or_default()
    }

    /// Closes the transaction on `channel`, dropping its messages. Returns how many were dropped.
    pub fn rollback(&mut self, channel: &str) -> usize {
        self.open.remove(channel).map_or(0, |q| q.len())
    }

    /// How many transactions are open.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::sgc::inbound::parse;

    fn publish(ch: &str, m: &str) -> Inbound {
        parse(&format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@publish","params":{{"message":"{m}","channel":"{ch}"}}}}"#
        ))
        .expect("parse")
    }

    #[test]
    fn queue_commit_rollback() {
        let mut t = Transactions::default();
        assert!(t.offer(publish("a", "0"), 10).is_some());
        assert!(t.open("a", 4));
        assert!(t.offer(publish("a", "1"), 10).is_none());
        assert!(t.offer(publish("a", "2"), 10).is_none());
        assert!(t.offer(publish("b", "x"), 10).is_some());
        assert_eq!(t.queued("a"), 2);
        let got: Vec<String> = t
            .commit("a")
            .iter()
            .map(|m| m.message.as_text().to_owned())
            .collect();
        assert_eq!(got, ["1", "2"]);
        assert!(!t.is_open("a"));
        assert!(t.commit("a").is_empty());
        assert!(t.open("a", 4));
        t.offer(publish("a", "3"), 10);
        assert_eq!(t.rollback("a"), 1);
        assert!(t.commit("a").is_empty());
    }

    #[test]
    fn limits() {
        let mut t = Transactions::default();
        assert!(t.open("a", 1));
        assert!(!t.open("b", 1));
        assert!(
            t.open("a", 1),
            "reopening restarts, it does not count twice"
        );
        assert!(t.offer(publish("a", "1"), 1).is_none());
        assert!(t.offer(publish("a", "2"), 1).is_none());
        assert_eq!(t.queued("a"), 1);
        assert_eq!(t.open_count(), 1);
    }

    proptest::proptest! {
        #[test]
        fn commit_returns_exactly_what_was_queued_in_order(
            ops in proptest::collection::vec((0u8..3, 0u8..4), 0..80)
        ) {
            let mut t = Transactions::default();
            let mut model: HashMap<String, Vec<String>> = HashMap::new();
            for (i, (ch, op)) in ops.into_iter().enumerate() {
                let ch = ch.to_string();
                match op {
                    0 => { t.open(&ch, 10); model.insert(ch, Vec::new()); }
                    1 => {
                        let got: Vec<String> = t.commit(&ch).iter().map(|m| m.message.as_text().to_owned()).collect();
                        proptest::prop_assert_eq!(got, model.remove(&ch).unwrap_or_default());
                    }
                    2 => { t.rollback(&ch); model.remove(&ch); }
                    _ => {
                        let m = i.to_string();
                        let queued = t.offer(publish(&ch, &m), 1000).is_none();
                        proptest::prop_assert_eq!(queued, model.contains_key(&ch));
                        if let Some(q) = model.get_mut(&ch) { q.push(m); }
                    }
                }
            }
        }
    }
}
