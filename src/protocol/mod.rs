//! Client protocols: the codecs themselves (`sgc`, `presence`) with their shared tolerant JSON reader
//! and channel masks.
//!
//! A protocol sees connections and text; it knows nothing of sockets (the transport feeds it) nor of
//! cluster engines (it emits [`crate::relay`] events and accepts remote ones through its own API).

pub(crate) use crate::transport::protocol::{Protocol, StopFuture};

pub mod access;
pub mod json;
pub(crate) mod mask;
pub mod presence;
pub mod sgc;

#[cfg(test)]
mod tests {
    use super::presence::{PresenceConfig, PresenceProtocol};
    use super::sgc::{SgcConfig, SgcProtocol};
    use crate::transport::limits::LimitsConfig;

    fn protocols() -> (SgcProtocol, PresenceProtocol) {
        (
            SgcProtocol::new(SgcConfig::default()),
            PresenceProtocol::new(PresenceConfig::default()),
        )
    }

    #[test]
    fn the_metrics_know_the_protocols_by_their_tokens() {
        use crate::metrics::Protocol;
        assert_eq!(Protocol::Sgc.token(), super::sgc::PROTOCOL_NAME);
        assert_eq!(Protocol::Presence.token(), super::presence::PROTOCOL_NAME);
    }

    #[test]
    fn per_protocol_size_defaults_to_and_is_capped_by_the_transport() {
        let (sgc, presence) = protocols();
        let mut l = LimitsConfig::default();
        assert_eq!(l.max_message_size(Some(&sgc), 1000), 1000);
        l.max_message_size_sgc = 100;
        l.max_message_size_presence = 5000;
        assert_eq!(l.max_message_size(Some(&sgc), 1000), 100);
        assert_eq!(l.max_message_size(Some(&presence), 1000), 1000);
        assert_eq!(l.max_message_size(None, 1000), 1000);
    }
}
