//! The response head parser on arbitrary bytes, for GET and HEAD: no
//! panic, and what it accepts lies inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moirai::proto::http1::response;

fuzz_target!(|data: &[u8]| {
    let mut drop = Vec::new();
    for was_head in [false, true] {
        if let Ok(Some(head)) = response::parse(data, was_head, &mut drop) {
            assert!(head.head_len <= data.len());
            assert!(head.end_of_fields <= head.head_len);
            assert!(drop.iter().all(|r| r.end <= head.end_of_fields));
        }
    }
});
