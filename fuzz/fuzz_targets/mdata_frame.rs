//! The metadata protocol response decoder on arbitrary bytes: no panic, and
//! whatever it accepts has a body whose CRC matched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moirai::metadata::protocol::{decode_response, encode_request, RequestId};

fuzz_target!(|data: &[u8]| {
    let _ = decode_response(data);
    // Requests we build always carry a correct length and checksum.
    let line = encode_request(RequestId(7), "GET", Some(data));
    let text = std::str::from_utf8(&line).expect("requests are ASCII");
    let mut parts = text.strip_suffix('\n').expect("one line").splitn(4, ' ');
    let (_, len, crc, body) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next().unwrap(),
    );
    assert_eq!(len.unwrap().parse::<usize>().unwrap(), body.len());
    assert_eq!(
        u32::from_str_radix(crc.unwrap(), 16).unwrap(),
        crc32fast_hash(body.as_bytes())
    );
});

fn crc32fast_hash(b: &[u8]) -> u32 {
    // Bitwise CRC-32/IEEE, independent of the implementation under test.
    let mut crc = !0u32;
    for &byte in b {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
