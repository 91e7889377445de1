//! Per-connection transactions (docs/wire.md §2.10): while a transaction is open on channel C, every later
//! message of that connection whose channel is C is queued; commit hands the queue back in order,
//! rollback drops it. Pure state; the protocol decides what a message is.
//!
//! What a transaction holds is capped in bytes (each message counts the size of its frame), per
//! transaction and for all the open transactions of the connection together.

use std::collections::HashMap;

use super::inbound::{Inbound, Method};

/// The open transactions of one connection, by channel.
#[derive(Debug, Default)]
pub struct Transactions {
    open: HashMap<String, Queue>,
    /// Bytes held by every open transaction together.
    bytes: usize,
}

/// One open transaction: its messages in arrival order and their bytes.
#[derive(Debug, Default)]
struct Queue {
    messages: Vec<Inbound>,
    bytes: usize,
}

/// The caps an offered message is checked against.
#[derive(Debug, Clone, Copy)]
pub struct TransactionCaps {
    /// Most messages one transaction queues; further ones are dropped.
    pub max_messages: usize,
    /// Most bytes one transaction holds.
    pub max_bytes: usize,
    /// Most bytes all the open transactions of the connection hold together.
    pub max_bytes_per_connection: usize,
}

/// What [`Transactions::offer`] did with a message.
#[derive(Debug)]
pub enum Offer {
    /// No transaction is open on its channel: process it now.
    Free(Inbound),
    /// Queued in the transaction.
    Queued,
    /// Dropped: the transaction already holds its most messages.
    Dropped,
    /// Over a byte cap: every open transaction of the connection was discarded, and this message
    /// with them (the protocol closes the connection).
    TooLarge(ByteCap),
}

/// Which byte cap a message passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteCap {
    /// The cap of one transaction.
    Transaction,
    /// The cap of all the connection's open transactions together.
    Connection,
}

impl Transactions {
    /// Opens (or restarts, empty) the transaction on `channel`. Returns false when `max_open`
    /// other transactions are already open.
    pub fn open(&mut self, channel: &str, max_open: usize) -> bool {
        if let Some(q) = self.open.get_mut(channel) {
            self.bytes -= q.bytes;
            *q = Queue::default();
            return true;
        }
        if self.open.len() >= max_open {
            return false;
        }
        self.open.insert(channel.to_owned(), Queue::default());
        true
    }

    /// Whether a transaction is open on `channel`.
    pub fn is_open(&self, channel: &str) -> bool {
        self.open.contains_key(channel)
    }

    /// Takes `msg` if a transaction is open on its channel: queued, dropped when the transaction
    /// already holds `caps.max_messages`, or — when it would take the transaction or the
    /// connection past a byte cap — every open transaction is discarded. Gives it back when no
    /// transaction is open on its channel (then process it now).
    pub fn offer(&mut self, mut msg: Inbound, caps: TransactionCaps) -> Offer {
        let Some(q) = self.open.get_mut(msg.channel.as_str()) else {
            return Offer::Free(msg);
        };
        if q.messages.len() >= caps.max_messages {
            tracing::debug!(channel = msg.channel, "transaction full: message dropped");
            return Offer::Dropped;
        }
        let size = msg.size;
        let cap = if q.bytes + size > caps.max_bytes {
            Some(ByteCap::Transaction)
        } else if self.bytes + size > caps.max_bytes_per_connection {
            Some(ByteCap::Connection)
        } else {
            None
        };
        if let Some(cap) = cap {
            self.open.clear();
            self.bytes = 0;
            return Offer::TooLarge(cap);
        }
        // A publish or broadcast is processed from its message; its params (a second copy of
        // the message) would only double what the transaction holds.
        if matches!(msg.method, Method::Publish | Method::Broadcast) {
            msg.params = crate::protocol::json::Payload::Text(String::new());
        }
        q.bytes += size;
        self.bytes += size;
        q.messages.push(msg);
        Offer::Queued
    }

    /// How many messages the transaction on `channel` holds (0 when none is open).
    pub fn queued(&self, channel: &str) -> usize {
        self.open.get(channel).map_or(0, |q| q.messages.len())
    }

    /// Bytes held by every open transaction together.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Closes the transaction on `channel` and returns its messages in arrival order (empty when
    /// none was open).
    pub fn commit(&mut self, channel: &str) -> Vec<Inbound> {
        let q = self.open.remove(channel).unwrap_or_default();
        self.bytes -= q.bytes;
        q.messages
    }

    /// Closes the transaction on `channel`, dropping its messages. Returns how many were dropped.
    pub fn rollback(&mut self, channel: &str) -> usize {
        let q = self.open.remove(channel).unwrap_or_default();
        self.bytes -= q.bytes;
        q.messages.len()
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

    fn caps(max_messages: usize) -> TransactionCaps {
        TransactionCaps {
            max_messages,
            max_bytes: usize::MAX,
            max_bytes_per_connection: usize::MAX,
        }
    }

    /// Offers `msg`; true when it was given back (no transaction open on its channel).
    fn free(t: &mut Transactions, msg: Inbound, max_messages: usize) -> bool {
        matches!(t.offer(msg, caps(max_messages)), Offer::Free(_))
    }

    #[test]
    fn byte_caps_discard_every_open_transaction() {
        let mut t = Transactions::default();
        let one = publish("a", "0123456789").size;
        let c = TransactionCaps {
            max_messages: 100,
            max_bytes: 3 * one,
            max_bytes_per_connection: 4 * one,
        };
        assert!(t.open("a", 4) && t.open("b", 4));
        for _ in 0..3 {
            assert!(matches!(
                t.offer(publish("a", "0123456789"), c),
                Offer::Queued
            ));
        }
        assert_eq!(t.bytes(), 3 * one);
        assert!(matches!(
            t.offer(publish("a", "0123456789"), c),
            Offer::TooLarge(ByteCap::Transaction)
        ));
        assert_eq!((t.open_count(), t.bytes()), (0, 0));
        assert!(t.open("a", 4) && t.open("b", 4));
        for ch in ["a", "b", "a", "b"] {
            assert!(matches!(
                t.offer(publish(ch, "0123456789"), c),
                Offer::Queued
            ));
        }
        assert!(matches!(
            t.offer(publish("b", "0123456789"), c),
            Offer::TooLarge(ByteCap::Connection)
        ));
        assert_eq!((t.open_count(), t.bytes()), (0, 0));
        // Commit, rollback and reopening give their bytes back.
        assert!(t.open("a", 4));
        t.offer(publish("a", "0123456789"), c);
        assert!(t.open("a", 4));
        assert_eq!(t.bytes(), 0);
        t.offer(publish("a", "0123456789"), c);
        assert_eq!(t.commit("a").len(), 1);
        assert_eq!(t.bytes(), 0);
    }

    #[test]
    fn queue_commit_rollback() {
        let mut t = Transactions::default();
        assert!(free(&mut t, publish("a", "0"), 10));
        assert!(t.open("a", 4));
        assert!(!free(&mut t, publish("a", "1"), 10));
        assert!(!free(&mut t, publish("a", "2"), 10));
        assert!(free(&mut t, publish("b", "x"), 10));
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
        free(&mut t, publish("a", "3"), 10);
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
        assert!(!free(&mut t, publish("a", "1"), 1));
        assert!(!free(&mut t, publish("a", "2"), 1));
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
                        let queued = !free(&mut t, publish(&ch, &m), 1000);
                        proptest::prop_assert_eq!(queued, model.contains_key(&ch));
                        if let Some(q) = model.get_mut(&ch) { q.push(m); }
                    }
                }
            }
        }
    }
}
