//! A publisher of a fan-out run: waits for its orders, sends the cross-node probe if asked, then
//! publishes on schedule (paced, or as fast as the in-flight bound allows) until the window ends.
//!
//! Pacing: publish `k` of a publisher is due `k × M / R` seconds after the start (`M` publishers,
//! total rate `R`); see [`crate::pacing`] for how the publisher waits for it (a timer until shortly
//! before, then yielding until due), so publishes leave one by one near their due time. Publishes
//! already due (a publisher that fell behind) are sent in batches of up to 64 frames, flushed
//! together, as fast as the in-flight bound allows (the achieved rate shows it). Each message's
//! timestamp is taken just before it is queued (the real send time, not the due time), so latency
//! includes the client's own send path but not the generator's lateness; that lateness (due →
//! sent) is recorded per window publish and reported on its own.

use std::sync::Arc;

use futures_util::{Sink, SinkExt};
use tokio::sync::watch;
use tokio_websockets::Message;

use crate::clock::{self, now_ns};
use crate::layout::Layout;
use crate::pacing::{Pace, Wait};
use crate::tally::Tally;
use crate::wire::PublishTemplate;

/// What publishers are told to do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Wait: setup is going on.
    Setup,
    /// Publisher 0 sends the probe to channel 0 every [`PROBE_EVERY`] until told otherwise.
    Probe,
    /// Publish from `start` to `end` (clock ns); the warmup runs until the window start.
    Go {
        /// When publishing starts.
        start: u64,
        /// When publishing stops: the end of the measured window.
        end: u64,
    },
    /// The run is over before it began (setup failed).
    Abort,
}

/// Interval between two probes.
pub(crate) const PROBE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Frames sent before one flush, at most.
const BATCH: u64 = 64;

/// A publisher's plan.
pub(crate) struct Publisher {
    /// Publishing connections in the run (`M`).
    pub(crate) publishers: usize,
    /// This publisher's number.
    pub(crate) p: usize,
    /// Total publishes per second, 0 = unpaced.
    pub(crate) rate: f64,
    /// Message body size.
    pub(crate) payload: usize,
    /// Channel order.
    pub(crate) layout: Layout,
    /// One frame template per channel.
    pub(crate) templates: Vec<PublishTemplate>,
}

impl Publisher {
    /// Follows the phases until the window ends, the run aborts or the connection fails.
    pub(crate) async fn run<S>(
        self,
        mut sink: S,
        tally: Arc<Tally>,
        mut phase: watch::Receiver<Phase>,
    ) where
        S: Sink<Message, Error = tokio_websockets::Error> + Unpin,
    {
        loop {
            let now = *phase.borrow_and_update();
            match now {
                Phase::Setup => {}
                Phase::Abort => return,
                Phase::Probe if self.p == 0 => {
                    if let Some(t) = self.templates.first()
                        && sink.send(Message::text(t.probe_frame())).await.is_err()
                    {
                        return;
                    }
                    let _ = tokio::time::timeout(PROBE_EVERY, phase.changed()).await;
                    continue;
                }
                Phase::Probe => {}
                Phase::Go { start, end } => {
                    self.publish(&mut sink, &tally, start, end).await;
                    return;
                }
            }
            if phase.changed().await.is_err() {
                return;
            }
        }
    }

    /// Publishes from `start` to `end`.
    async fn publish<S>(&self, sink: &mut S, tally: &Tally, start: u64, end: u64)
    where
        S: Sink<Message, Error = tokio_websockets::Error> + Unpin,
    {
        tokio::time::sleep_until(clock::instant_at(start)).await;
        let pace = Pace::new(start, self.publishers, self.rate);
        let mut k: u64 = 0;
        loop {
            let now = now_ns();
            if now >= end {
                break;
            }
            if let Some(pace) = &pace {
                match pace.wait(k, now) {
                    Wait::Send => {}
                    Wait::Spin => {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    Wait::Sleep(until) => {
                        tokio::time::sleep_until(clock::instant_at(until.min(end))).await;
                        continue;
                    }
                }
            }
            for _ in 0..BATCH {
                // Only what is due by `now` goes in this batch (at least publish `k`).
                if pace.as_ref().is_some_and(|p| p.due(k) > now) {
                    break;
                }
                let ch = self.layout.publish_channel(self.p, k, self.publishers);
                if !tally.flow.has_room() && sink.flush().await.is_err() {
                    return;
                }
                let live = tally.live[ch].load(std::sync::atomic::Ordering::Relaxed);
                tally.flow.admit(live).await;
                let sent = now_ns();
                if sent >= end {
                    break;
                }
                let frame = self.templates[ch].frame(sent, self.payload);
                if sink.feed(Message::text(frame)).await.is_err() {
                    return;
                }
                tally.published(ch, sent);
                if let Some(pace) = &pace {
                    tally.publish_lateness(sent, pace.lateness(k, sent));
                }
                k += 1;
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.flush().await;
    }
}
