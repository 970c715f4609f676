//! The timeouts parser on arbitrary text: no panic, caps respected, and
//! the result prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moirai::config::timeouts::{self, MAX_IDLE_MS};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (t, _) = timeouts::parse(text);
    assert!(t.client.as_millis() <= u128::from(MAX_IDLE_MS));
    assert!(t.server.as_millis() <= u128::from(MAX_IDLE_MS));
    assert_eq!(timeouts::parse(&t.to_metadata()).0, t);
});
