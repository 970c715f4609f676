//! DNS answers from the network: no panic for any bytes, any question type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moirai::control::dns::wire::{self, Qtype};

fuzz_target!(|data: &[u8]| {
    let id = data
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    for q in [Qtype::A, Qtype::Aaaa, Qtype::Srv] {
        let _ = wire::parse(data, id, "web.svc.u1.dc1.cns.test", q);
    }
});
