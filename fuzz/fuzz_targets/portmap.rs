//! The portmap parser on arbitrary text: no panic, errors inside the input,
//! and every accepted entry prints back to text that parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moirai::config::portmap;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (services, errors) = portmap::parse(text);
    for e in &errors {
        assert!(e.offset <= text.len());
    }
    for (_, s) in services {
        let printed = s.to_string();
        let back = portmap::parse_entry(&printed).expect("printed entry parses");
        assert_eq!(back, s);
    }
});
