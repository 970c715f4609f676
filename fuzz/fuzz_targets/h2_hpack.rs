//! HPACK decoding on arbitrary blocks sharing one decoder (so the dynamic
//! table carries over): no panic; the table stays within its maximum and
//! ours; a list is held to its limits; a decoded list re-encoded by our
//! encoder decodes to itself on a fresh decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moirai::proto::h2::hpack::{encode, Decoder, ListLimits};

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let allowed = 64 * usize::from(first);
    let limits = ListLimits {
        max_list_size: 256 + 64 * usize::from(first),
        max_fields: 1 + usize::from(first % 128),
    };
    let mut d = Decoder::new(allowed);
    // Blocks: a length byte, then that many bytes.
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        let (block, next) = tail.split_at(n);
        rest = next;
        let Ok(list) = d.decode(block, limits) else {
            break;
        };
        assert!(d.table_size() <= d.table_max());
        assert!(d.table_max() <= allowed);
        match list.over {
            None => {
                assert!(list.list_size <= limits.max_list_size);
                assert!(list.fields.len() <= limits.max_fields);
                assert_eq!(list.fields.len(), list.count);
            }
            Some(_) => assert!(list.fields.is_empty()),
        }
        let mut again = Vec::new();
        encode(&mut again, list.fields.iter().map(|f| (f.name, f.value)));
        let wide = ListLimits {
            max_list_size: usize::MAX,
            max_fields: usize::MAX,
        };
        let back = Decoder::default()
            .decode(&again, wide)
            .expect("our own block");
        assert_eq!(back.fields, list.fields);
    }
});
