//! The `timeouts` key: `{queue:..,connect:..,client:..,server:..}`, braces
//! optional, values in milliseconds (`500`, `500ms`) or seconds (`5s`).
//!
//! As in Moirai, an unknown name or an unreadable value rejects the whole key
//! (the defaults stay); client and server are capped at one hour; `0`
//! means no timeout (HAProxy's reading of what Moirai renders).

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
    /// moirai's own `tunnel` (HAProxy's `timeout tunnel`): once a
    /// connection is a tunnel (a `tcp` stream, an upgraded HTTP
    /// connection), how long it may be silent both ways; it replaces the
    /// client and server timeouts there. Unset: those apply.
    pub tunnel: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_millis(2_000),
            client: Duration::from_millis(55_000),
            server: Duration::from_millis(120_000),
            queue: Duration::ZERO,
            tunnel: None,
        }
    }
}

/// The cap Moirai puts on client and server timeouts.
pub const MAX_IDLE_MS: u64 = 3_600_000;
/// The longest connect or queue timeout accepted (one day): beyond that the
/// number is a typo, not a policy.
const MAX_OTHER_MS: u64 = 86_400_000;
/// What `0` means for `connect`, `client` and `server`: no timeout, as
/// HAProxy reads the `timeout server 0` Moirai renders. Kept as a
/// duration far past any process's life (a century), so every deadline
/// computed from it is simply never reached; an `Instant` holds it on
/// every platform moirai runs on.
pub const NEVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses the key's value as Moirai does (`parse_timeouts`): entries
/// `name:value` separated by commas (spaces between entries are accepted
/// too), spaces around names and values trimmed, a name given twice
/// taken from its last entry (a warning says so), `0` meaning no timeout
/// (except for `queue`, where it means no queueing). On a fatal error the
/// defaults come back with one error; a capped value comes back capped,
/// with a warning.
pub fn parse(value: &str) -> (Timeouts, Vec<ConfigError>) {
    let err = |offset: usize, reason: Reason| ConfigError {
        key: TIMEOUTS.to_owned(),
        entry: None,
        offset,
        text: value.to_owned(),
        reason,
    };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return (Timeouts::default(), Vec::new());
    }
    let mut body_at = value.len() - value.trim_start().len();
    let mut body = trimmed;
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
        body_at += 1;
        body = inner;
    }
    let mut t = Timeouts::default();
    let mut seen = [false; 5];
    let mut warnings = Vec::new();
    for (at, entry) in entries(body, body_at) {
        let Some((name, v)) = entry.split_once(':') else {
            return (
                Timeouts::default(),
                vec![err(at, Reason::MalformedTimeouts(entry.to_owned()))],
            );
        };
        let (slot, name, max): (usize, &'static str, u64) =
            match name.trim().to_ascii_lowercase().as_str() {
                "queue" => (0, "queue", MAX_OTHER_MS),
                "connect" => (1, "connect", MAX_OTHER_MS),
                "client" => (2, "client", MAX_IDLE_MS),
                "server" => (3, "server", MAX_IDLE_MS),
                "tunnel" => (4, "tunnel", MAX_IDLE_MS),
                _ => {
                    return (
                        Timeouts::default(),
                        vec![err(at, Reason::UnknownTimeout(name.trim().to_owned()))],
                    )
                }
            };
        if std::mem::replace(&mut seen[slot], true) {
            warnings.push(err(at, Reason::DuplicateTimeout(name)));
        }
        let v = v.trim();
        // `tunnel` is ours (Moirai refuses the key with it anyway), so it
        // also takes minutes and hours, as HAProxy's `timeout tunnel 1h`.
        let read = if slot == 4 {
            parse_tunnel_ms(v)
        } else {
            parse_duration_ms(v)
        };
        let Some(mut ms) = read else {
            return (
                Timeouts::default(),
                vec![err(at, Reason::InvalidDuration(entry.to_owned()))],
            );
        };
        let d = if ms == 0 && slot != 0 {
            warnings.push(err(at, Reason::NoTimeout(name)));
            NEVER
        } else {
            if ms > max {
                warnings.push(err(
                    at,
                    Reason::OutOfRange {
                        value: v.to_owned(),
                        min: 0,
                        max,
                        used: max,
                    },
                ));
                ms = max;
            }
            Duration::from_millis(ms)
        };
        match slot {
            0 => t.queue = d,
            1 => t.connect = d,
            2 => t.client = d,
            3 => t.server = d,
            _ => t.tunnel = Some(d),
        }
    }
    (t, warnings)
}

/// The `name:value` entries of `body` (which starts at byte `at` of the
/// key's value), with their offsets: separated by commas or line breaks,
/// or by blanks before a word that holds a colon; a blank before a word
/// without one belongs to the entry (`server: 300s`, `client:5 s`).
fn entries(body: &str, at: usize) -> Vec<(usize, &str)> {
    let mut out: Vec<(usize, &str)> = Vec::new();
    let mut piece_at = at;
    for piece in body.split([',', '\n']) {
        let base = piece_at;
        piece_at += piece.len() + 1;
        let mut start: Option<usize> = None;
        let mut words = piece
            .split([' ', '\t', '\r'])
            .scan(0, |off, w| {
                let o = *off;
                *off += w.len() + 1;
                Some((o, w))
            })
            .filter(|(_, w)| !w.is_empty())
            .peekable();
        while let Some((o, w)) = words.next() {
            let s = *start.get_or_insert(o);
            // The entry so far has a name, a colon and a value; then a
            // word with a colon past its first byte starts the next one
            // (`client:5s server:10s`), and anything else belongs to it
            // (`server : 300s`, `client:5 s`).
            let so_far = &piece[s..o + w.len()];
            let complete = so_far
                .split_once(':')
                .is_some_and(|(_, v)| !v.trim().is_empty());
            let next_starts = words
                .peek()
                .is_some_and(|(_, n)| complete && n.find(':').is_some_and(|i| i > 0));
            if next_starts || words.peek().is_none() {
                start = None;
                out.push((base + s, so_far.trim()));
            }
        }
    }
    out
}

/// `N` or `Nms` (milliseconds), `Ns` (seconds), blanks allowed around the
/// number; saturates far beyond any cap.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, scale) = if let Some(d) = s.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = s.strip_suffix('s') {
        (d, 1000)
    } else {
        (s, 1)
    };
    let digits = digits.trim();
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok().map(|n| n.saturating_mul(scale))
}

/// [`parse_duration_ms`], or `Nm` (minutes), `Nh` (hours).
fn parse_tunnel_ms(s: &str) -> Option<u64> {
    parse_duration_ms(s).or_else(|| {
        let s = s.trim();
        let (digits, scale) = if let Some(d) = s.strip_suffix('h') {
            (d, 3_600_000)
        } else {
            (s.strip_suffix('m')?, 60_000)
        };
        parse_duration_ms(digits).map(|n| n.saturating_mul(scale))
    })
}

/// A timeout in milliseconds as the key writes it: `0` for none.
pub fn key_ms(d: Duration) -> u64 {
    if d >= NEVER {
        0
    } else {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A timeout for people: milliseconds, or `none`.
pub fn describe(d: Duration) -> String {
    if d >= NEVER {
        "none".to_owned()
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl Timeouts {
    /// Prints back in the key's own syntax (round-trips through [`parse`]).
    pub fn to_metadata(&self) -> String {
        let tunnel = self
            .tunnel
            .map(|d| format!(",tunnel:{}ms", key_ms(d)))
            .unwrap_or_default();
        format!(
            "{{queue:{}ms,connect:{}ms,client:{}ms,server:{}ms{tunnel}}}",
            self.queue.as_millis(),
            key_ms(self.connect),
            key_ms(self.client),
            key_ms(self.server)
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
            "{server: 3 hours}",
        ] {
            let (t, e) = parse(v);
            assert_eq!(t, Timeouts::default(), "{v}");
            assert_eq!(e.len(), 1, "{v}");
        }
    }

    #[test]
    fn spaces_are_trimmed_as_moirai_trims_them() {
        for v in [
            "{server: 300s}",
            "{ server : 300s }",
            " server:300 s ",
            "{connect:2s, server:  300000ms}",
            "connect:2s server:300s",
        ] {
            let (t, e) = parse(v);
            assert!(e.is_empty(), "{v}: {e:?}");
            assert_eq!(t.server, Duration::from_secs(300), "{v}");
        }
        let (t, e) = parse("client:5s server:10s,connect : 1s");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(
            (t.client, t.server, t.connect),
            (
                Duration::from_secs(5),
                Duration::from_secs(10),
                Duration::from_secs(1)
            )
        );
    }

    #[test]
    fn a_bad_value_is_quoted_as_written() {
        let (_, e) = parse("{connect:2s, server: 3 hours}");
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].reason,
            Reason::InvalidDuration("server: 3 hours".into())
        );
        assert_eq!(e[0].offset, 13);
    }

    #[test]
    fn a_name_given_twice_keeps_the_last_with_a_warning() {
        let (t, e) = parse("{client:1s,client:2s}");
        assert_eq!(t.client, Duration::from_secs(2));
        assert_eq!(e.len(), 1);
        assert!(e[0].is_warning());
        assert_eq!(e[0].reason, Reason::DuplicateTimeout("client"));
    }

    #[test]
    fn zero_means_no_timeout_except_for_the_queue() {
        let (t, e) = parse("{connect:0,client:0ms,server:0s,queue:0}");
        assert_eq!((t.connect, t.client, t.server), (NEVER, NEVER, NEVER));
        assert_eq!(t.queue, Duration::ZERO);
        assert_eq!(e.len(), 3);
        assert!(e
            .iter()
            .all(|e| e.is_warning() && matches!(e.reason, Reason::NoTimeout(_))));
        assert_eq!(describe(t.server), "none");
        assert_eq!(parse(&t.to_metadata()).0, t);
        // A deadline from it is far away, and computing it never panics.
        let now = std::time::Instant::now();
        assert!(now + NEVER > now + Duration::from_secs(86_400 * 365 * 50));
    }

    #[test]
    fn the_tunnel_timeout_is_ours_and_capped_like_the_idle_ones() {
        assert_eq!(parse("{client:5s}").0.tunnel, None);
        for v in [
            "{client:5s,tunnel:1h}",
            "{client:5s,tunnel:60m}",
            "{client:5s,tunnel:3600s}",
        ] {
            let (t, e) = parse(v);
            assert!(e.is_empty(), "{v}: {e:?}");
            assert_eq!(t.tunnel, Some(Duration::from_secs(3600)), "{v}");
        }
        // Only the tunnel takes minutes and hours: Moirai's own names keep
        // Moirai's units.
        assert_eq!(parse("{client:1h}").1.len(), 1);
        let (t, e) = parse("{tunnel:7200s}");
        assert_eq!(t.tunnel, Some(Duration::from_millis(MAX_IDLE_MS)));
        assert_eq!(e.len(), 1);
        assert_eq!(parse("{tunnel:0}").0.tunnel, Some(NEVER));
        let (t, _) = parse("{tunnel:90s,server:5s}");
        assert_eq!(parse(&t.to_metadata()).0, t);
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
