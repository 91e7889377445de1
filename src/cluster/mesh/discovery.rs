//! Peers found through DNS (`cluster.mesh.peers_dns`, `--peers-dns NAME:PORT`): each name is
//! resolved to all its addresses (A and AAAA, through the system resolver) at start and every
//! `cluster.mesh.dns_refresh_ms`. A new address becomes a dial target; an address no name returns
//! any more stops being dialled (unless it is linked, or known otherwise: `--peer`, gossip). This is
//! how a Kubernetes StatefulSet behind a headless Service finds its pods, whatever their IPs.
//!
//! - A failed resolution changes nothing: the addresses the name had stay targets (a DNS blip must
//!   not make a node forget its peers), and the node keeps trying at every refresh.
//! - Each change of state is logged once: the first result, a changed set of addresses, a failure
//!   (and a different failure), the recovery. An unchanged result is not logged.
//! - The node's own addresses (see `own.rs`: its bound address, every interface IP when bound to
//!   an unspecified IP, `advertise`) are skipped; an address that answers as this node anyway is
//!   dropped for good by the link handshake.
//! - Addresses found through DNS are not gossiped: every node resolves the name itself, and a pod's
//!   old IP must not spread after the pod is gone.
//!
//! [`NameWatch`] is the sans-I/O part (what a result changes and what to log); [`watch`] is the task.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::handshake::advertised;
use super::{DialTarget, Shared};

/// Longest a single resolution may take (a resolver that does not answer).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// What this node last knew of one name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    /// Not resolved yet.
    Nothing,
    /// Its addresses at the last successful resolution.
    Addresses(BTreeSet<SocketAddr>),
    /// The last resolution failed with this message; the addresses before it still count.
    Failed(String, BTreeSet<SocketAddr>),
}

/// What to log after a resolution (at most one line per resolution, only on a change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Log {
    /// The name resolved for the first time, or to another set of addresses.
    Resolved {
        /// The addresses now.
        addresses: Vec<SocketAddr>,
        /// How many are new since the last result.
        added: usize,
        /// How many are gone since the last result.
        removed: usize,
    },
    /// The name resolves again after failures (to the same addresses as before them).
    Recovered,
    /// The name did not resolve (or to nothing); the previous addresses are kept.
    Failed(String),
}

/// One `NAME:PORT` and what its resolutions said.
#[derive(Debug, Clone)]
pub(crate) struct NameWatch {
    /// `NAME:PORT` as configured.
    pub(crate) target: String,
    known: Known,
}

impl NameWatch {
    /// A name not resolved yet.
    pub(crate) fn new(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            known: Known::Nothing,
        }
    }

    /// The addresses this name stands for: those of its last successful resolution.
    pub(crate) fn addresses(&self) -> &BTreeSet<SocketAddr> {
        static EMPTY: BTreeSet<SocketAddr> = BTreeSet::new();
        match &self.known {
            Known::Nothing => &EMPTY,
            Known::Addresses(a) | Known::Failed(_, a) => a,
        }
    }

    /// Takes the result of one resolution; returns what to log, if anything changed.
    pub(crate) fn update(&mut self, result: Result<Vec<SocketAddr>, String>) -> Option<Log> {
        let result = result.and_then(|a| {
            if a.is_empty() {
                Err("resolved to no address".to_owned())
            } else {
                Ok(a.into_iter().collect::<BTreeSet<_>>())
            }
        });
        let previous = std::mem::replace(&mut self.known, Known::Nothing);
        let (known, log) = match (previous, result) {
            (Known::Nothing, Ok(now)) => {
                let log = resolved(&BTreeSet::new(), &now);
                (Known::Addresses(now), Some(log))
            }
            (Known::Addresses(before), Ok(now)) => {
                let log = (before != now).then(|| resolved(&before, &now));
                (Known::Addresses(now), log)
            }
            (Known::Failed(_, before), Ok(now)) => {
                let log = if before == now {
                    Log::Recovered
                } else {
                    resolved(&before, &now)
                };
                (Known::Addresses(now), Some(log))
            }
            (Known::Nothing, Err(e)) => (
                Known::Failed(e.clone(), BTreeSet::new()),
                Some(Log::Failed(e)),
            ),
            (Known::Addresses(before), Err(e)) => {
                (Known::Failed(e.clone(), before), Some(Log::Failed(e)))
            }
            (Known::Failed(old, before), Err(e)) => {
                let log = (old != e).then(|| Log::Failed(e.clone()));
                (Known::Failed(e, before), log)
            }
        };
        self.known = known;
        log
    }
}

fn resolved(before: &BTreeSet<SocketAddr>, now: &BTreeSet<SocketAddr>) -> Log {
    Log::Resolved {
        addresses: now.iter().copied().collect(),
        added: now.difference(before).count(),
        removed: before.difference(now).count(),
    }
}

/// Splits `NAME:PORT` (`[v6]:PORT` for a literal IPv6 address); `None` when there is no usable
/// port or no name.
pub(crate) fn parse_target(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port != 0).then_some((host, port))
}

/// Resolves `target` (`NAME:PORT`) through the system resolver, bounded by [`LOOKUP_TIMEOUT`].
async fn resolve(target: &str) -> Result<Vec<SocketAddr>, String> {
    let Some((host, port)) = parse_target(target) else {
        return Err("not NAME:PORT".to_owned());
    };
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => Ok(addrs.collect()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {LOOKUP_TIMEOUT:?}")),
    }
}

/// Whether `addr` is this node's own cluster address.
fn is_self(shared: &Shared, addr: SocketAddr) -> bool {
    addr.to_string() == advertised(shared) || shared.is_own(&shared.state.lock(), &addr.to_string())
}

/// Resolves the configured names now and every `dns_refresh_ms` until the engine stops.
pub(crate) async fn watch(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let mut names: Vec<NameWatch> = shared
        .cfg
        .peers_dns
        .iter()
        .map(|t| NameWatch::new(t.trim()))
        .collect();
    let mut first = true;
    loop {
        for name in &mut names {
            let result = tokio::select! {
                _ = stop.changed() => return,
                r = resolve(&name.target) => r,
            };
            match name.update(result) {
                None => {}
                Some(Log::Resolved {
                    addresses,
                    added,
                    removed,
                }) => {
                    let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                    tracing::info!(
                        name = %name.target,
                        addresses = %list.join(","),
                        added,
                        removed,
                        "peer DNS name resolved"
                    );
                }
                Some(Log::Recovered) => {
                    tracing::info!(name = %name.target, "peer DNS name resolves again");
                }
                Some(Log::Failed(error)) => {
                    tracing::warn!(
                        name = %name.target,
                        %error,
                        "peer DNS name does not resolve (keeps its previous addresses; retried every refresh)"
                    );
                }
            }
        }
        apply(&shared, &names, first);
        first = false;
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(shared.cfg.dns_refresh()) => {}
        }
    }
}

/// Makes the dial targets follow the names: new addresses are dialled, addresses no name returns
/// any more are forgotten (when they came from DNS only). Targets of the first round count for
/// `ready` like configured peers.
fn apply(shared: &Shared, names: &[NameWatch], first: bool) {
    let wanted: BTreeSet<SocketAddr> = names
        .iter()
        .flat_map(|n| n.addresses().iter().copied())
        .filter(|a| !is_self(shared, *a))
        .collect();
    let fresh: Vec<String> = {
        let mut st = shared.state.lock();
        if st.stopped {
            return;
        }
        let mut fresh = Vec::new();
        for addr in &wanted {
            let key = addr.to_string();
            if !st.targets.contains_key(&key) {
                st.targets.insert(
                    key.clone(),
                    DialTarget {
                        configured: first,
                        dns: true,
                        reach: Some(super::reach::Reach::new()),
                        ..DialTarget::default()
                    },
                );
                fresh.push(key);
            }
        }
        st.targets.retain(|key, t| {
            !t.dns || key.parse::<SocketAddr>().is_ok_and(|a| wanted.contains(&a))
        });
        if first {
            st.dns_pending = false;
        }
        fresh
    };
    // Dial loops of forgotten targets see it at their next check.
    shared.link_changed.notify_waiters();
    for addr in fresh {
        let _ = shared.dial_tx.send(addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn each_change_is_logged_once() {
        let mut w = NameWatch::new("peers:5410");
        let one = || Ok(vec![a("10.0.0.1:5410")]);
        let two = || Ok(vec![a("10.0.0.2:5410"), a("10.0.0.1:5410")]);
        assert_eq!(
            w.update(one()),
            Some(Log::Resolved {
                addresses: vec![a("10.0.0.1:5410")],
                added: 1,
                removed: 0
            })
        );
        assert_eq!(w.update(one()), None, "unchanged: silent");
        assert_eq!(
            w.update(two()),
            Some(Log::Resolved {
                addresses: vec![a("10.0.0.1:5410"), a("10.0.0.2:5410")],
                added: 1,
                removed: 0
            })
        );
        assert_eq!(w.update(two()), None, "order does not matter");
        assert_eq!(
            w.update(Err("timeout".into())),
            Some(Log::Failed("timeout".into()))
        );
        assert_eq!(
            w.update(Err("timeout".into())),
            None,
            "same failure: silent"
        );
        assert_eq!(w.addresses().len(), 2, "a failure keeps the addresses");
        assert_eq!(
            w.update(Err("NXDOMAIN".into())),
            Some(Log::Failed("NXDOMAIN".into()))
        );
        assert_eq!(w.update(two()), Some(Log::Recovered));
        assert_eq!(
            w.update(one()),
            Some(Log::Resolved {
                addresses: vec![a("10.0.0.1:5410")],
                added: 0,
                removed: 1
            })
        );
    }

    #[test]
    fn no_address_is_a_failure() {
        let mut w = NameWatch::new("peers:5410");
        assert_eq!(
            w.update(Ok(vec![])),
            Some(Log::Failed("resolved to no address".into()))
        );
        assert!(w.addresses().is_empty());
    }

    #[test]
    fn targets_need_a_name_and_a_port() {
        assert_eq!(
            parse_target("wscluster-headless.ns.svc.cluster.local:5410"),
            Some(("wscluster-headless.ns.svc.cluster.local", 5410))
        );
        assert_eq!(parse_target("[::1]:7"), Some(("::1", 7)));
        for bad in [
            "peers",
            "peers:",
            ":5410",
            "peers:0",
            "peers:99999",
            "peers:x",
        ] {
            assert_eq!(parse_target(bad), None, "{bad}");
        }
    }
}
