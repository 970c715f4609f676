//! What one system's run of the soak leaves for the report: its tallies,
//! failures, events and one sample of the balancer per second. The run
//! (`mod.rs`) fills it; `report.rs` classifies and prints it.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;

use super::{clients, events};

/// One second's sample of the balancer.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub t: f64,
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
    pub cpu_s: f64,
    /// Backends up per listen port.
    pub up: HashMap<u16, usize>,
    /// Client connections open (moirai's status).
    pub open: Option<u64>,
}

/// Everything one system's run left for the report.
pub struct Run {
    pub system: &'static str,
    pub duration: f64,
    pub tally: std::collections::BTreeMap<(&'static str, &'static str), clients::Tally>,
    pub failures: Vec<clients::Failure>,
    pub events: Vec<events::Event>,
    pub samples: Vec<Sample>,
    pub scrapes: (u64, u64),
    pub syslog_lines: u64,
    /// Seconds until the balancer's client connections were all closed
    /// after the load stopped (moirai); None if they never were.
    pub drained_after: Option<f64>,
    pub open_at_end: Option<u64>,
    pub log: String,
    pub errors_log: String,
    pub status_at_end: Option<Value>,
    pub ports: HashMap<&'static str, u16>,
    pub members: HashMap<&'static str, Vec<String>>,
    pub access_log: Option<PathBuf>,
    /// Descriptors and threads at rest, before the load and after it.
    pub at_rest: ((u64, u64), (u64, u64)),
}
