//! The request head parser on arbitrary bytes: no panic; a head it accepts
//! lies inside the input, with its dropped lines inside the head, sorted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moirai::proto::http1::request;

fuzz_target!(|data: &[u8]| {
    let (mut drop, mut rest) = (Vec::new(), Vec::new());
    if let Ok(Some(head)) = request::parse(data, &mut drop, &mut rest) {
        assert!(head.head_len <= data.len());
        assert!(head.end_of_fields <= head.head_len);
        let mut last = 0;
        for r in &drop {
            assert!(r.start >= last && r.end <= head.end_of_fields);
            last = r.end;
        }
    }
});
