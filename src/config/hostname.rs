//! Host names as the metadata gives them (portmap backends, syslog
//! collectors, certificate names), checked once.

use std::fmt;

/// A syntactically valid DNS name: lower-cased, without a trailing dot,
/// labels of 1..=63 letters, digits, `-` or `_`, 253 bytes at most.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostName(String);

impl HostName {
    /// Validates and normalises `s`; the error says what is wrong.
    pub fn parse(s: &str) -> Result<HostName, &'static str> {
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.is_empty() {
            return Err("it is empty");
        }
        if s.len() > 253 {
            return Err("it is longer than 253 bytes");
        }
        let mut all_numeric = true;
        for label in s.split('.') {
            if label.is_empty() {
                return Err("it has an empty label");
            }
            if label.len() > 63 {
                return Err("a label is longer than 63 bytes");
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err("only letters, digits, '-', '_' and '.' are allowed");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err("a label starts or ends with '-'");
            }
            all_numeric &= label.bytes().all(|b| b.is_ascii_digit());
        }
        if all_numeric {
            return Err("it looks like an IPv4 address but is not a valid one");
        }
        Ok(HostName(s.to_ascii_lowercase()))
    }

    /// `*.base`: a wildcard certificate name. Only certificates use these.
    pub fn wildcard(base: &HostName) -> HostName {
        HostName(format!("*.{}", base.0))
    }

    /// The name, lower-case, without a trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
