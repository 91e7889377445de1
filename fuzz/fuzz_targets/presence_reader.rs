//! The Presence client frame reader (`protocol::presence::frame::parse`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscluster::internals::protocol::presence::frame::parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(f) = parse(text) {
            assert!(f.id.as_deref() != Some(""));
        }
    }
    let _ = parse(&String::from_utf8_lossy(data));
});
