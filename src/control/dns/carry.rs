//! The last good DNS answers, carried over an upgrade: the program handing
//! its listeners over writes them to the state directory right before the
//! exec, and the new program seeds [`super::Discovery`] with them, so the
//! services of names the nameserver does not answer at that moment keep
//! their backends (the running program would have kept them too).
//!
//! The file is JSON, owner-only, written atomically; [`encode`] and
//! [`decode`] are pure, and bad input is an error, never a panic.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::resolver::Target;

/// The file's name in the state directory.
pub const FILE: &str = "dns-carry.json";

/// The format's version; another one is refused.
const VERSION: u32 = 1;

/// A file written longer ago than this is a leftover (the program that
/// wrote it crashed before the exec), not a hand-over: ignored.
pub const MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// The stand-in's copy: its own file, so that the upgraded program's copy,
/// written when the drain ends (possibly before the stand-in has read
/// its own), is never the one the stand-in takes.
pub const STANDIN_FILE: &str = "dns-carry.standin.json";

/// Where the answers go in `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Where the stand-in's answers go in `state_dir`.
pub fn standin_path(state_dir: &Path) -> PathBuf {
    state_dir.join(STANDIN_FILE)
}

/// Last good answers: backends (address, weight) per lookup.
pub type Good = HashMap<Target, Vec<(SocketAddr, u16)>>;

/// One name's last good answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedName {
    /// The lookup.
    pub target: Target,
    /// When it answered.
    pub answered: SystemTime,
    /// Its backends: address and weight, as the resolver gave them.
    pub backends: Vec<(SocketAddr, u16)>,
}

/// What a carry file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    /// When it was written.
    pub written: SystemTime,
    /// The names, sorted.
    pub names: Vec<CarriedName>,
}

impl Carried {
    /// Whether it was written within [`MAX_AGE`] of `now` (either way: a
    /// clock stepped back a little does not matter).
    pub fn fresh(&self, now: SystemTime) -> bool {
        let age = match now.duration_since(self.written) {
            Ok(d) => d,
            Err(e) => e.duration(),
        };
        age <= MAX_AGE
    }
}

/// Why a carry file cannot be used.
#[derive(Debug)]
pub enum CarryError {
    /// Not JSON, truncated, or not the expected shape (wrong types,
    /// missing fields).
    Json(serde_json::Error),
    /// Written by a program with another format.
    Version(u32),
    /// A lookup with an empty name.
    EmptyName,
    /// A backend address that is not `ip:port`.
    BadAddress(String),
    /// A time before 1970 or too far ahead to be one.
    BadTime(u64),
}

impl fmt::Display for CarryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CarryError::Json(e) => write!(f, "not a DNS carry file: {e}"),
            CarryError::Version(v) => write!(f, "format version {v}, not {VERSION}"),
            CarryError::EmptyName => write!(f, "a name is empty"),
            CarryError::BadAddress(a) => write!(f, "bad backend address {a:?}"),
            CarryError::BadTime(t) => write!(f, "bad time {t}"),
        }
    }
}

impl std::error::Error for CarryError {}

/// The file's shape.
#[derive(Serialize, Deserialize)]
struct FileV1 {
    version: u32,
    /// Milliseconds since the epoch.
    written_ms: u64,
    names: Vec<NameV1>,
}

#[derive(Serialize, Deserialize)]
struct NameV1 {
    name: String,
    /// `name:port` (A/AAAA); none for SRV at `name`.
    port: Option<u16>,
    answered_ms: u64,
    /// `ip:port` and weight.
    backends: Vec<(String, u16)>,
}

fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_ms(ms: u64) -> Result<SystemTime, CarryError> {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .ok_or(CarryError::BadTime(ms))
}

/// The carry file for the last good answers `good`, answered when
/// `answered` says (`written` when it does not), written at `written`.
pub fn encode(good: &Good, answered: &HashMap<Target, SystemTime>, written: SystemTime) -> String {
    let mut names: Vec<NameV1> = good
        .iter()
        .map(|(t, backends)| {
            let (name, port) = match t {
                Target::Addr { name, port } => (name.clone(), Some(*port)),
                Target::Srv { name } => (name.clone(), None),
            };
            NameV1 {
                name,
                port,
                answered_ms: to_ms(answered.get(t).copied().unwrap_or(written)),
                backends: backends.iter().map(|(a, w)| (a.to_string(), *w)).collect(),
            }
        })
        .collect();
    names.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
    let file = FileV1 {
        version: VERSION,
        written_ms: to_ms(written),
        names,
    };
    // Strings, integers and lists only: serialising cannot fail.
    serde_json::to_string(&file).unwrap_or_default()
}

/// What a carry file holds, checked.
pub fn decode(s: &str) -> Result<Carried, CarryError> {
    let file: FileV1 = serde_json::from_str(s).map_err(CarryError::Json)?;
    if file.version != VERSION {
        return Err(CarryError::Version(file.version));
    }
    let written = from_ms(file.written_ms)?;
    let mut names = Vec::with_capacity(file.names.len());
    for n in file.names {
        if n.name.is_empty() {
            return Err(CarryError::EmptyName);
        }
        let mut backends = Vec::with_capacity(n.backends.len());
        for (a, w) in n.backends {
            let addr: SocketAddr = a.parse().map_err(|_| CarryError::BadAddress(a.clone()))?;
            backends.push((addr, w));
        }
        backends.sort();
        let target = match n.port {
            Some(port) => Target::Addr { name: n.name, port },
            None => Target::Srv { name: n.name },
        };
        names.push(CarriedName {
            target,
            answered: from_ms(n.answered_ms)?,
            backends,
        });
    }
    Ok(Carried { written, names })
}

/// Reads and removes the carry file at `path`: none when there is none.
/// The file is removed even when it cannot be used, so a bad one is
/// reported once.
pub fn take(path: &Path) -> Result<Option<Carried>, TakeError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            let _ = std::fs::remove_file(path);
            return Err(TakeError::Io(e));
        }
    };
    let _ = std::fs::remove_file(path);
    decode(&text).map(Some).map_err(TakeError::Carry)
}

/// Why [`take`] found nothing usable.
#[derive(Debug)]
pub enum TakeError {
    /// Reading the file failed.
    Io(std::io::Error),
    /// What it holds is not a carry file.
    Carry(CarryError),
}

impl fmt::Display for TakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TakeError::Io(e) => write!(f, "{e}"),
            TakeError::Carry(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(name: &str, port: u16) -> Target {
        Target::Addr {
            name: name.to_owned(),
            port,
        }
    }

    fn sample() -> (Good, HashMap<Target, SystemTime>) {
        let t0 = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let mut good = HashMap::new();
        let mut answered = HashMap::new();
        let a = addr("web.svc.cns.example", 8080);
        good.insert(
            a.clone(),
            vec![
                ("10.0.0.1:8080".parse().unwrap(), 1),
                ("[fd00::2]:8080".parse().unwrap(), 1),
            ],
        );
        answered.insert(a, t0);
        let s = Target::Srv {
            name: "_http._tcp.api.example".to_owned(),
        };
        good.insert(
            s,
            vec![
                ("10.0.0.3:9000".parse().unwrap(), 10),
                ("10.0.0.4:9001".parse().unwrap(), 65_535),
            ],
        );
        (good, answered)
    }

    #[test]
    fn answers_survive_the_round_trip() {
        let (good, answered) = sample();
        let written = UNIX_EPOCH + Duration::from_millis(1_700_000_001_000);
        let text = encode(&good, &answered, written);
        let back = decode(&text).unwrap();
        assert_eq!(back.written, written);
        assert_eq!(back.names.len(), 2);
        for n in &back.names {
            assert_eq!(Some(&n.backends), good.get(&n.target));
            // Without an answer time, the time of writing.
            assert_eq!(
                n.answered,
                answered.get(&n.target).copied().unwrap_or(written)
            );
        }
        // Deterministic.
        assert_eq!(text, encode(&good, &answered, written));
        assert!(back.fresh(written + Duration::from_secs(599)));
        assert!(back.fresh(written - Duration::from_secs(5)));
        assert!(!back.fresh(written + MAX_AGE + Duration::from_secs(1)));
    }

    #[test]
    fn nothing_to_carry_round_trips_too() {
        let text = encode(&HashMap::new(), &HashMap::new(), UNIX_EPOCH);
        assert_eq!(decode(&text).unwrap().names, Vec::new());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let (good, answered) = sample();
        let text = encode(&good, &answered, SystemTime::now());
        assert!(matches!(decode(""), Err(CarryError::Json(_))));
        assert!(matches!(decode("   \n"), Err(CarryError::Json(_))));
        for cut in [1, text.len() / 3, text.len() / 2, text.len() - 1] {
            assert!(
                matches!(decode(&text[..cut]), Err(CarryError::Json(_))),
                "cut at {cut}"
            );
        }
        // Wrong types.
        for bad in [
            "[]",
            "42",
            r#"{"version":"1","written_ms":0,"names":[]}"#,
            r#"{"version":1,"written_ms":-1,"names":[]}"#,
            r#"{"version":1,"written_ms":0,"names":{}}"#,
            r#"{"version":1,"written_ms":0,"names":[{"name":7,"port":80,"answered_ms":0,"backends":[]}]}"#,
            r#"{"version":1,"written_ms":0,"names":[{"name":"a","port":70000,"answered_ms":0,"backends":[]}]}"#,
            r#"{"version":1,"written_ms":0,"names":[{"name":"a","port":80,"answered_ms":0,"backends":[["10.0.0.1:80"]]}]}"#,
            r#"{"version":1,"written_ms":0,"names":[{"name":"a","port":80,"answered_ms":0,"backends":[["10.0.0.1:80",-3]]}]}"#,
            r#"{"version":1,"written_ms":0}"#,
        ] {
            assert!(matches!(decode(bad), Err(CarryError::Json(_))), "{bad}");
        }
        assert!(matches!(
            decode(r#"{"version":2,"written_ms":0,"names":[]}"#),
            Err(CarryError::Version(2))
        ));
        assert!(matches!(
            decode(
                r#"{"version":1,"written_ms":0,"names":[{"name":"","port":null,"answered_ms":0,"backends":[]}]}"#
            ),
            Err(CarryError::EmptyName)
        ));
        for a in ["10.0.0.1", "10.0.0.256:80", "web:80", "", "fd00::1:80"] {
            let bad = format!(
                r#"{{"version":1,"written_ms":0,"names":[{{"name":"a","port":80,"answered_ms":0,"backends":[["{a}",1]]}}]}}"#
            );
            match decode(&bad) {
                Err(CarryError::BadAddress(got)) => assert_eq!(got, a),
                other => panic!("{a}: {other:?}"),
            }
        }
        let huge = format!(r#"{{"version":1,"written_ms":{},"names":[]}}"#, u64::MAX);
        assert!(matches!(decode(&huge), Err(CarryError::BadTime(_)) | Ok(_)));
    }

    #[test]
    fn take_reads_once_and_removes() {
        let dir = std::env::temp_dir().join(format!("moirai-carry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = path(&dir);
        assert!(matches!(take(&p), Ok(None)));
        let (good, answered) = sample();
        crate::state::write_private(&p, encode(&good, &answered, SystemTime::now()).as_bytes())
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(take(&p).unwrap().unwrap().names.len(), 2);
        assert!(!p.exists());
        std::fs::write(&p, "{\"version\":1,").unwrap();
        assert!(matches!(
            take(&p),
            Err(TakeError::Carry(CarryError::Json(_)))
        ));
        assert!(!p.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
