//! The HTTP health-check verdict on arbitrary answers: no panic; a verdict
//! once given does not change as more bytes arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moirai::proto::health::verdict;

fuzz_target!(|data: &[u8]| {
    let full = verdict(data, true);
    assert!(full.is_some(), "a closed connection always has a verdict");
    for cut in 0..data.len().min(64) {
        if let Some(v) = verdict(&data[..cut], false) {
            assert_eq!(Some(v), verdict(data, false));
        }
    }
});
