//! The chunked relay on arbitrary bytes, fed in two pieces split anywhere
//! (as reads deliver them): it writes and consumes exactly what it does in
//! one piece, never more than given, errors the same way, and whatever it
//! writes is canonical chunked framing.
#![no_main]

use std::io::IoSlice;

use libfuzzer_sys::fuzz_target;
use moirai::proto::http1::body::{relay, Body, Framing, RelayError};

/// Relays `input` into `out`; returns bytes consumed, or the error.
fn run(body: &mut Body, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ()> {
    let r = relay(body, input, |s: &[IoSlice<'_>]| {
        let n = s.iter().map(|x| x.len()).sum();
        s.iter().for_each(|x| out.extend_from_slice(x));
        Ok(n)
    });
    match r {
        Ok(r) => Ok(r.consumed),
        Err(RelayError::Framing(_)) => Err(()),
        Err(RelayError::Write(e)) => panic!("{e}"),
    }
}

fuzz_target!(|input: (u16, &[u8])| {
    let (split, data) = input;
    let mut whole = Body::new(Framing::Chunked);
    let mut out1 = Vec::new();
    let one = run(&mut whole, data, &mut out1);
    let cut = usize::from(split) % (data.len() + 1);
    let mut parts = Body::new(Framing::Chunked);
    let mut out2 = Vec::new();
    let two = run(&mut parts, &data[..cut], &mut out2).and_then(|a| {
        assert!(a <= cut);
        // What was not consumed is offered again with the rest.
        run(&mut parts, &data[a..], &mut out2).map(|b| a + b)
    });
    match (one, two) {
        (Ok(a), Ok(b)) => {
            assert!(a <= data.len());
            assert_eq!(a, b);
            assert_eq!(whole.is_done(), parts.is_done());
            assert_eq!(out1, out2);
            if whole.is_done() {
                // The output is itself a valid chunked body, re-framed to
                // the same bytes.
                let mut again = Body::new(Framing::Chunked);
                let mut out3 = Vec::new();
                assert_eq!(run(&mut again, &out1, &mut out3), Ok(out1.len()));
                assert!(again.is_done());
                assert_eq!(out3, out1);
            }
        }
        (Err(()), Err(())) => {}
        (a, b) => panic!("one piece {a:?}, two pieces {b:?}"),
    }
});
