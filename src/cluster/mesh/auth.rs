//! Mutual authentication of a mesh link by a shared cluster secret, without the secret ever
//! crossing the wire: each side sends a fresh random nonce, and proves knowledge of the secret with
//! an HMAC-SHA256 over the link protocol version, its role, the cluster name, both node ids and both
//! nonces. A recorded proof is useless on another link (other nonces) and cannot be reflected (the
//! role is part of it).
//!
//! The dialer proves first; the acceptor sends its own proof only to a dialer whose proof it
//! checked (`handshake.rs`). A stranger who reaches the cluster port therefore never receives an
//! HMAC computed with the secret, and has nothing to guess the secret against offline.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::wire::{LINK_PROTOCOL, NONCE_LEN};

/// Which end of a link a proof is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The node that dialled.
    Dialer,
    /// The node that accepted.
    Acceptor,
}

/// Everything both ends agree on by the time proofs are exchanged.
#[derive(Debug, Clone, Copy)]
pub struct Transcript<'a> {
    /// The cluster name both ends claim.
    pub cluster: &'a str,
    /// The dialer's node id.
    pub dialer_id: &'a str,
    /// The acceptor's node id.
    pub acceptor_id: &'a str,
    /// The dialer's nonce.
    pub dialer_nonce: &'a [u8; NONCE_LEN],
    /// The acceptor's nonce.
    pub acceptor_nonce: &'a [u8; NONCE_LEN],
}

/// A fresh random nonce.
pub fn new_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    let a = uuid::Uuid::new_v4().into_bytes();
    let b = uuid::Uuid::new_v4().into_bytes();
    n[..16].copy_from_slice(&a);
    n[16..].copy_from_slice(&b);
    n
}

fn mac(secret: &[u8], role: Role, t: &Transcript<'_>) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail; an empty secret still yields a MAC.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    let role_tag: &[u8] = match role {
        Role::Dialer => b"dialer",
        Role::Acceptor => b"acceptor",
    };
    for part in [
        LINK_PROTOCOL.as_bytes(),
        role_tag,
        t.cluster.as_bytes(),
        t.dialer_id.as_bytes(),
        t.acceptor_id.as_bytes(),
        t.dialer_nonce.as_slice(),
        t.acceptor_nonce.as_slice(),
    ] {
        m.update(&(part.len() as u64).to_be_bytes());
        m.update(part);
    }
    m
}

/// The proof `role` sends for this transcript.
pub fn proof(secret: &[u8], role: Role, t: &Transcript<'_>) -> Vec<u8> {
    mac(secret, role, t).finalize().into_bytes().to_vec()
}

/// Checks, in constant time, a proof received from the other end playing `role`.
pub fn verify(secret: &[u8], role: Role, t: &Transcript<'_>, received: &[u8]) -> bool {
    mac(secret, role, t).verify_slice(received).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript<'a>(dn: &'a [u8; 32], an: &'a [u8; 32]) -> Transcript<'a> {
        Transcript {
            cluster: "prod",
            dialer_id: "a",
            acceptor_id: "b",
            dialer_nonce: dn,
            acceptor_nonce: an,
        }
    }

    #[test]
    fn same_secret_verifies_other_secret_does_not() {
        let (dn, an) = (new_nonce(), new_nonce());
        let t = transcript(&dn, &an);
        let p = proof(b"s3cret", Role::Dialer, &t);
        assert!(verify(b"s3cret", Role::Dialer, &t, &p));
        assert!(!verify(b"other", Role::Dialer, &t, &p));
        assert!(
            !verify(b"s3cret", Role::Acceptor, &t, &p),
            "proofs cannot be reflected"
        );
        assert!(!p.windows(6).any(|w| w == b"s3cret"));
    }

    /// The proof covers the link protocol version: a proof made under another version's tag
    /// (as a version 1 node would) does not verify.
    #[test]
    fn a_proof_is_bound_to_the_link_protocol() {
        let (dn, an) = (new_nonce(), new_nonce());
        let t = transcript(&dn, &an);
        let mut v1 = <Hmac<Sha256> as Mac>::new_from_slice(b"k").unwrap_or_else(|_| unreachable!());
        for part in [
            b"wscluster-mesh-v1 dialer".as_slice(),
            b"prod",
            b"a",
            b"b",
            dn.as_slice(),
            an.as_slice(),
        ] {
            v1.update(&(part.len() as u64).to_be_bytes());
            v1.update(part);
        }
        let old = v1.finalize().into_bytes().to_vec();
        assert!(!verify(b"k", Role::Dialer, &t, &old));
        assert!(verify(
            b"k",
            Role::Dialer,
            &t,
            &proof(b"k", Role::Dialer, &t)
        ));
    }

    #[test]
    fn a_proof_is_bound_to_its_nonces() {
        let (dn, an, other) = (new_nonce(), new_nonce(), new_nonce());
        let p = proof(b"k", Role::Acceptor, &transcript(&dn, &an));
        assert!(!verify(b"k", Role::Acceptor, &transcript(&dn, &other), &p));
        assert_ne!(dn, an);
    }
}
