//! The streaming chunked decoder: fed in two pieces split anywhere, it
//! consumes exactly what it consumes in one piece, never more than given,
//! and errors the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moirai::proto::http1::body::{BodyTracker, Framing};

fuzz_target!(|input: (u16, &[u8])| {
    let (split, data) = input;
    let mut whole = BodyTracker::new(Framing::Chunked);
    let one = whole.advance(data);
    let cut = usize::from(split) % (data.len() + 1);
    let mut parts = BodyTracker::new(Framing::Chunked);
    let two = parts.advance(&data[..cut]).and_then(|a| {
        assert!(a <= cut);
        if a < cut {
            // It stopped early (body done): the rest is not its business.
            return Ok(a);
        }
        parts.advance(&data[cut..]).map(|b| a + b)
    });
    match (one, two) {
        (Ok(a), Ok(b)) => {
            assert!(a <= data.len());
            assert_eq!(a, b);
            assert_eq!(whole.is_done(), parts.is_done());
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("one piece {a:?}, two pieces {b:?}"),
    }
});
