//! A connection's outbound queue, bounded in bytes.
//!
//! Producers (fan-out on any thread) push already-encoded frames; the connection's writer task drains
//! the whole queue at once and writes it with one flush. When the queued bytes would pass the cap the
//! connection is marked for closing with [`Close::slow_consumer`] and further pushes are refused:
//! a client that cannot keep up never makes the node buffer without bound, and never slows the
//! producer (a push is a short lock, never an await).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::close::CloseReason;

/// One frame waiting to be written.
#[derive(Debug, Clone)]
pub(crate) enum Outgoing {
    /// A text frame; the bytes are valid UTF-8 (they come from our own encoders or `&str`).
    Text(Bytes),
    /// A binary frame.
    Binary(Bytes),
}

impl Outgoing {
    fn len(&self) -> usize {
        match self {
            Outgoing::Text(b) | Outgoing::Binary(b) => b.len(),
        }
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The connection is closing or closed; the frame was dropped.
    Closed,
    /// This frame would have passed the byte cap: the connection is now closing as a slow consumer.
    Overflow,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Outgoing>,
    bytes: usize,
    closing: Option<CloseReason>,
}

/// The bounded outbound queue shared by a connection's producers and its writer task.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer: a frame was queued or a close was asked for.
    writer_wake: Notify,
    /// Set once the connection is closing; the reader watches it through `closed_notify`.
    closed: AtomicBool,
    closed_notify: Notify,
    max_bytes: usize,
}

impl Outbox {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            writer_wake: Notify::new(),
            closed: AtomicBool::new(false),
            closed_notify: Notify::new(),
            max_bytes,
        }
    }

    /// Queues a frame for the writer.
    pub(crate) fn push(&self, frame: Outgoing) -> Result<(), SendError> {
        let len = frame.len();
        {
            let mut st = self.state.lock();
            if st.closing.is_some() {
                return Err(SendError::Closed);
            }
            if st.bytes + len > self.max_bytes {
                ::metrics::counter!(crate::metrics::WS_SLOW_CONSUMER_CLOSES).increment(1);
                st.closing = Some(CloseReason::slow_consumer(self.max_bytes));
                st.queue.clear();
                st.bytes = 0;
                drop(st);
                self.mark_closed();
                return Err(SendError::Overflow);
            }
            st.bytes += len;
            st.queue.push_back(frame);
        }
        self.writer_wake.notify_one();
        Ok(())
    }

    /// Asks for the connection to be closed with `reason` after what is already queued.
    /// The first reason wins.
    pub(crate) fn close(&self, reason: CloseReason) {
        {
            let mut st = self.state.lock();
            if st.closing.is_none() {
                st.closing = Some(reason);
            }
        }
        self.mark_closed();
    }

    fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
        self.closed_notify.notify_waiters();
        self.writer_wake.notify_one();
    }

    /// Whether a close was asked for (by overflow, by the server or because the peer went away).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Completes once the connection is closing.
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.closed_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Waits for work and takes it: every queued frame, plus the close reason if one was asked for.
    pub(crate) async fn take(&self, into: &mut VecDeque<Outgoing>) -> Option<CloseReason> {
        loop {
            {
                let mut st = self.state.lock();
                if !st.queue.is_empty() || st.closing.is_some() {
                    std::mem::swap(into, &mut st.queue);
                    return st.closing.clone();
                }
            }
            self.writer_wake.notified().await;
        }
    }

    /// Tells the outbox that `bytes` have been written to the socket.
    pub(crate) fn written(&self, bytes: usize) {
        let mut st = self.state.lock();
        st.bytes = st.bytes.saturating_sub(bytes);
    }

    /// The most bytes the outbox holds.
    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.state.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_closes_and_refuses_further_frames() {
        let ob = Outbox::new(10);
        assert!(
            ob.push(Outgoing::Text(Bytes::from_static(b"123456")))
                .is_ok()
        );
        assert_eq!(ob.queued_bytes(), 6);
        assert_eq!(
            ob.push(Outgoing::Text(Bytes::from_static(b"123456"))),
            Err(SendError::Overflow)
        );
        assert!(ob.is_closed());
        assert_eq!(
            ob.push(Outgoing::Text(Bytes::from_static(b"1"))),
            Err(SendError::Closed)
        );
    }

    #[test]
    fn an_overflow_counts_one_slow_consumer_close() {
        let ((), snap) = crate::metrics::testing::record(|| {
            let ob = Outbox::new(10);
            let big = || Outgoing::Text(Bytes::from_static(b"123456"));
            let _ = ob.push(big());
            assert_eq!(ob.push(big()), Err(SendError::Overflow));
            // Later pushes are refused as closed, not counted again.
            assert_eq!(ob.push(big()), Err(SendError::Closed));
        });
        let closes =
            crate::metrics::testing::counter(&snap, crate::metrics::WS_SLOW_CONSUMER_CLOSES, &[]);
        assert_eq!(closes, 1);
    }

    #[test]
    fn written_bytes_free_room() {
        let ob = Outbox::new(10);
        assert!(
            ob.push(Outgoing::Binary(Bytes::from_static(b"12345678")))
                .is_ok()
        );
        ob.written(8);
        assert!(
            ob.push(Outgoing::Binary(Bytes::from_static(b"12345678")))
                .is_ok()
        );
    }

    #[test]
    fn long_close_reasons_are_cut_on_a_char_boundary() {
        let r = CloseReason::new(1000, "é".repeat(100));
        assert!(r.reason.len() <= 123);
    }
}
