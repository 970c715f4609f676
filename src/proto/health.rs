//! The HTTP health check, without I/O: the request to send, and the verdict
//! on what came back. Only the status line matters; the check closes the
//! connection as soon as it has it, so bodies and keep-alive never arise.

use std::fmt;

/// The longest status line accepted before the answer counts as garbage.
const MAX_STATUS_LINE: usize = 1024;

/// The check request: `GET path HTTP/1.1` with `Host`, asking the backend
/// to close after answering.
pub fn request(path: &str, host: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: moirai-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// Why an HTTP check answer is not healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckFailure {
    /// A status outside 2xx.
    Status(u16),
    /// The bytes are not an HTTP/1.x status line.
    Malformed,
    /// The backend closed before a whole status line arrived.
    Truncated,
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckFailure::Status(s) => write!(f, "answered status {s}"),
            CheckFailure::Malformed => f.write_str("answered something that is not HTTP/1.x"),
            CheckFailure::Truncated => f.write_str("closed before answering"),
        }
    }
}

/// The verdict on what the backend sent so far: `None` while the status
/// line is incomplete, `Some(Ok(status))` for a 2xx.
pub fn verdict(received: &[u8], closed: bool) -> Option<Result<u16, CheckFailure>> {
    let Some(end) = received.iter().position(|&b| b == b'\n') else {
        return if received.len() > MAX_STATUS_LINE {
            Some(Err(CheckFailure::Malformed))
        } else if closed {
            Some(Err(CheckFailure::Truncated))
        } else {
            None
        };
    };
    let line = received[..end]
        .strip_suffix(b"\r")
        .unwrap_or(&received[..end]);
    Some(parse_status(line).and_then(|s| {
        if (200..300).contains(&s) {
            Ok(s)
        } else {
            Err(CheckFailure::Status(s))
        }
    }))
}

/// `HTTP/1.x NNN[ reason]` to `NNN`.
fn parse_status(line: &[u8]) -> Result<u16, CheckFailure> {
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))
        .ok_or(CheckFailure::Malformed)?;
    let code = rest.get(..3).ok_or(CheckFailure::Malformed)?;
    if !code.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ') {
        return Err(CheckFailure::Malformed);
    }
    Ok(code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_names_path_and_host() {
        let r = request("/healthz?x=1", "web.svc.test:8080");
        assert_eq!(
            r,
            b"GET /healthz?x=1 HTTP/1.1\r\nHost: web.svc.test:8080\r\nUser-Agent: moirai-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn any_2xx_is_healthy() {
        assert_eq!(verdict(b"HTTP/1.1 200 OK\r\n", false), Some(Ok(200)));
        assert_eq!(verdict(b"HTTP/1.0 204\r\n", false), Some(Ok(204)));
        assert_eq!(verdict(b"HTTP/1.1 299 Odd\n", true), Some(Ok(299)));
    }

    #[test]
    fn other_statuses_and_garbage_fail() {
        assert_eq!(
            verdict(b"HTTP/1.1 503 Service Unavailable\r\n", false),
            Some(Err(CheckFailure::Status(503)))
        );
        assert_eq!(
            verdict(b"HTTP/1.1 301 Moved\r\n", false),
            Some(Err(CheckFailure::Status(301)))
        );
        assert_eq!(
            verdict(b"SSH-2.0-OpenSSH\r\n", false),
            Some(Err(CheckFailure::Malformed))
        );
        assert_eq!(
            verdict(b"HTTP/1.1 2000 OK\r\n", false),
            Some(Err(CheckFailure::Malformed))
        );
        assert_eq!(
            verdict(b"HTTP/1.1 2x0 OK\r\n", false),
            Some(Err(CheckFailure::Malformed))
        );
        assert_eq!(
            verdict(&[b'A'; 2000], false),
            Some(Err(CheckFailure::Malformed))
        );
    }

    #[test]
    fn waits_for_the_whole_status_line() {
        assert_eq!(verdict(b"HTTP/1.1 20", false), None);
        assert_eq!(verdict(b"", false), None);
        assert_eq!(
            verdict(b"HTTP/1.1 20", true),
            Some(Err(CheckFailure::Truncated))
        );
        assert_eq!(verdict(b"", true), Some(Err(CheckFailure::Truncated)));
    }
}
