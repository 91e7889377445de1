//! A link's send queue, bounded in bytes: producers push without waiting, the link's writer drains
//! it; a push past the cap closes the queue, which resets the link (it resynchronises when it
//! reconnects) instead of letting memory grow behind a slow or stuck peer.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::wire::WireFrame;

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<WireFrame>,
    bytes: usize,
    closed: bool,
}

/// The bounded queue between senders and one link's writer task.
#[derive(Debug)]
pub(crate) struct LinkQueue {
    state: Mutex<State>,
    wake: Notify,
    /// Wakes the link's reader and a writer stuck on a full socket when the queue closes.
    closed_wake: Notify,
    cap: usize,
}

/// Why the queue refused a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueClosed {
    /// It was closed before.
    Closed,
    /// This frame would have passed the cap: the queue is closed now (the link resets).
    Overflow,
}

impl LinkQueue {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            closed_wake: Notify::new(),
            cap,
        }
    }

    /// Queues a frame; past the cap the queue closes and refuses it.
    pub(crate) fn push(&self, frame: WireFrame) -> Result<(), QueueClosed> {
        {
            let mut st = self.state.lock();
            if st.closed {
                return Err(QueueClosed::Closed);
            }
            if st.bytes + frame.len() > self.cap {
                st.closed = true;
                st.frames.clear();
                st.bytes = 0;
                drop(st);
                self.wake.notify_one();
                self.closed_wake.notify_waiters();
                return Err(QueueClosed::Overflow);
            }
            st.bytes += frame.len();
            st.frames.push_back(frame);
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Closes the queue; the writer sends what is queued and stops.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.wake.notify_one();
        self.closed_wake.notify_waiters();
    }

    /// Completes once the queue is closed.
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.closed_wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Whether the queue is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Takes every queued frame now (tests read what the link core queued without a writer).
    #[cfg(test)]
    pub(crate) fn take_now(&self) -> Vec<WireFrame> {
        let mut st = self.state.lock();
        st.bytes = 0;
        st.frames.drain(..).collect()
    }

    /// Waits for frames and takes them all; `closed` is true when the queue is closed (the frames
    /// returned with it are the last).
    pub(crate) async fn take(&self, into: &mut Vec<WireFrame>) -> bool {
        loop {
            {
                let mut st = self.state.lock();
                if !st.frames.is_empty() || st.closed {
                    into.extend(st.frames.drain(..));
                    st.bytes = 0;
                    return st.closed;
                }
            }
            self.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn past_the_cap_the_queue_closes() {
        let q = LinkQueue::new(4);
        assert!(q.push(WireFrame::whole(Bytes::from_static(b"abc"))).is_ok());
        assert_eq!(
            q.push(WireFrame::whole(Bytes::from_static(b"de"))),
            Err(QueueClosed::Overflow)
        );
        assert!(q.is_closed());
        assert_eq!(
            q.push(WireFrame::whole(Bytes::from_static(b"f"))),
            Err(QueueClosed::Closed)
        );
    }
}
