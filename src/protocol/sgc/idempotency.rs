//! The idempotency keys of server-side publishes (`SgcProtocol::publish_once`): which keys this
//! node has seen within the window, bounded in bytes. Pure: the caller passes the time.
//!
//! Every node keeps its own store and fills it from the publishes it makes and those it receives
//! from other nodes (a keyed publish crosses to every node). A key is remembered with the id of
//! the publish that claimed it first on this node: another part of that same publish (one event
//! per concrete channel) still passes, a publish with the same key and another id is a duplicate.
//! Two simultaneous publishes of one key through two nodes are each delivered by the node that
//! sees it first, so every subscriber gets one of them, once.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// What one remembered key costs besides its text: two map and queue entries, an `Arc` header,
/// the id and the expiry (an estimate, counted so the bound holds in bytes).
pub const ENTRY_OVERHEAD: usize = 96;

/// Default window: 5 minutes.
pub const DEFAULT_WINDOW_MS: u64 = 300_000;

/// Default bound of the store: 16 MiB.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

/// What [`IdempotencyStore::claim`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or belongs to this same publish): deliver.
    Fresh,
    /// Another publish used the key within the window: do not deliver again.
    Duplicate,
}

/// Keys seen within the window, oldest first.
#[derive(Debug)]
pub struct IdempotencyStore {
    window_ms: u64,
    max_bytes: usize,
    bytes: usize,
    keys: HashMap<Arc<str>, u64>,
    /// (key, expiry in ms): the window is fixed, so arrival order is expiry order.
    order: VecDeque<(Arc<str>, u64)>,
    evicted: u64,
}

impl Default for IdempotencyStore {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW_MS, DEFAULT_MAX_BYTES)
    }
}

impl IdempotencyStore {
    /// A store remembering keys for `window_ms`, in at most `max_bytes`.
    pub fn new(window_ms: u64, max_bytes: usize) -> Self {
        Self {
            window_ms,
            max_bytes,
            bytes: 0,
            keys: HashMap::new(),
            order: VecDeque::new(),
            evicted: 0,
        }
    }

    /// Claims `key` for publish `id` at `now_ms`: [`Claim::Fresh`] when the key is unknown (then
    /// remembered) or already held by `id`, [`Claim::Duplicate`] when another publish holds it.
    /// When the store is full the oldest keys are forgotten before their window ends (counted by
    /// [`IdempotencyStore::take_evicted`]).
    pub fn claim(&mut self, key: &str, id: u64, now_ms: u64) -> Claim {
        self.expire(now_ms);
        if let Some(holder) = self.keys.get(key) {
            return if *holder == id {
                Claim::Fresh
            } else {
                Claim::Duplicate
            };
        }
        let cost = key.len() + ENTRY_OVERHEAD;
        while self.bytes + cost > self.max_bytes {
            if !self.pop_oldest() {
                break;
            }
            self.evicted += 1;
        }
        if self.bytes + cost > self.max_bytes {
            // Larger than the whole store: delivered, not remembered.
            self.evicted += 1;
            return Claim::Fresh;
        }
        let key: Arc<str> = Arc::from(key);
        self.keys.insert(key.clone(), id);
        self.order
            .push_back((key, now_ms.saturating_add(self.window_ms)));
        self.bytes += cost;
        Claim::Fresh
    }

    /// Forgets the keys whose window ended by `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        while self.order.front().is_some_and(|(_, exp)| *exp <= now_ms) {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) -> bool {
        let Some((key, _)) = self.order.pop_front() else {
            return false;
        };
        self.keys.remove(&key);
        self.bytes = self.bytes.saturating_sub(key.len() + ENTRY_OVERHEAD);
        true
    }

    /// How many keys were forgotten early (the byte bound) since the last call.
    pub fn take_evicted(&mut self) -> u64 {
        std::mem::take(&mut self.evicted)
    }

    /// Bytes held (estimate, see [`ENTRY_OVERHEAD`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_fresh_once_per_publish_within_the_window() {
        let mut s = IdempotencyStore::new(1_000, 1 << 20);
        assert_eq!(s.claim("k", 1, 0), Claim::Fresh);
        assert_eq!(
            s.claim("k", 1, 10),
            Claim::Fresh,
            "same publish, other channel"
        );
        assert_eq!(s.claim("k", 2, 999), Claim::Duplicate);
        assert_eq!(s.claim("k", 2, 1_000), Claim::Fresh, "window over");
        assert_eq!(s.claim("k", 3, 1_001), Claim::Duplicate);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn the_byte_bound_forgets_the_oldest_and_counts_it() {
        let cost = 1 + ENTRY_OVERHEAD;
        let mut s = IdempotencyStore::new(60_000, cost * 2);
        assert_eq!(s.claim("a", 1, 0), Claim::Fresh);
        assert_eq!(s.claim("b", 2, 0), Claim::Fresh);
        assert_eq!(s.claim("c", 3, 0), Claim::Fresh);
        assert_eq!(s.take_evicted(), 1);
        assert_eq!(s.take_evicted(), 0);
        assert_eq!(s.claim("a", 9, 1), Claim::Fresh, "a was forgotten early");
        assert_eq!(s.claim("c", 9, 1), Claim::Duplicate);
        assert!(s.bytes() <= cost * 2);
        let mut tiny = IdempotencyStore::new(60_000, 10);
        assert_eq!(tiny.claim("k", 1, 0), Claim::Fresh);
        assert!(tiny.is_empty());
        assert_eq!(tiny.take_evicted(), 1);
    }
}
