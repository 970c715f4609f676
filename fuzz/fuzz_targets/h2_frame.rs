//! HTTP/2 frames on arbitrary bytes: headers and payloads cut one after
//! another; no panic; whatever the header checks pass and parses
//! re-encodes to bytes that parse to the same frame; parsing never reads
//! past its payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moirai::proto::h2::frame::{self, Header, DEFAULT_MAX_FRAME_SIZE, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    while let Some(h) = Header::parse(&data[at..]) {
        assert_eq!(Header::parse(&h.encode()), Some(h));
        let start = at + HEADER_LEN;
        let end = start.saturating_add(h.length as usize);
        let Some(payload) = data.get(start..end) else {
            break;
        };
        at = end;
        let checked = h.check(DEFAULT_MAX_FRAME_SIZE);
        match frame::parse(&h, payload) {
            Ok(f) => {
                let mut out = Vec::new();
                f.encode(&mut out);
                let h2 = Header::parse(&out).expect("a header");
                assert_eq!(h2.length as usize, out.len() - HEADER_LEN);
                assert_eq!(frame::parse(&h2, &out[HEADER_LEN..]), Ok(f));
                // A frame within our size that parses passed the checks.
                if h.length <= DEFAULT_MAX_FRAME_SIZE {
                    assert_eq!(checked, Ok(()));
                }
            }
            Err(e) => {
                assert!(e.code().to_u32() != 0);
            }
        }
    }
});
