//! An HTTP/1.1 response head into HTTP/2 fields, as a pure function for
//! the front: names lowercased, hop-by-hop fields dropped (§8.2.2), 1xx
//! carried as interim blocks (101 cannot be), trailers carried without
//! their framing fields. The head was parsed by `proto/http1`; this only
//! re-checks what HTTP/2 is stricter about.

use super::hpack::{self, Field};
use super::to_h1::check_value;
use crate::proto::token;

/// Why a backend's response cannot go to an HTTP/2 client: the front
/// answers 502.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// 101 Switching Protocols: no upgrade on HTTP/2 (§8.6).
    SwitchingProtocols,
    /// A status outside 100–999.
    Status,
    /// A field name that is not a token.
    Name,
    /// A field value with a control byte or edge whitespace.
    Value,
    /// The head's status line is not one (it always is: the head was
    /// parsed before).
    Head,
}

/// A response block to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `:status` first, then the fields.
    pub fields: Vec<Field>,
    /// A 1xx: more blocks follow, END_STREAM never set on it.
    pub interim: bool,
}

/// Fields that mean something only on one HTTP/1.1 connection.
const HOP_BY_HOP: [&[u8]; 7] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
    b"te",
    b"http2-settings",
];

/// The names a `Connection` field lists (they are hop-by-hop too).
fn connection_tokens<'a>(fields: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vec<Vec<u8>> {
    fields
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(|t| t.trim_ascii().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Names longer than this are lowercased on the heap; the rest on the
/// stack (every response goes through here).
const SHORT_NAME: usize = 64;

/// Where field names are lowercased: on the stack, or on the heap when
/// longer than [`SHORT_NAME`].
struct Lowered {
    short: [u8; SHORT_NAME],
    long: Vec<u8>,
}

impl Default for Lowered {
    fn default() -> Lowered {
        Lowered {
            short: [0; SHORT_NAME],
            long: Vec::new(),
        }
    }
}

impl Lowered {
    /// `name` in lowercase, valid until the next call.
    fn of(&mut self, name: &[u8]) -> &[u8] {
        if let Some(s) = self.short.get_mut(..name.len()) {
            s.copy_from_slice(name);
            s.make_ascii_lowercase();
            return s;
        }
        self.long.clear();
        self.long.extend(name.iter().map(u8::to_ascii_lowercase));
        &self.long
    }
}

/// Hands each field HTTP/2 keeps to `emit`, its name lowercased, in
/// order. Nothing is allocated unless a name is long or a `Connection`
/// field lists names.
fn convert<'a>(
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    also_drop: &[&[u8]],
    mut emit: impl FnMut(&[u8], &[u8]),
) -> Result<(), Refused> {
    let listed = connection_tokens(fields.clone());
    let mut lower = Lowered::default();
    for (name, value) in fields {
        if !token::is_token(name) {
            return Err(Refused::Name);
        }
        // Checked even for a field that is dropped, as `encode_head`
        // does: a value no HTTP/1 parser should have let through.
        check_value(value).map_err(|_| Refused::Value)?;
        let name = lower.of(name);
        if HOP_BY_HOP.contains(&name)
            || also_drop.contains(&name)
            || listed.iter().any(|t| t[..] == *name)
        {
            continue;
        }
        emit(name, value);
    }
    Ok(())
}

/// The status a response may carry to an HTTP/2 client, as its three
/// digits.
fn status_digits(status: u16) -> Result<[u8; 3], Refused> {
    if status == 101 {
        return Err(Refused::SwitchingProtocols);
    }
    if !(100..=999).contains(&status) {
        return Err(Refused::Status);
    }
    Ok([
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ])
}

/// Translates a response head: its status and its fields as parsed.
pub fn response(status: u16, fields: &[(&[u8], &[u8])]) -> Result<Response, Refused> {
    let digits = status_digits(status)?;
    let mut out = vec![Field::new(b":status", &digits)];
    convert(fields.iter().copied(), &[], |name, value| {
        out.push(Field::new(name, value))
    })?;
    Ok(Response {
        fields: out,
        interim: status < 200,
    })
}

/// [`response`] for a whole HTTP/1.1 response head as text (status line,
/// field lines, the empty line), HPACK-encoded straight into `block`
/// (emptied first): the front's path for every response. Answers whether
/// it is an interim (1xx) block.
///
/// The head is one the exchange assembled from what our parser accepted
/// and our own lines, so it is not parsed again: one pass over its bytes
/// splits each line, checks what HTTP/2 is stricter about, lowercases
/// the name and encodes the field. A `Connection` field, which may list
/// names that came before it, sends the head through [`convert`] instead
/// (rare: the exchange drops the ones backends send).
pub fn encode_head(text: &[u8], block: &mut Vec<u8>) -> Result<bool, Refused> {
    let (first, fields) = next_line(text);
    let status = status_of(first).ok_or(Refused::Head)?;
    let digits = status_digits(status)?;
    block.clear();
    block.reserve(text.len());
    hpack::encode_field(block, b":status", &digits);
    let mut lower = Lowered::default();
    let mut rest = fields;
    loop {
        // The name checked and lowercased in one pass, on the stack (a
        // longer one the slow way).
        let mut n = 0;
        while let Some(&b) = rest.get(n).filter(|_| n < SHORT_NAME) {
            let l = token::LOWER_TCHAR[usize::from(b)];
            if l == 0 {
                break;
            }
            lower.short[n] = l;
            n += 1;
        }
        let long = n == SHORT_NAME;
        if long {
            n = token::token_len(rest);
        }
        if n == 0 && matches!(rest, [] | [b'\n', ..] | [b'\r', b'\n', ..]) {
            break;
        }
        let (name, after) = rest.split_at(n);
        let ([_, ..], [b':', after @ ..]) = (name, after) else {
            return Err(Refused::Name);
        };
        let (value, next) = value_of(after)?;
        rest = next;
        let name = if long {
            lower.of(name)
        } else {
            &lower.short[..n]
        };
        if name == b"connection" {
            return encode_listing(status, &digits, fields, block);
        }
        if !HOP_BY_HOP.contains(&name) {
            hpack::encode_field(block, name, value);
        }
    }
    Ok(status < 200)
}

/// The value of a field line, from just after its colon: without the
/// whitespace around it, and the rest of the head after its line end.
/// A control byte but HTAB (a CR only right before the LF) refuses it.
fn value_of(line: &[u8]) -> Result<(&[u8], &[u8]), Refused> {
    let mut end = line.len();
    let mut next = line.len();
    for (i, &b) in line.iter().enumerate() {
        if b >= 0x20 && b != 0x7f || b == b'\t' {
            continue;
        }
        match (b, line.get(i + 1)) {
            (b'\n', _) => (end, next) = (i, i + 1),
            (b'\r', Some(b'\n')) => (end, next) = (i, i + 2),
            _ => return Err(Refused::Value),
        }
        break;
    }
    Ok((token::trim_ows(&line[..end]), &line[next..]))
}

/// [`encode_head`]'s way for a head with a `Connection` field: its lines
/// are split first, then [`convert`] drops what that field lists too.
fn encode_listing(
    status: u16,
    digits: &[u8; 3],
    mut rest: &[u8],
    block: &mut Vec<u8>,
) -> Result<bool, Refused> {
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (line, after) = next_line(rest);
        rest = after;
        if line.is_empty() {
            break;
        }
        fields.push(field_of(line));
    }
    block.clear();
    hpack::encode_field(block, b":status", digits);
    convert(fields.iter().copied(), &[], |name, value| {
        hpack::encode_field(block, name, value)
    })?;
    Ok(status < 200)
}

/// The first line of `text` without its line end (CRLF, or a bare LF: a
/// field line holds neither), and what follows it.
fn next_line(text: &[u8]) -> (&[u8], &[u8]) {
    let (line, rest) = match text.iter().position(|&b| b == b'\n') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, &[][..]),
    };
    (line.strip_suffix(b"\r").unwrap_or(line), rest)
}

/// The status of an `HTTP/1.x NNN reason` line.
fn status_of(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    if !rest.first()?.is_ascii_digit() || rest.get(1) != Some(&b' ') {
        return None;
    }
    let digits = rest.get(2..5)?;
    if !digits.iter().all(u8::is_ascii_digit) || rest.get(5).is_some_and(|&b| b != b' ') {
        return None;
    }
    Some(digits.iter().fold(0, |n, &d| n * 10 + u16::from(d - b'0')))
}

/// A `name: value` line as its name and its value without the optional
/// whitespace around it; a line without a colon has an empty name, which
/// [`convert`] refuses.
fn field_of(line: &[u8]) -> (&[u8], &[u8]) {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return (&[], line);
    };
    (&line[..colon], token::trim_ows(&line[colon + 1..]))
}

/// Translates a chunked response's trailer fields; framing and routing
/// fields are dropped, as they never belong in trailers.
pub fn trailers(fields: &[(&[u8], &[u8])]) -> Result<Vec<Field>, Refused> {
    let mut out = Vec::new();
    convert(
        fields.iter().copied(),
        &[b"content-length", b"host", b"trailer"],
        |name, value| out.push(Field::new(name, value)),
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(r: &[Field]) -> Vec<String> {
        r.iter()
            .map(|f| String::from_utf8(f.name.clone()).unwrap())
            .collect()
    }

    #[test]
    fn status_comes_first_and_names_are_lowercased() {
        let r = response(200, &[(b"Content-Type", b"text/plain"), (b"X-A", b"1")]).unwrap();
        assert_eq!(names(&r.fields), [":status", "content-type", "x-a"]);
        assert_eq!(r.fields[0].value, b"200");
        assert!(!r.interim);
    }

    #[test]
    fn hop_by_hop_fields_are_dropped() {
        let r = response(
            200,
            &[
                (b"Connection", b"close, X-Private"),
                (b"Keep-Alive", b"timeout=5"),
                (b"Transfer-Encoding", b"chunked"),
                (b"Upgrade", b"h2c"),
                (b"Proxy-Connection", b"x"),
                (b"TE", b"trailers"),
                (b"X-Private", b"secret"),
                (b"X-Public", b"ok"),
            ],
        )
        .unwrap();
        assert_eq!(names(&r.fields), [":status", "x-public"]);
    }

    #[test]
    fn the_encoded_block_carries_the_same_fields() {
        let head: [(&[u8], &[u8]); 4] = [
            (b"Content-Type", b"text/plain"),
            (b"Connection", b"x-hop"),
            (b"X-Hop", b"1"),
            (b"Set-Cookie", b"a=b"),
        ];
        let text = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection:  x-hop \r\n\
                     X-Hop:1\nSet-Cookie: a=b\r\n\r\n";
        let mut block = vec![1, 2, 3];
        assert_eq!(encode_head(text, &mut block), Ok(false));
        let limits = hpack::ListLimits {
            max_list_size: 1 << 16,
            max_fields: 100,
        };
        let decoded = hpack::Decoder::new(4096).decode(&block, limits).unwrap();
        assert_eq!(
            decoded.fields.to_vec(),
            response(200, &head).unwrap().fields
        );
        assert_eq!(
            names(&decoded.fields.to_vec()),
            [":status", "content-type", "set-cookie"]
        );
        assert_eq!(
            encode_head(b"HTTP/1.1 101 Switching\r\n\r\n", &mut block),
            Err(Refused::SwitchingProtocols)
        );
        assert_eq!(encode_head(b"HTTP/1.0 103\r\n\r\n", &mut block), Ok(true));
    }

    #[test]
    fn a_connection_field_drops_the_fields_it_lists_before_it() {
        const MANY: usize = 40;
        let mut text = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..MANY {
            text.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        text.extend_from_slice(b"Connection: x-0\r\n\r\n");
        let mut block = Vec::new();
        assert_eq!(encode_head(&text, &mut block), Ok(false));
        let limits = hpack::ListLimits {
            max_list_size: 1 << 16,
            max_fields: 100,
        };
        let decoded = hpack::Decoder::new(4096).decode(&block, limits).unwrap();
        let names = names(&decoded.fields.to_vec());
        // :status, then every field but the one the Connection line lists.
        assert_eq!(names.len(), MANY);
        assert_eq!(names[1], "x-1");
        assert_eq!(names.last().unwrap(), &format!("x-{}", MANY - 1));
    }

    proptest::proptest! {
        /// The one-pass encoder agrees with splitting the head first and
        /// translating the fields ([`encode_listing`], the reference).
        #[test]
        fn one_pass_encoding_agrees_with_split_then_convert(
            lines in proptest::collection::vec(
                (
                    proptest::prop_oneof![
                        proptest::strategy::Just("Content-Type".to_string()),
                        proptest::strategy::Just("keep-alive".to_string()),
                        proptest::strategy::Just("TE".to_string()),
                        proptest::strategy::Just("".to_string()),
                        "[A-Za-z0-9!#~ -]{1,8}",
                    ],
                    proptest::collection::vec(
                        proptest::prop_oneof![
                            proptest::strategy::Just(b' '),
                            proptest::strategy::Just(b'\t'),
                            proptest::strategy::Just(b'\r'),
                            proptest::strategy::Just(0x7f),
                            proptest::strategy::Just(1),
                            b'a'..=b'z',
                            b':'..=b'@',
                        ],
                        0..12,
                    ),
                ),
                0..8,
            ),
            colon in proptest::bool::ANY,
        ) {
            let mut text = b"HTTP/1.1 200 OK\r\n".to_vec();
            for (name, value) in &lines {
                text.extend_from_slice(name.as_bytes());
                if colon {
                    text.push(b':');
                }
                text.extend_from_slice(value);
                text.extend_from_slice(b"\r\n");
            }
            text.extend_from_slice(b"\r\n");
            let (mut fast, mut reference) = (Vec::new(), Vec::new());
            let a = encode_head(&text, &mut fast);
            let fields = &text[b"HTTP/1.1 200 OK\r\n".len()..];
            let b = encode_listing(200, b"200", fields, &mut reference);
            proptest::prop_assert_eq!(a, b);
            if a.is_ok() {
                proptest::prop_assert_eq!(fast, reference);
            }
        }
    }

    #[test]
    fn names_longer_than_the_stack_room_are_lowercased_too() {
        let long = format!("X-{}", "Ab".repeat(SHORT_NAME));
        let text = format!("HTTP/1.1 200 OK\r\n{long}: 1\r\nX-Short: 2\r\n\r\n");
        let mut block = Vec::new();
        assert_eq!(encode_head(text.as_bytes(), &mut block), Ok(false));
        let limits = hpack::ListLimits {
            max_list_size: 1 << 16,
            max_fields: 100,
        };
        let decoded = hpack::Decoder::new(4096).decode(&block, limits).unwrap();
        let want = [
            ":status".to_string(),
            long.to_ascii_lowercase(),
            "x-short".into(),
        ];
        assert_eq!(names(&decoded.fields.to_vec()), want);
        let r = response(200, &[(long.as_bytes(), b"1")]).unwrap();
        assert_eq!(names(&r.fields)[1], long.to_ascii_lowercase());
    }

    #[test]
    fn a_head_that_is_not_one_is_refused() {
        let mut block = Vec::new();
        for bad in [
            &b""[..],
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2000\r\n\r\n",
            b"HTTP/1.1  200\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
        ] {
            assert_eq!(encode_head(bad, &mut block), Err(Refused::Head), "{bad:?}");
        }
        let fields = |text: &[u8]| encode_head(text, &mut Vec::new());
        assert_eq!(
            fields(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"),
            Err(Refused::Name)
        );
        assert_eq!(
            fields(b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n"),
            Err(Refused::Name)
        );
        assert_eq!(
            fields(b"HTTP/1.1 200 OK\r\nx: a\rb\r\n\r\n"),
            Err(Refused::Value)
        );
        assert_eq!(fields(b"HTTP/1.1 200 OK\r\nX: \r\n\r\n"), Ok(false));
    }

    #[test]
    fn content_length_is_kept() {
        let r = response(200, &[(b"Content-Length", b"12")]).unwrap();
        assert_eq!(names(&r.fields), [":status", "content-length"]);
    }

    #[test]
    fn interim_responses_are_marked() {
        let r = response(103, &[(b"Link", b"</a.css>; rel=preload")]).unwrap();
        assert!(r.interim);
        assert!(response(100, &[]).unwrap().interim);
    }

    #[test]
    fn switching_protocols_cannot_cross() {
        assert_eq!(
            response(101, &[(b"Upgrade", b"websocket")]),
            Err(Refused::SwitchingProtocols)
        );
    }

    #[test]
    fn statuses_outside_100_to_999_are_refused() {
        assert_eq!(response(99, &[]), Err(Refused::Status));
        assert_eq!(response(1000, &[]), Err(Refused::Status));
    }

    #[test]
    fn bad_names_and_values_are_refused() {
        assert_eq!(response(200, &[(b"a b", b"x")]), Err(Refused::Name));
        assert_eq!(response(200, &[(b"", b"x")]), Err(Refused::Name));
        assert_eq!(response(200, &[(b"x", b"a\r\nb")]), Err(Refused::Value));
        assert_eq!(response(200, &[(b"x", b" a")]), Err(Refused::Value));
    }

    #[test]
    fn trailers_drop_framing_fields() {
        let t = trailers(&[
            (b"X-Checksum", b"abc"),
            (b"Content-Length", b"3"),
            (b"Host", b"h"),
        ])
        .unwrap();
        assert_eq!(names(&t), ["x-checksum"]);
        assert_eq!(trailers(&[(b"x", b"\0")]), Err(Refused::Value));
    }

    #[test]
    fn a_translated_response_encodes_and_decodes() {
        let r = response(404, &[(b"Server", b"moirai")]).unwrap();
        let mut b = Vec::new();
        super::super::hpack::encode(&mut b, r.fields.iter().map(|f| (&f.name[..], &f.value[..])));
        let d = super::super::hpack::Decoder::default()
            .decode(
                &b,
                super::super::hpack::ListLimits {
                    max_list_size: 1000,
                    max_fields: 10,
                },
            )
            .unwrap();
        assert_eq!(d.fields.to_vec(), r.fields);
    }
}
