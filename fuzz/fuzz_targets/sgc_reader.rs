//! The sgc client frame reader (`protocol::sgc::inbound::parse`): any text a client sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscluster::internals::protocol::sgc::inbound::parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(m) = parse(text) {
            assert_eq!(m.size, text.len());
            let _ = m.is_qos2();
        }
    }
    // Invalid UTF-8 too, the way a lossy transport would hand it over.
    let _ = parse(&String::from_utf8_lossy(data));
});
