//! The HPACK Huffman code (RFC 7541 §5.2, Appendix B). The code is
//! canonical (codes of one length are consecutive, in symbol order), so
//! the 257 code lengths are the whole table; the codes and the decoding
//! tables are computed from them at compile time. Used by [`super::hpack`]
//! for string literals.

/// Code length of each symbol, 0–255 and EOS (256), from Appendix B.
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

/// The longest code (EOS and a few control bytes).
const MAX_LEN: usize = 30;
/// The end-of-string symbol, an error inside a string.
const EOS: u16 = 256;

/// The canonical tables: per length, how many codes, the first code, and
/// where its symbols start in `SYMBOLS`; and every code.
struct Tables {
    count: [u32; MAX_LEN + 1],
    first: [u32; MAX_LEN + 1],
    offset: [u32; MAX_LEN + 1],
    symbols: [u16; 257],
    codes: [u32; 257],
}

const fn tables() -> Tables {
    let mut t = Tables {
        count: [0; MAX_LEN + 1],
        first: [0; MAX_LEN + 1],
        offset: [0; MAX_LEN + 1],
        symbols: [0; 257],
        codes: [0; 257],
    };
    let mut s = 0;
    while s < 257 {
        t.count[LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let mut code = 0u32;
    let mut off = 0u32;
    let mut len = 1;
    while len <= MAX_LEN {
        code <<= 1;
        t.first[len] = code;
        t.offset[len] = off;
        code += t.count[len];
        off += t.count[len];
        len += 1;
    }
    // Symbols in (length, symbol) order, each given the next code.
    let mut next = t.first;
    let mut fill = t.offset;
    let mut s = 0;
    while s < 257 {
        let l = LENGTHS[s] as usize;
        t.symbols[fill[l] as usize] = s as u16;
        t.codes[s] = next[l];
        fill[l] += 1;
        next[l] += 1;
        s += 1;
    }
    t
}

static TABLES: Tables = tables();

/// Why a Huffman string was refused (all COMPRESSION_ERROR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol inside the string.
    Eos,
    /// More than 7 bits of padding.
    PaddingTooLong,
    /// Padding that is not the start of EOS (all ones).
    BadPadding,
}

/// Decodes `input`, appending to `out`. Stops with an error as soon as one
/// is certain; `out` then holds a partial string the caller drops.
pub fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let t = &TABLES;
    let mut code = 0u32;
    let mut len = 0usize;
    for &byte in input {
        for i in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> i) & 1);
            len += 1;
            let rel = code.wrapping_sub(t.first[len]);
            if rel < t.count[len] {
                let sym = t.symbols[(t.offset[len] + rel) as usize];
                if sym == EOS {
                    return Err(HuffmanError::Eos);
                }
                // Below 256: every other symbol is a byte.
                out.push(sym as u8);
                code = 0;
                len = 0;
            } else if len == MAX_LEN {
                // Every 30-bit pattern past the last code is EOS's prefix
                // space; the table is complete, so this cannot be reached
                // except by EOS itself, handled above.
                return Err(HuffmanError::Eos);
            }
        }
    }
    if len > 7 {
        return Err(HuffmanError::PaddingTooLong);
    }
    if code != (1 << len) - 1 {
        return Err(HuffmanError::BadPadding);
    }
    Ok(())
}

/// Appends the Huffman code of `input`, padded with ones.
pub fn encode(input: &[u8], out: &mut Vec<u8>) {
    let t = &TABLES;
    let mut acc = 0u64;
    let mut bits = 0u32;
    for &b in input {
        let l = u32::from(LENGTHS[usize::from(b)]);
        acc = (acc << l) | u64::from(t.codes[usize::from(b)]);
        bits += l;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        let pad = 8 - bits;
        out.push(((acc << pad) | ((1 << pad) - 1)) as u8);
    }
}

/// Bytes [`encode`] produces for `input`.
pub fn encoded_len(input: &[u8]) -> usize {
    let bits: usize = input
        .iter()
        .map(|&b| usize::from(LENGTHS[usize::from(b)]))
        .sum();
    bits.div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(b: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        let mut v = Vec::new();
        decode(b, &mut v).map(|_| v)
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn codes_match_appendix_b_samples() {
        // Spot checks against the RFC's table.
        assert_eq!(
            (TABLES.codes[b'0' as usize], LENGTHS[b'0' as usize]),
            (0x0, 5)
        );
        assert_eq!(
            (TABLES.codes[b' ' as usize], LENGTHS[b' ' as usize]),
            (0x14, 6)
        );
        assert_eq!(
            (TABLES.codes[b'a' as usize], LENGTHS[b'a' as usize]),
            (0x3, 5)
        );
        assert_eq!((TABLES.codes[0], LENGTHS[0]), (0x1ff8, 13));
        assert_eq!((TABLES.codes[256], LENGTHS[256]), (0x3fff_ffff, 30));
        assert_eq!((TABLES.codes[255], LENGTHS[255]), (0x3ffffee, 26));
    }

    #[test]
    fn rfc_7541_c4_strings_decode() {
        assert_eq!(
            dec(&hex("f1e3c2e5f23a6ba0ab90f4ff")).unwrap(),
            b"www.example.com"
        );
        assert_eq!(dec(&hex("a8eb10649cbf")).unwrap(), b"no-cache");
        assert_eq!(dec(&hex("25a849e95ba97d7f")).unwrap(), b"custom-key");
        assert_eq!(dec(&hex("25a849e95bb8e8b4bf")).unwrap(), b"custom-value");
    }

    #[test]
    fn rfc_7541_c6_strings_decode() {
        assert_eq!(
            dec(&hex("d07abe941054d444a8200595040b8166e082a62d1bff")).unwrap(),
            b"Mon, 21 Oct 2013 20:13:21 GMT"
        );
        assert_eq!(
            dec(&hex("9d29ad171863c78f0b97c8e9ae82ae43d3")).unwrap(),
            b"https://www.example.com"
        );
    }

    #[test]
    fn encoding_matches_the_rfc() {
        let mut v = Vec::new();
        encode(b"www.example.com", &mut v);
        assert_eq!(v, hex("f1e3c2e5f23a6ba0ab90f4ff"));
        assert_eq!(encoded_len(b"www.example.com"), 12);
    }

    #[test]
    fn eos_inside_a_string_is_refused() {
        assert_eq!(dec(&[0xff, 0xff, 0xff, 0xff]), Err(HuffmanError::Eos));
    }

    #[test]
    fn padding_longer_than_seven_bits_is_refused() {
        // 'a' (00011) then 11 ones: 8+ bits of padding.
        assert_eq!(dec(&[0x1f, 0xff]), Err(HuffmanError::PaddingTooLong));
        assert_eq!(dec(&[0xff]), Err(HuffmanError::PaddingTooLong));
    }

    #[test]
    fn padding_with_zeros_is_refused() {
        // '0' is 00000; "00000" + "000" is '0' then three zero bits.
        assert_eq!(dec(&[0x00]), Err(HuffmanError::BadPadding));
    }

    #[test]
    fn empty_input_is_the_empty_string() {
        assert_eq!(dec(&[]).unwrap(), b"");
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(s in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut e = Vec::new();
            encode(&s, &mut e);
            prop_assert_eq!(e.len(), encoded_len(&s));
            prop_assert_eq!(dec(&e).unwrap(), s);
        }

        #[test]
        fn any_input_decodes_or_fails_without_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut out = Vec::new();
            let r = decode(&b, &mut out);
            // Codes are at least 5 bits: never more symbols than 8/5 per byte.
            prop_assert!(out.len() <= b.len() * 8 / 5);
            if r.is_ok() {
                let mut again = Vec::new();
                encode(&out, &mut again);
                prop_assert_eq!(again, b);
            }
        }
    }
}
