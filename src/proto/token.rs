//! RFC 9110 §5.6.2 tokens, by table: every field name of every request
//! and response is checked byte by byte, and a lookup is one load where
//! a search of the delimiter list was a dozen compares. And the optional
//! whitespace (§5.6.3) around a field value.

/// Whether each byte is a `tchar`.
const TCHAR: [bool; 256] = alphanumeric_and(b"!#$%&'*+-.^_`|~");

/// A table of the bytes that are ASCII letters or digits, or in `extra`:
/// how each byte set of the HTTP grammars is built at compile time.
pub const fn alphanumeric_and(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_alphanumeric();
        i += 1;
    }
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
}

/// Each byte in lowercase if it is a `tchar`, else 0: a field name is
/// checked and lowercased in one pass.
pub const LOWER_TCHAR: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        if TCHAR[i] {
            t[i] = (i as u8).to_ascii_lowercase();
        }
        i += 1;
    }
    t
};

/// A `tchar`.
pub fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// How many bytes `s` begins with are `tchar`s.
pub fn token_len(s: &[u8]) -> usize {
    s.iter().position(|&b| !is_tchar(b)).unwrap_or(s.len())
}

/// A non-empty token.
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// A non-empty token without uppercase letters (an HTTP/2 field name,
/// RFC 9113 §8.2.1).
pub fn is_lowercase_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b) && !b.is_ascii_uppercase())
}

/// `v` without the spaces and tabs at its ends.
pub fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_rfc_9110s_tchar() {
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), want, "byte {b:#04x}");
        }
        assert!(is_token(b"X-Forwarded-For"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(is_lowercase_token(b"x-a"));
        assert!(!is_lowercase_token(b"X-a"));
        for b in 0..=255u8 {
            let want = if is_tchar(b) {
                b.to_ascii_lowercase()
            } else {
                0
            };
            assert_eq!(LOWER_TCHAR[b as usize], want, "byte {b:#04x}");
        }
    }

    #[test]
    fn only_spaces_and_tabs_are_trimmed() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"\x0ba\r"), b"\x0ba\r");
        assert_eq!(trim_ows(b" \t "), b"");
    }
}
