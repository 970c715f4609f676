//! Metadata sources: where the `cloud.tritoncompute:*` keys come from.
//!
//! Three sources share the [`Source`] trait: a JSON file (tests, local runs),
//! the SmartOS metadata socket (the native way inside a zone) and the
//! `mdata-get` binary (KVM guests, or anywhere the socket is not reachable).
//! Parsing the values is [`crate::config`]'s job; a source only fetches.

pub mod file;
pub mod mdata;
pub mod mdata_get;
pub mod protocol;
pub mod reader;

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::config::{keys, Metadata};

/// Why a source could not be read. The control loop keeps the last good
/// configuration and reports this.
#[derive(Debug)]
pub enum SourceError {
    /// Reading or connecting failed.
    Io(String, io::Error),
    /// The metadata file is not a JSON object of strings.
    Json(PathBuf, String),
    /// The metadata server sent something the protocol does not allow.
    Protocol(protocol::FrameError),
    /// The server refused the V2 handshake.
    Negotiation(String),
    /// The server answered FAILURE.
    Failure {
        /// The operation.
        op: &'static str,
        /// The key concerned.
        key: String,
    },
    /// No answer in time.
    Timeout(&'static str),
    /// `mdata-get` exited with a status other than 0 or 1.
    Command {
        /// The key asked for.
        key: String,
        /// Exit status, or None when killed.
        status: Option<i32>,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The source cannot do this (e.g. PUT into a file).
    Unsupported(&'static str),
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Io(what, e) => write!(f, "{what}: {e}"),
            SourceError::Json(p, e) => write!(f, "{}: {e}", p.display()),
            SourceError::Protocol(e) => write!(f, "metadata protocol error: {e}"),
            SourceError::Negotiation(got) => {
                write!(f, "metadata server refused protocol V2 (answered {got:?})")
            }
            SourceError::Failure { op, key } => write!(f, "metadata server failed {op} {key:?}"),
            SourceError::Timeout(what) => {
                write!(f, "metadata server did not answer {what} in time")
            }
            SourceError::Command {
                key,
                status,
                stderr,
            } => match status {
                Some(s) => write!(f, "mdata-get {key} exited {s}: {}", stderr.trim()),
                None => write!(f, "mdata-get {key} was killed: {}", stderr.trim()),
            },
            SourceError::Unsupported(what) => write!(f, "this metadata source cannot {what}"),
        }
    }
}

impl std::error::Error for SourceError {}

/// A place metadata can be read from.
pub trait Source: Send {
    /// A short description for logs, e.g. `file /etc/moirai.json`.
    fn describe(&self) -> String;

    /// Reads every `cloud.tritoncompute:*` key that is set.
    fn read(&mut self) -> Result<Metadata, SourceError>;

    /// A cheap hint that a re-read may find something new: `Some(changed)`
    /// from sources that can tell without reading (a file's stamp), `None`
    /// from those that cannot; these are read at the polling interval.
    fn may_have_changed(&mut self) -> Option<bool> {
        None
    }

    /// Stores a key (ACME dns-01 publishes its token this way).
    fn put(&mut self, key: &str, value: &str) -> Result<(), SourceError>;

    /// Whether [`Source::put`] can work at all (dns-01 needs it).
    fn can_write(&self) -> bool {
        false
    }
}

/// Reads the known keys one by one through `get`; keys that are absent are
/// left out of the map.
pub(crate) fn read_known_keys(
    mut get: impl FnMut(&str) -> Result<Option<String>, SourceError>,
) -> Result<Metadata, SourceError> {
    let mut md = Metadata::new();
    for key in keys::ALL {
        if let Some(v) = get(key)? {
            md.insert(key.to_owned(), v);
        }
    }
    Ok(md)
}

/// The metadata socket paths of a SmartOS zone, native first, then LX.
pub const ZONE_SOCKETS: [&str; 2] = [
    "/.zonecontrol/metadata.sock",
    "/native/.zonecontrol/metadata.sock",
];

/// Where `mdata-get` lives on SmartOS and in Triton's Linux images.
pub const MDATA_GET: &str = "/usr/sbin/mdata-get";

/// The source to use when none is given: the zone's metadata socket when it
/// exists, else `mdata-get` when installed.
pub fn default_source() -> Option<Box<dyn Source>> {
    for path in ZONE_SOCKETS {
        if std::path::Path::new(path).exists() {
            return Some(Box::new(mdata::MdataClient::new(path)));
        }
    }
    if std::path::Path::new(MDATA_GET).exists() {
        return Some(Box::new(mdata_get::MdataGet::new(MDATA_GET)));
    }
    None
}
