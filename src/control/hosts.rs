//! Static name resolution from a hosts file (`/etc/hosts` format), consulted
//! before DNS as the system resolver does. It lets an operator pin a backend
//! name to addresses without a DNS server, and lets tests give one name
//! several backends. Names it does not know are left to DNS.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::HostName;

/// Parsed hosts file, re-read when it changes.
#[derive(Debug, Default)]
pub struct Hosts {
    path: Option<PathBuf>,
    stamp: Option<(SystemTime, u64)>,
    names: HashMap<String, Vec<IpAddr>>,
}

impl Hosts {
    /// Reads `path` (a missing file is an empty table).
    pub fn load(path: impl Into<PathBuf>) -> Hosts {
        let mut h = Hosts {
            path: Some(path.into()),
            ..Hosts::default()
        };
        h.refresh();
        h
    }

    /// Re-reads the file if it changed; returns whether it did.
    pub fn refresh(&mut self) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        let stamp = std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp == self.stamp {
            return false;
        }
        self.stamp = stamp;
        self.names = read(path);
        true
    }

    /// Addresses for `name`, in file order, or None if the file does not
    /// name it.
    pub fn lookup(&self, name: &HostName) -> Option<&[IpAddr]> {
        self.names.get(name.as_str()).map(Vec::as_slice)
    }
}

fn read(path: &Path) -> HashMap<String, Vec<IpAddr>> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text),
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("hosts file {}: {e}", path.display());
            }
            HashMap::new()
        }
    }
}

/// Parses hosts-file text: `ADDRESS NAME [ALIAS...]`, `#` comments. A name
/// on several lines gets every address, without repeats.
pub fn parse(text: &str) -> HashMap<String, Vec<IpAddr>> {
    let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        for name in words {
            let Ok(name) = HostName::parse(name) else {
                continue;
            };
            let v = names.entry(name.as_str().to_owned()).or_default();
            if !v.contains(&ip) {
                v.push(ip);
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_collect_addresses_across_lines() {
        let t = parse(
            "127.0.0.2 web.test # one\n127.0.0.3 web.test alias.test\n::1 localhost\nbogus line\n",
        );
        assert_eq!(t["web.test"].len(), 2);
        assert_eq!(
            t["alias.test"],
            vec!["127.0.0.3".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(t["localhost"].len(), 1);
        assert_eq!(t.len(), 3);
    }
}
