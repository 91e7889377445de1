//! The events waiting to be POSTed, sans I/O: bounded in bytes, taken in batches from the front,
//! dropped past their retry deadline; and the retry backoff.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::takeover::SetKey;

struct Item {
    json: String,
    deadline: Instant,
    set: Option<SetKey>,
}

/// The delivery queue.
pub(crate) struct Queue {
    items: VecDeque<Item>,
    bytes: usize,
    cap_bytes: usize,
    /// Events of each crashed node's set still queued.
    outstanding: HashMap<SetKey, usize>,
}

/// What leaving the queue finished.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Left {
    /// Events removed.
    pub events: usize,
    /// Crashed nodes' sets with no event left in the queue.
    pub sets_done: Vec<SetKey>,
}

impl Queue {
    /// An empty queue holding at most `cap_bytes` of JSON.
    pub(crate) fn new(cap_bytes: usize) -> Self {
        Self {
            items: VecDeque::new(),
            bytes: 0,
            cap_bytes,
            outstanding: HashMap::new(),
        }
    }

    /// Queues one event (its JSON object), to be delivered before `deadline`; `set` names the
    /// crashed node's set it belongs to. `false`: the cap is reached and it was dropped.
    pub(crate) fn push(&mut self, json: String, deadline: Instant, set: Option<SetKey>) -> bool {
        if self.bytes + json.len() > self.cap_bytes {
            return false;
        }
        self.bytes += json.len();
        if let Some(s) = &set {
            *self.outstanding.entry(s.clone()).or_default() += 1;
        }
        self.items.push_back(Item {
            json,
            deadline,
            set,
        });
        true
    }

    /// Whether nothing waits.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes of JSON queued.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Events queued.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// The body of the next POST (`{"events":[…]}` with at most `max` events from the front) and
    /// how many events it holds.
    pub(crate) fn batch(&self, max: usize) -> (String, usize) {
        let n = self.items.len().min(max);
        let mut body = String::from("{\"events\":[");
        for (i, item) in self.items.iter().take(n).enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&item.json);
        }
        body.push_str("]}");
        (body, n)
    }

    /// Removes the `n` front events (delivered).
    pub(crate) fn delivered(&mut self, n: usize) -> Left {
        let mut left = Left::default();
        for _ in 0..n {
            let Some(item) = self.items.pop_front() else {
                break;
            };
            self.leave(item, &mut left);
        }
        left
    }

    /// Removes the events whose deadline passed.
    pub(crate) fn expire(&mut self, now: Instant) -> Left {
        let mut left = Left::default();
        let mut kept = VecDeque::with_capacity(self.items.len());
        for item in std::mem::take(&mut self.items) {
            if item.deadline <= now {
                self.leave(item, &mut left);
            } else {
                kept.push_back(item);
            }
        }
        self.items = kept;
        left
    }

    fn leave(&mut self, item: Item, left: &mut Left) {
        self.bytes -= item.json.len();
        left.events += 1;
        if let Some(s) = item.set
            && let Some(n) = self.outstanding.get_mut(&s)
        {
            *n -= 1;
            if *n == 0 {
                self.outstanding.remove(&s);
                left.sets_done.push(s);
            }
        }
    }
}

/// Exponential backoff between failed POSTs: 100 ms doubling to 5 s, with up to 25 % jitter.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// First delay.
    const BASE: Duration = Duration::from_millis(100);
    /// Longest delay.
    const MAX: Duration = Duration::from_secs(5);

    /// Records a failure; returns how long to wait before the next attempt.
    pub(crate) fn failed(&mut self) -> Duration {
        let exp = Self::BASE.saturating_mul(1 << self.failures.min(16));
        self.failures = self.failures.saturating_add(1);
        let d = exp.min(Self::MAX);
        d + d.mul_f64(fastrand::f64() * 0.25)
    }

    /// Records a success: the next failure waits the first delay again.
    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key(n: &str) -> SetKey {
        SetKey {
            node: Arc::from(n),
            incarnation: 1,
        }
    }

    #[test]
    fn batches_from_the_front_and_caps_bytes() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        let mut q = Queue::new(12);
        assert!(q.push("{\"a\":1}".into(), later, None));
        assert!(
            !q.push("{\"bb\":22}".into(), later, None),
            "would pass 12 bytes"
        );
        assert!(q.push("{}".into(), later, None));
        assert_eq!(q.batch(10), ("{\"events\":[{\"a\":1},{}]}".into(), 2));
        assert_eq!(q.batch(1), ("{\"events\":[{\"a\":1}]}".into(), 1));
        assert_eq!(q.delivered(1).events, 1);
        assert_eq!(q.bytes(), 2);
        assert_eq!(q.batch(10).1, 1);
    }

    #[test]
    fn a_set_is_done_when_its_last_event_leaves_delivered_or_expired() {
        let now = Instant::now();
        let mut q = Queue::new(1 << 20);
        q.push("1".into(), now + Duration::from_secs(9), Some(key("b")));
        q.push("2".into(), now + Duration::from_millis(1), Some(key("b")));
        q.push("3".into(), now + Duration::from_millis(1), None);
        assert_eq!(q.delivered(1).sets_done, Vec::<SetKey>::new());
        let left = q.expire(now + Duration::from_millis(2));
        assert_eq!(left.events, 2);
        assert_eq!(left.sets_done, [key("b")]);
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn backoff_doubles_to_a_ceiling_and_resets() {
        let mut b = Backoff::default();
        let first = b.failed();
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(125));
        let second = b.failed();
        assert!(second >= Duration::from_millis(200));
        for _ in 0..20 {
            assert!(b.failed() <= Duration::from_millis(6_250));
        }
        b.succeeded();
        assert!(b.failed() <= Duration::from_millis(125));
    }
}
