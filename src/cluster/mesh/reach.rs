//! Whether a configured peer address can be reached, and when to say so (sans I/O).
//!
//! A wrong `--peer` must not be silent. For each address the operator gave (`cluster.mesh.peers`,
//! `--peer`, and every address a `peers_dns` name resolves to) the dial loop feeds the outcome of
//! each attempt into a [`Reach`], which answers what to log:
//!
//! - the first failure (unresolvable name, connection refused, timeout, a refused handshake):
//!   one warning with the error;
//! - while the address stays unreachable: at most one reminder per [`REMIND_EVERY`], with the
//!   number of attempts and the latest error;
//! - the first link, and the link after failures: one info line.
//!
//! The same state gives the `wscluster_mesh_peer_up` gauge and the `unreachable_peers` list of
//! `GET /health`. Time is passed in, so tests drive it with a fake clock.

use std::time::{Duration, Instant};

/// Longest silence about an address that stays unreachable.
pub(crate) const REMIND_EVERY: Duration = Duration::from_secs(60);

/// What is known of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// No attempt finished yet.
    Unknown,
    /// Linked (by this node's dial or the peer's).
    Up,
    /// The attempts since `since` failed.
    Down {
        /// The first failure of this run.
        since: Instant,
        /// When the last line about it was logged.
        logged: Instant,
        /// Failed attempts since that line.
        failures: u64,
    },
}

/// What to log after an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReachLog {
    /// The address failed for the first time (or for the first time since it was linked): warn.
    Unreachable,
    /// Still unreachable (warn): for `down_for`, `failures` attempts since the last line.
    StillUnreachable {
        /// Since the first failure of this run.
        down_for: Duration,
        /// Attempts failed since the last line.
        failures: u64,
    },
    /// Linked: info. `after` is how long it had been unreachable, if it had.
    Linked {
        /// How long the address was unreachable before this link.
        after: Option<Duration>,
    },
}

/// One configured address.
#[derive(Debug, Clone)]
pub(crate) struct Reach {
    state: State,
    /// The latest error, for `GET /health`.
    last_error: Option<String>,
}

impl Default for Reach {
    fn default() -> Self {
        Self::new()
    }
}

impl Reach {
    /// Nothing tried yet.
    pub(crate) fn new() -> Self {
        Self {
            state: State::Unknown,
            last_error: None,
        }
    }

    /// An attempt failed at `now` with `error`.
    pub(crate) fn failed(&mut self, now: Instant, error: &str) -> Option<ReachLog> {
        self.last_error = Some(error.to_owned());
        match &mut self.state {
            State::Unknown | State::Up => {
                self.state = State::Down {
                    since: now,
                    logged: now,
                    failures: 0,
                };
                Some(ReachLog::Unreachable)
            }
            State::Down {
                since,
                logged,
                failures,
            } => {
                *failures += 1;
                if now.saturating_duration_since(*logged) < REMIND_EVERY {
                    return None;
                }
                let log = ReachLog::StillUnreachable {
                    down_for: now.saturating_duration_since(*since),
                    failures: *failures,
                };
                *logged = now;
                *failures = 0;
                Some(log)
            }
        }
    }

    /// The address is linked at `now` (once per run: repeats say nothing).
    pub(crate) fn linked(&mut self, now: Instant) -> Option<ReachLog> {
        let after = match self.state {
            State::Up => return None,
            State::Unknown => None,
            State::Down { since, .. } => Some(now.saturating_duration_since(since)),
        };
        self.state = State::Up;
        self.last_error = None;
        Some(ReachLog::Linked { after })
    }

    /// Linked now.
    pub(crate) fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// Failed at its last attempt, with that error.
    pub(crate) fn unreachable(&self) -> Option<&str> {
        match self.state {
            State::Down { .. } => Some(self.last_error.as_deref().unwrap_or("")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_failure_warns_then_one_line_a_minute_then_one_when_linked() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut r = Reach::new();
        assert!(!r.is_up());
        assert_eq!(r.unreachable(), None, "nothing tried yet");
        assert_eq!(r.failed(at(0), "refused"), Some(ReachLog::Unreachable));
        assert_eq!(r.unreachable(), Some("refused"));
        // Retries every few seconds say nothing for a minute.
        for s in 1..60 {
            assert_eq!(r.failed(at(s), "refused"), None, "at {s} s");
        }
        assert_eq!(
            r.failed(at(60), "timed out"),
            Some(ReachLog::StillUnreachable {
                down_for: Duration::from_secs(60),
                failures: 60
            })
        );
        assert_eq!(r.unreachable(), Some("timed out"), "the latest error");
        assert_eq!(r.failed(at(61), "refused"), None);
        assert_eq!(r.failed(at(119), "refused"), None);
        assert_eq!(
            r.failed(at(120), "refused"),
            Some(ReachLog::StillUnreachable {
                down_for: Duration::from_secs(120),
                failures: 3
            })
        );
        assert_eq!(
            r.linked(at(130)),
            Some(ReachLog::Linked {
                after: Some(Duration::from_secs(130))
            })
        );
        assert!(r.is_up());
        assert_eq!(r.unreachable(), None);
        assert_eq!(r.linked(at(131)), None, "linked again: silent");
        // Down again: a new first failure.
        assert_eq!(r.failed(at(200), "refused"), Some(ReachLog::Unreachable));
        assert_eq!(r.failed(at(201), "refused"), None);
    }

    #[test]
    fn a_first_link_is_said_once() {
        let t0 = Instant::now();
        let mut r = Reach::new();
        assert_eq!(r.linked(t0), Some(ReachLog::Linked { after: None }));
        assert_eq!(r.linked(t0 + Duration::from_secs(5)), None);
        assert!(r.is_up());
    }
}
