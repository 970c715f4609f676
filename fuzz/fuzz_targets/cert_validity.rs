//! The DER validity reader (ACME renewal dates) on arbitrary bytes: no
//! panic, and dates it finds are in order or honestly reported.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = moirai::tls::validity::validity(data);
});
