//! The metrics endpoint's request routing on arbitrary heads: no panic, and
//! a denied peer always gets 403 whatever it sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moirai::metrics::server::{answer, Answer};

fuzz_target!(|data: &[u8]| {
    assert_eq!(answer(data, false), Some(Answer::Status(403)));
    let _ = answer(data, true);
});
