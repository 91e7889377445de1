//! This node's own cluster addresses: never listed as a peer, never dialled.
//!
//! A node bound to a specific IP is at that IP and its port. A node bound to an unspecified IP
//! (`0.0.0.0`, `::`, the default) is at every IP of its interfaces with its port; on Linux these
//! are read from `/proc/net/fib_trie` (IPv4 local routes) and `/proc/net/if_inet6`. The
//! `advertise` address is the node's too. An address given as a host name cannot be told apart
//! before it is dialled: the link handshake recognises the node itself and the address is then
//! remembered as its own (`State::own`).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Whether `addr` is the node bound at `local` (advertising `advertise`), given the IPs of its
/// interfaces.
pub(crate) fn is_own(addr: SocketAddr, local: SocketAddr, advertise: &str, ips: &[IpAddr]) -> bool {
    if addr == local || (!advertise.is_empty() && addr.to_string() == advertise) {
        return true;
    }
    if addr.port() != local.port() {
        return false;
    }
    if addr.ip().is_unspecified() {
        return true;
    }
    local.ip().is_unspecified() && (addr.ip().is_loopback() || ips.contains(&addr.ip()))
}

/// Whether the address string `addr` is the node's own (see [`is_own`]); a host name is not
/// recognised here (the handshake does it).
pub(crate) fn is_own_str(addr: &str, local: SocketAddr, advertise: &str, ips: &[IpAddr]) -> bool {
    if !advertise.is_empty() && addr == advertise {
        return true;
    }
    addr.parse::<SocketAddr>()
        .is_ok_and(|a| is_own(a, local, advertise, ips))
}

/// The IPs of this host's interfaces (empty where they cannot be read).
pub(crate) fn local_ips() -> Vec<IpAddr> {
    let mut ips = std::fs::read_to_string("/proc/net/fib_trie")
        .map(|t| parse_fib_trie(&t))
        .unwrap_or_default();
    if let Ok(t) = std::fs::read_to_string("/proc/net/if_inet6") {
        ips.extend(parse_if_inet6(&t));
    }
    ips.sort();
    ips.dedup();
    ips
}

/// The IPv4 addresses of `/proc/net/fib_trie` marked `/32 host LOCAL` (the host's own).
fn parse_fib_trie(text: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut last: Option<IpAddr> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(ip) = line.strip_prefix("|-- ") {
            last = ip.trim().parse().ok();
        } else if line.contains("/32 host LOCAL")
            && let Some(ip) = last
        {
            out.push(ip);
        }
    }
    out
}

/// The IPv6 addresses of `/proc/net/if_inet6` (32 hex digits first on each line).
fn parse_if_inet6(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|hex| {
            u128::from_str_radix(hex, 16)
                .ok()
                .filter(|_| hex.len() == 32)
        })
        .map(|v| IpAddr::V6(Ipv6Addr::from(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn an_unspecified_bind_owns_every_local_ip_at_its_port() {
        let ips: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap_or_else(|e| panic!("{e}"))];
        let local = sa("0.0.0.0:5410");
        assert!(is_own(sa("10.0.0.2:5410"), local, "", &ips));
        assert!(is_own(sa("127.0.0.1:5410"), local, "", &ips));
        assert!(is_own(sa("0.0.0.0:5410"), local, "", &ips));
        assert!(
            !is_own(sa("10.0.0.3:5410"), local, "", &ips),
            "another host"
        );
        assert!(
            !is_own(sa("10.0.0.2:5411"), local, "", &ips),
            "another port"
        );
        assert!(!is_own(sa("127.0.0.2:5411"), local, "", &ips));
    }

    #[test]
    fn a_specific_bind_owns_its_address_and_advertise() {
        let local = sa("127.0.0.2:5410");
        assert!(is_own(sa("127.0.0.2:5410"), local, "", &[]));
        assert!(
            !is_own(sa("127.0.0.3:5410"), local, "", &[]),
            "a peer on loopback"
        );
        assert!(is_own_str("node-a:5410", local, "node-a:5410", &[]));
        assert!(!is_own_str("node-b:5410", local, "node-a:5410", &[]));
        assert!(is_own(sa("192.0.2.7:80"), local, "192.0.2.7:80", &[]));
    }

    #[test]
    fn proc_files_are_read() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.0.0\n        /24 link UNICAST\n     \
                   |-- 10.0.0.2\n        /32 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\n";
        let ips = parse_fib_trie(fib);
        assert_eq!(
            ips,
            vec![
                "10.0.0.2"
                    .parse::<IpAddr>()
                    .unwrap_or_else(|e| panic!("{e}")),
                "127.0.0.1"
                    .parse::<IpAddr>()
                    .unwrap_or_else(|e| panic!("{e}")),
            ]
        );
        let v6 = parse_if_inet6("00000000000000000000000000000001 01 80 10 80       lo\n");
        assert_eq!(v6, vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
        assert!(local_ips().iter().any(IpAddr::is_loopback) || !cfg!(target_os = "linux"));
    }
}
