//! The DER readers (ACME renewal dates; subject and issuer names for
//! `moirai status`) on arbitrary bytes: no panic, whatever they find.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = moirai::tls::validity::validity(data);
    let _ = moirai::tls::validity::subject_and_issuer(data);
});
