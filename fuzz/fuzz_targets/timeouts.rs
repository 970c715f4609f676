//! The timeouts parser on arbitrary text: no panic, caps respected (0
//! means no timeout, as in Moirai: `NEVER`), and the result prints back
//! to itself.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use moirai::config::timeouts::{self, MAX_IDLE_MS, NEVER};

/// Within the cap, or no timeout at all.
fn capped(d: Duration) -> bool {
    d == NEVER || d.as_millis() <= u128::from(MAX_IDLE_MS)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (t, _) = timeouts::parse(text);
    assert!(capped(t.client), "{text:?}: client {:?}", t.client);
    assert!(capped(t.server), "{text:?}: server {:?}", t.server);
    assert_eq!(timeouts::parse(&t.to_metadata()).0, t);
});
