//! The tolerant sgcJSON pre-pass (`protocol::json::sanitize`), the lenient object reader on its
//! output, and the `sgc@b64:` decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscluster::internals::protocol::json::{
    Payload, RawObject, decode_b64, encode_b64, raw_to_text, sanitize,
};

fn exercise(text: &str) {
    let clean = sanitize(text);
    // Idempotent: sanitized text needs no further change.
    assert_eq!(sanitize(&clean), clean, "sanitize is not idempotent");
    if let Some(obj) = RawObject::parse(&clean) {
        for key in [
            "jsonrpc", "method", "params", "id", "message", "channel", "member",
        ] {
            if let Some(raw) = obj.raw(key) {
                let _ = raw_to_text(raw);
                let payload = Payload::from_raw(raw);
                let mut out = Vec::new();
                payload.write(&mut out);
                // What the writers produce is strict JSON.
                let written = std::str::from_utf8(&out).expect("writer output is UTF-8");
                assert!(
                    serde_json::from_str::<serde::de::IgnoredAny>(written).is_ok(),
                    "payload writer produced invalid JSON: {written:?}"
                );
                let _ = RawObject::from_raw(raw);
            }
        }
        let _ = obj.object("params");
    }
    // Strict JSON passes through the pre-pass unchanged, and a strict object stays one.
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        assert_eq!(clean, text, "sanitize changed valid JSON");
    }
    if serde_json::from_str::<std::collections::HashMap<String, serde::de::IgnoredAny>>(text)
        .is_ok()
    {
        assert!(
            RawObject::parse(&clean).is_some(),
            "sanitize broke a valid JSON object"
        );
    }
    let decoded = decode_b64(text);
    if !text.starts_with("sgc@b64:") {
        assert_eq!(decoded, text);
    }
    // encode then decode is the identity.
    assert_eq!(decode_b64(&encode_b64(text)), text);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        exercise(text);
    }
    exercise(&String::from_utf8_lossy(data));
});
