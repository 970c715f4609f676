//! The SmartOS metadata protocol, version 2, as an I/O-free codec.
//!
//! A frame is one line: `V2 <len> <crc32 8 hex> <body>\n`, the body being
//! `<request id, 8 hex> <OP>[ <base64 payload>]`. The client in
//! [`super::mdata`] does the socket work; this module only builds request
//! lines and checks response lines, so it can be fuzzed.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

/// Sent once after connecting.
pub const NEGOTIATE: &[u8] = b"NEGOTIATE V2\n";
/// The server's acceptance of [`NEGOTIATE`], without the newline.
pub const NEGOTIATE_OK: &str = "V2_OK";
/// Longest line accepted from the server: metadata values are small, and a
/// runaway peer must not make us buffer without bound.
pub const MAX_LINE: usize = 1 << 20;

/// A request id: 8 hex digits on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(pub u32);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// Builds a request line (with its newline) for `op` and a raw payload,
/// which is base64-encoded here.
pub fn encode_request(id: RequestId, op: &str, payload: Option<&[u8]>) -> Vec<u8> {
    let mut body = format!("{id} {op}");
    if let Some(p) = payload {
        body.push(' ');
        body.push_str(&B64.encode(p));
    }
    let crc = crc32fast::hash(body.as_bytes());
    format!("V2 {} {crc:08x} {body}\n", body.len()).into_bytes()
}

/// The payload of a PUT: `base64(key) " " base64(value)`, itself base64'd by
/// [`encode_request`].
pub fn put_payload(key: &str, value: &str) -> Vec<u8> {
    format!("{} {}", B64.encode(key), B64.encode(value)).into_bytes()
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `SUCCESS`, with the decoded payload if there was one.
    Success(Option<Vec<u8>>),
    /// `NOTFOUND`: the key does not exist.
    NotFound,
    /// `FAILURE`: the server could not do it.
    Failure,
}

/// Why a response line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The line does not start with `V2 `.
    NotV2,
    /// The length or CRC field is not a number.
    BadHeader,
    /// The body is not as long as the header says.
    LengthMismatch {
        /// What the header said.
        declared: usize,
        /// What arrived.
        actual: usize,
    },
    /// The CRC-32 of the body does not match.
    BadCrc {
        /// What the header said.
        declared: u32,
        /// What the body hashes to.
        actual: u32,
    },
    /// The request id is not 8 hex digits.
    BadId,
    /// The payload is not valid base64.
    BadBase64,
    /// An answer code other than SUCCESS, NOTFOUND or FAILURE.
    UnknownCode(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::NotV2 => f.write_str("response is not a V2 frame"),
            FrameError::BadHeader => f.write_str("frame length or checksum field is not a number"),
            FrameError::LengthMismatch { declared, actual } => {
                write!(f, "frame says {declared} body bytes but has {actual}")
            }
            FrameError::BadCrc { declared, actual } => {
                write!(
                    f,
                    "frame checksum {declared:08x} does not match body ({actual:08x})"
                )
            }
            FrameError::BadId => f.write_str("frame request id is not 8 hex digits"),
            FrameError::BadBase64 => f.write_str("frame payload is not base64"),
            FrameError::UnknownCode(c) => write!(f, "unknown answer code {c:?}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Checks and decodes one response line (without its newline).
pub fn decode_response(line: &[u8]) -> Result<(RequestId, Response), FrameError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.strip_prefix(b"V2 ").ok_or(FrameError::NotV2)?;
    let (len, rest) = split_space(rest).ok_or(FrameError::BadHeader)?;
    let (crc, body) = split_space(rest).ok_or(FrameError::BadHeader)?;
    let declared: usize = ascii(len)
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or(FrameError::BadHeader)?;
    let crc = ascii(crc)
        .filter(|s| s.len() == 8)
        .and_then(|s| u32::from_str_radix(s, 16).ok())
        .ok_or(FrameError::BadHeader)?;
    if declared != body.len() {
        return Err(FrameError::LengthMismatch {
            declared,
            actual: body.len(),
        });
    }
    let actual = crc32fast::hash(body);
    if actual != crc {
        return Err(FrameError::BadCrc {
            declared: crc,
            actual,
        });
    }
    let (id, rest) = split_space(body).unwrap_or((body, b""));
    let id = ascii(id)
        .filter(|s| s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|s| u32::from_str_radix(s, 16).ok())
        .map(RequestId)
        .ok_or(FrameError::BadId)?;
    let (code, payload) = match split_space(rest) {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let response = match code {
        b"SUCCESS" => Response::Success(match payload {
            Some(p) => Some(B64.decode(p).map_err(|_| FrameError::BadBase64)?),
            None => None,
        }),
        b"NOTFOUND" => Response::NotFound,
        b"FAILURE" => Response::Failure,
        other => {
            return Err(FrameError::UnknownCode(
                String::from_utf8_lossy(other).into_owned(),
            ))
        }
    };
    Ok((id, response))
}

fn split_space(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|&c| c == b' ')?;
    Some((&b[..i], &b[i + 1..]))
}

fn ascii(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_request_is_byte_exact() {
        let line = encode_request(
            RequestId(0x0a1b2c3d),
            "GET",
            Some(b"cloud.tritoncompute:portmap"),
        );
        assert_eq!(
            line,
            b"V2 49 4837e926 0a1b2c3d GET Y2xvdWQudHJpdG9uY29tcHV0ZTpwb3J0bWFw\n"
        );
    }

    #[test]
    fn reference_response_decodes() {
        let (id, r) = decode_response(b"V2 21 265ae1d8 dc4fae17 SUCCESS W10=").unwrap();
        assert_eq!(id, RequestId(0xdc4fae17));
        assert_eq!(r, Response::Success(Some(b"[]".to_vec())));
    }

    #[test]
    fn notfound_failure_and_bare_success() {
        for (code, want) in [
            ("NOTFOUND", Response::NotFound),
            ("FAILURE", Response::Failure),
            ("SUCCESS", Response::Success(None)),
        ] {
            let body = format!("00000001 {code}");
            let line = format!(
                "V2 {} {:08x} {body}",
                body.len(),
                crc32fast::hash(body.as_bytes())
            );
            assert_eq!(decode_response(line.as_bytes()).unwrap().1, want);
        }
    }

    #[test]
    fn damaged_frames_are_refused() {
        assert_eq!(
            decode_response(b"V2 21 265ae1d9 dc4fae17 SUCCESS W10="),
            Err(FrameError::BadCrc {
                declared: 0x265ae1d9,
                actual: 0x265ae1d8
            })
        );
        assert!(matches!(
            decode_response(b"V2 22 265ae1d8 dc4fae17 SUCCESS W10="),
            Err(FrameError::LengthMismatch { .. })
        ));
        assert_eq!(decode_response(b"V1 hello"), Err(FrameError::NotV2));
        assert_eq!(decode_response(b"V2 x y z"), Err(FrameError::BadHeader));
        assert_eq!(decode_response(b""), Err(FrameError::NotV2));
    }

    #[test]
    fn put_payload_is_double_base64() {
        let line = encode_request(RequestId(1), "PUT", Some(&put_payload("k", "v")));
        let text = String::from_utf8(line).unwrap();
        let outer = text.trim_end().rsplit(' ').next().unwrap();
        assert_eq!(B64.decode(outer).unwrap(), b"aw== dg==");
    }
}
