//! The body of every message the load generator publishes: a send timestamp and padding.
//!
//! The body is plain ASCII, `"<send_ns>:"` followed by `x` up to the requested size, so it travels
//! as a JSON string (sgc `message`, Presence `message.text`) that needs no escaping and that the
//! server forwards unchanged. A receiver reads the leading digits back to compute the latency on
//! the same clock ([`crate::clock`]). When the requested size is smaller than the timestamp, the
//! body is just the timestamp and its colon.

/// The body of the cross-node probe (see `crate::publisher`): not a timestamp, so it is never
/// counted as a delivery.
pub(crate) const PROBE: &str = "wscluster-loadgen-probe";

/// Appends the body for a message sent at `send_ns`, `size` bytes long (at least the timestamp).
pub(crate) fn write_body(out: &mut Vec<u8>, send_ns: u64, size: usize) {
    let start = out.len();
    let mut digits = [0u8; 20];
    let mut n = send_ns;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.push(b':');
    let written = out.len() - start;
    if size > written {
        out.resize(start + size, b'x');
    }
}

/// Reads the send timestamp at the start of a body, `None` if it is not one of ours.
pub(crate) fn read_send_ns(body: &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    let mut digits = 0;
    for &b in body {
        match b {
            b'0'..=b'9' => {
                value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                digits += 1;
            }
            b':' if digits > 0 => return Some(value),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn body_has_the_requested_size_and_reads_back() {
        let mut out = b"prefix".to_vec();
        write_body(&mut out, 123_456_789, 100);
        assert_eq!(out.len(), 6 + 100);
        assert!(out[6..].starts_with(b"123456789:xxx"));
        assert_eq!(read_send_ns(&out[6..]), Some(123_456_789));
    }

    #[test]
    fn a_small_size_keeps_the_whole_timestamp() {
        let mut out = Vec::new();
        write_body(&mut out, 0, 1);
        assert_eq!(out, b"0:");
        assert_eq!(read_send_ns(&out), Some(0));
    }

    #[test]
    fn foreign_bodies_are_not_read() {
        assert_eq!(read_send_ns(b"hello"), None);
        assert_eq!(read_send_ns(b":12"), None);
        assert_eq!(read_send_ns(b"12"), None);
        assert_eq!(read_send_ns(b"99999999999999999999999:"), None);
    }

    proptest! {
        #[test]
        fn every_timestamp_round_trips(ns in any::<u64>(), size in 0usize..300) {
            let mut out = Vec::new();
            write_body(&mut out, ns, size);
            prop_assert!(out.len() >= size);
            prop_assert!(out.iter().all(|b| b.is_ascii_alphanumeric() || *b == b':'));
            prop_assert_eq!(read_send_ns(&out), Some(ns));
        }
    }
}
