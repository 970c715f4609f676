//! The `timeouts` key: `{queue:..,connect:..,client:..,server:..}`, braces
//! optional, values in milliseconds (`500`, `500ms`) or seconds (`5s`).
//!
//! As in Moirai, an unknown name or an unreadable value rejects the whole key
//! (the defaults stay); client and server are capped at one hour.

use std::time::Duration;

use super::error::{ConfigError, Reason};
use super::keys::TIMEOUTS;

/// Connection timeouts, defaults from Moirai's HAProxy `defaults` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// Longest wait for a backend connect (default 2 s).
    pub connect: Duration,
    /// Longest client-side inactivity (default 55 s).
    pub client: Duration,
    /// Longest backend-side inactivity (default 120 s).
    pub server: Duration,
    /// Longest wait for a free backend slot (default 0: no queueing).
    pub queue: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_millis(2_000),
            client: Duration::from_millis(55_000),
            server: Duration::from_millis(120_000),
            queue: Duration::ZERO,
        }
    }
}

/// The cap Moirai puts on client and server timeouts.
pub const MAX_IDLE_MS: u64 = 3_600_000;
/// The longest connect or queue timeout accepted (one day): beyond that the
/// number is a typo, not a policy.
const MAX_OTHER_MS: u64 = 86_400_000;

/// Parses the key's value. On a fatal error the defaults come back with one
/// error; a capped value comes back capped, with an error that says so.
pub fn parse(value: &str) -> (Timeouts, Vec<ConfigError>) {
    let err = |offset: usize, reason: Reason| ConfigError {
        key: TIMEOUTS.to_owned(),
        entry: None,
        offset,
        text: value.to_owned(),
        reason,
    };
    let mut body_at = 0;
    let mut body = value;
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return (Timeouts::default(), Vec::new());
    }
    if let Some(inner) = trimmed.strip_prefix('{') {
        let Some(inner) = inner.strip_suffix('}') else {
            return (
                Timeouts::default(),
                vec![err(
                    value.len(),
                    Reason::MalformedTimeouts(value.to_owned()),
                )],
            );
        };
        body_at = value.find('{').map_or(0, |i| i + 1);
        body = inner;
    }
    let mut t = Timeouts::default();
    let mut seen = [false; 4];
    let mut warnings = Vec::new();
    let mut off = body_at;
    for part in body.split([',', ' ', '\n', '\t']) {
        let at = off;
        off += part.len() + 1;
        if part.is_empty() {
            continue;
        }
        let Some((name, v)) = part.split_once(':') else {
            return (
                Timeouts::default(),
                vec![err(at, Reason::MalformedTimeouts(part.to_owned()))],
            );
        };
        let (slot, name, max): (usize, &'static str, u64) = match name.to_ascii_lowercase().as_str()
        {
            "queue" => (0, "queue", MAX_OTHER_MS),
            "connect" => (1, "connect", MAX_OTHER_MS),
            "client" => (2, "client", MAX_IDLE_MS),
            "server" => (3, "server", MAX_IDLE_MS),
            _ => {
                return (
                    Timeouts::default(),
                    vec![err(at, Reason::UnknownTimeout(name.to_owned()))],
                )
            }
        };
        if std::mem::replace(&mut seen[slot], true) {
            return (
                Timeouts::default(),
                vec![err(at, Reason::DuplicateTimeout(name))],
            );
        }
        let v_at = at + part.find(':').map_or(0, |i| i + 1);
        let Some(mut ms) = parse_duration_ms(v) else {
            return (
                Timeouts::default(),
                vec![err(v_at, Reason::InvalidDuration(v.to_owned()))],
            );
        };
        let min = if slot == 0 { 0 } else { 1 };
        if ms < min || ms > max {
            let used = ms.clamp(min, max);
            warnings.push(err(
                v_at,
                Reason::OutOfRange {
                    value: v.to_owned(),
                    min,
                    max,
                    used,
                },
            ));
            ms = used;
        }
        let d = Duration::from_millis(ms);
        match slot {
            0 => t.queue = d,
            1 => t.connect = d,
            2 => t.client = d,
            _ => t.server = d,
        }
    }
    (t, warnings)
}

/// `N` or `Nms` (milliseconds), `Ns` (seconds); saturates far beyond any cap.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let (digits, scale) = if let Some(d) = s.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = s.strip_suffix('s') {
        (d, 1000)
    } else {
        (s, 1)
    };
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok().map(|n| n.saturating_mul(scale))
}

impl Timeouts {
    /// Prints back in the key's own syntax (round-trips through [`parse`]).
    pub fn to_metadata(&self) -> String {
        format!(
            "{{queue:{}ms,connect:{}ms,client:{}ms,server:{}ms}}",
            self.queue.as_millis(),
            self.connect.as_millis(),
            self.client.as_millis(),
            self.server.as_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_units_and_braces() {
        assert_eq!(parse("").0, Timeouts::default());
        let (t, e) = parse("{connect:500,client:5s,server:750ms,queue:1s}");
        assert!(e.is_empty());
        assert_eq!(t.connect, Duration::from_millis(500));
        assert_eq!(t.client, Duration::from_secs(5));
        assert_eq!(t.server, Duration::from_millis(750));
        assert_eq!(t.queue, Duration::from_secs(1));
        let (t, e) = parse("connect:3s");
        assert!(e.is_empty());
        assert_eq!(t.connect, Duration::from_secs(3));
        assert_eq!(t.client, Timeouts::default().client);
    }

    #[test]
    fn unknown_key_rejects_the_whole_value() {
        let (t, e) = parse("{connect:1s,bogus:2s}");
        assert_eq!(t, Timeouts::default());
        assert_eq!(e.len(), 1);
        assert!(matches!(e[0].reason, Reason::UnknownTimeout(_)));
        assert_eq!(e[0].offset, 12);
    }

    #[test]
    fn bad_values_reject_the_whole_value() {
        for v in [
            "{connect:2m}",
            "{connect:}",
            "{connect:-1}",
            "{connect 2}",
            "{connect:1s",
            "{client:1s,client:2s}",
        ] {
            let (t, e) = parse(v);
            assert_eq!(t, Timeouts::default(), "{v}");
            assert_eq!(e.len(), 1, "{v}");
        }
    }

    #[test]
    fn idle_timeouts_are_capped_at_an_hour() {
        let (t, e) = parse("{client:7200s,server:4000000}");
        assert_eq!(t.client, Duration::from_millis(MAX_IDLE_MS));
        assert_eq!(t.server, Duration::from_millis(MAX_IDLE_MS));
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn round_trip() {
        let (t, _) = parse("{connect:1234,client:5s,server:6s,queue:7ms}");
        assert_eq!(parse(&t.to_metadata()).0, t);
    }
}
