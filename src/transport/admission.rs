//! [`Admission`]: the connection limits of the `[limits]` section (per node, per client address,
//! connection rate per address), decided when a TCP connection is accepted, before its request is
//! read. Pure state behind one short lock; the server holds an [`AdmissionSlot`] for as long as
//! the socket is open.
//!
//! The per-address table is bounded: an address is forgotten as soon as it has no open connection
//! and its rate bucket is full again (idle), and the table never holds more than
//! [`MAX_TRACKED_IPS`] addresses. When it is full of addresses that cannot be forgotten, new
//! addresses are refused (503) until some leave: memory stays bounded whatever the number of
//! addresses an attacker controls.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::limits::LimitsConfig;
use super::token_bucket::TokenBucket;

/// Most client addresses tracked at once.
pub(crate) const MAX_TRACKED_IPS: usize = 65_536;

/// How often idle addresses are swept out of the table (besides when it is full).
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// `limits.max_connections` reached (503).
    NodeFull,
    /// `limits.max_connections_per_ip` reached for this address (429).
    IpFull,
    /// `limits.connections_per_ip_per_second` exceeded (429); retry after this long.
    IpRate(Duration),
    /// The address table is full of addresses with open connections (503).
    TableFull,
}

impl Denied {
    /// The HTTP status and reason phrase of the answer.
    pub(crate) fn status(self) -> (u16, &'static str) {
        match self {
            Denied::NodeFull | Denied::TableFull => (503, "Service Unavailable"),
            Denied::IpFull | Denied::IpRate(_) => (429, "Too Many Requests"),
        }
    }

    /// The `Retry-After` seconds of the answer (at least 1).
    pub(crate) fn retry_after(self) -> u64 {
        match self {
            Denied::IpRate(wait) => wait.as_secs_f64().ceil().max(1.0) as u64,
            _ => 1,
        }
    }
}

/// A refusal, and whether it is the first for its address (or for the node) since the limit was
/// last fine: only that one is logged at info, so a flood does not flood the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    /// Why.
    pub why: Denied,
    /// Log it.
    pub first: bool,
}

#[derive(Debug)]
struct IpEntry {
    open: usize,
    bucket: Option<TokenBucket>,
    /// A refusal of this address was logged and nothing was admitted since.
    logged: bool,
}

#[derive(Debug, Default)]
struct Table {
    open: usize,
    ips: HashMap<IpAddr, IpEntry>,
    node_full_logged: bool,
    last_sweep: Option<Instant>,
}

/// The connection limits of a node.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: LimitsConfig,
    table: Mutex<Table>,
}

impl Admission {
    /// Admission under these limits.
    pub(crate) fn new(limits: LimitsConfig) -> Self {
        Self {
            limits,
            table: Mutex::new(Table::default()),
        }
    }

    /// Decides on a new connection from `ip` at `now`; on success the connection counts until
    /// [`Admission::release`] (done by [`AdmissionSlot`]'s drop).
    pub(crate) fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), Refused> {
        let l = &self.limits;
        let mut t = self.table.lock();
        if l.max_connections > 0 && t.open >= l.max_connections {
            let first = !std::mem::replace(&mut t.node_full_logged, true);
            return Err(Refused {
                why: Denied::NodeFull,
                first,
            });
        }
        t.node_full_logged = false;
        if l.tracks_ips() {
            if t.last_sweep
                .is_none_or(|s| now.duration_since(s) >= SWEEP_EVERY)
                || (t.ips.len() >= MAX_TRACKED_IPS && !t.ips.contains_key(&ip))
            {
                sweep(&mut t, now);
            }
            if t.ips.len() >= MAX_TRACKED_IPS && !t.ips.contains_key(&ip) {
                return Err(Refused {
                    why: Denied::TableFull,
                    first: false,
                });
            }
            let entry = t.ips.entry(ip).or_insert_with(|| IpEntry {
                open: 0,
                bucket: (l.connections_per_ip_per_second > 0).then(|| {
                    TokenBucket::new(
                        f64::from(l.connections_per_ip_per_second),
                        l.connection_burst(),
                        now,
                    )
                }),
                logged: false,
            });
            let why = if l.max_connections_per_ip > 0 && entry.open >= l.max_connections_per_ip {
                Some(Denied::IpFull)
            } else {
                match &mut entry.bucket {
                    Some(b) => (!b.take(now)).then(|| Denied::IpRate(b.wait(now))),
                    None => None,
                }
            };
            if let Some(why) = why {
                let first = !std::mem::replace(&mut entry.logged, true);
                return Err(Refused { why, first });
            }
            entry.open += 1;
            entry.logged = false;
        }
        t.open += 1;
        Ok(())
    }

    /// A connection admitted for `ip` closed.
    pub(crate) fn release(&self, ip: IpAddr, now: Instant) {
        let mut t = self.table.lock();
        t.open = t.open.saturating_sub(1);
        if let Some(e) = t.ips.get_mut(&ip) {
            e.open = e.open.saturating_sub(1);
            if idle(e, now) {
                t.ips.remove(&ip);
            }
        }
    }

    /// Open connections counted.
    pub(crate) fn open(&self) -> usize {
        self.table.lock().open
    }

    /// Addresses tracked.
    #[cfg(test)]
    pub(crate) fn tracked_ips(&self) -> usize {
        self.table.lock().ips.len()
    }
}

fn idle(e: &IpEntry, now: Instant) -> bool {
    e.open == 0 && e.bucket.as_ref().is_none_or(|b| b.is_full(now))
}

fn sweep(t: &mut Table, now: Instant) {
    t.ips.retain(|_, e| !idle(e, now));
    t.last_sweep = Some(now);
}

/// A connection's place in the node's count: released when dropped.
#[derive(Debug)]
pub(crate) struct AdmissionSlot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl AdmissionSlot {
    /// Admits a connection from `ip` now, or says why not.
    pub(crate) fn take(admission: &Arc<Admission>, ip: IpAddr) -> Result<Self, Refused> {
        admission.admit(ip, Instant::now())?;
        Ok(Self {
            admission: admission.clone(),
            ip,
        })
    }
}

impl Drop for AdmissionSlot {
    fn drop(&mut self) {
        self.admission.release(self.ip, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn everything_off_admits_and_tracks_nothing() {
        let a = Admission::new(LimitsConfig::default());
        let t = Instant::now();
        for n in 0..1000 {
            assert!(a.admit(ip(n), t).is_ok());
        }
        assert_eq!(a.open(), 1000);
        assert_eq!(a.tracked_ips(), 0);
    }

    #[test]
    fn node_cap_refuses_and_logs_once_until_it_frees() {
        let a = Admission::new(LimitsConfig {
            max_connections: 2,
            ..LimitsConfig::default()
        });
        let t = Instant::now();
        assert!(a.admit(ip(1), t).is_ok());
        assert!(a.admit(ip(2), t).is_ok());
        let r = a.admit(ip(3), t).expect_err("full");
        assert_eq!(r.why, Denied::NodeFull);
        assert!(r.first);
        assert!(!a.admit(ip(3), t).expect_err("full").first);
        a.release(ip(1), t);
        assert!(a.admit(ip(3), t).is_ok());
        assert!(a.admit(ip(4), t).expect_err("full").first);
        assert_eq!(Denied::NodeFull.status().0, 503);
    }

    #[test]
    fn per_ip_cap_is_per_address() {
        let a = Admission::new(LimitsConfig {
            max_connections_per_ip: 2,
            ..LimitsConfig::default()
        });
        let t = Instant::now();
        assert!(a.admit(ip(1), t).is_ok());
        assert!(a.admit(ip(1), t).is_ok());
        assert_eq!(a.admit(ip(1), t).map_err(|r| r.why), Err(Denied::IpFull));
        assert!(a.admit(ip(2), t).is_ok());
        a.release(ip(1), t);
        assert!(a.admit(ip(1), t).is_ok());
        a.release(ip(2), t);
        // An address with nothing open and no rate state is forgotten at once.
        assert_eq!(a.tracked_ips(), 1);
    }

    #[test]
    fn rate_with_burst_and_retry_after() {
        let a = Admission::new(LimitsConfig {
            connections_per_ip_per_second: 2,
            connections_per_ip_burst: 3,
            ..LimitsConfig::default()
        });
        let t = Instant::now();
        for _ in 0..3 {
            assert!(a.admit(ip(1), t).is_ok());
            a.release(ip(1), t);
        }
        let r = a.admit(ip(1), t).expect_err("rate");
        assert!(matches!(r.why, Denied::IpRate(_)));
        assert_eq!(r.why.status().0, 429);
        assert_eq!(r.why.retry_after(), 1);
        assert!(a.admit(ip(2), t).is_ok(), "another address is not affected");
        assert!(a.admit(ip(1), t + Duration::from_millis(501)).is_ok());
    }

    #[test]
    fn table_is_bounded_and_idle_addresses_are_evicted() {
        let a = Admission::new(LimitsConfig {
            connections_per_ip_per_second: 1,
            ..LimitsConfig::default()
        });
        let t = Instant::now();
        for n in 0..MAX_TRACKED_IPS as u32 {
            assert!(a.admit(ip(n), t).is_ok());
        }
        assert_eq!(a.tracked_ips(), MAX_TRACKED_IPS);
        // All hold a connection: a new address cannot be tracked.
        let r = a.admit(ip(u32::MAX), t).expect_err("table full");
        assert_eq!(r.why, Denied::TableFull);
        for n in 0..MAX_TRACKED_IPS as u32 {
            a.release(ip(n), t);
        }
        // Released but their buckets are not full yet: still tracked, then swept once idle.
        assert_eq!(a.tracked_ips(), MAX_TRACKED_IPS);
        assert!(a.admit(ip(u32::MAX), t + Duration::from_secs(2)).is_ok());
        assert_eq!(a.tracked_ips(), 1);
    }
}
