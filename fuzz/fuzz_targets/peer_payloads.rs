//! What peers relay inside envelopes: the Presence and sgc adapters' payload decoders (postcard
//! headers, message bytes after them), with a round trip on what decodes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wscluster::internals::cluster::envelope::Kind;
use wscluster::internals::cluster::fuzzing;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the sgc kind; the rest is the payload.
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let kind = match pick % 4 {
        0 => Kind::SgcPublish,
        1 => Kind::SgcBroadcast,
        2 => Kind::SgcClearQueue,
        _ => Kind::SgcRetainedSnapshot,
    };
    let bytes = Bytes::copy_from_slice(payload);
    if kind == Kind::SgcRetainedSnapshot {
        if let Some((snapshot, again)) = fuzzing::sgc_snapshot(payload) {
            assert_eq!(
                again.as_ref(),
                Some(&snapshot),
                "retained snapshot round trip"
            );
        }
    } else if let Some((event, again)) = fuzzing::sgc(kind, &bytes) {
        assert_eq!(again.as_ref(), Some(&event), "sgc event round trip");
    }
    if let Some((event, again)) = fuzzing::presence(payload) {
        assert_eq!(again.as_ref(), Some(&event), "presence event round trip");
    }
});
