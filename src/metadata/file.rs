//! A JSON file of key → string, for local runs and tests. The file is
//! re-read when its size, inode or modification time changes, which the
//! control loop checks several times a second.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{Source, SourceError};
use crate::config::{keys, Metadata};

/// Identity of one version of the file, cheap to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

/// Reads metadata from a JSON object in a file.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    last: Option<Stamp>,
}

impl FileSource {
    /// A source for `path`; nothing is read yet.
    pub fn new(path: impl Into<PathBuf>) -> FileSource {
        FileSource {
            path: path.into(),
            last: None,
        }
    }

    fn stamp(path: &Path) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Stamp {
            len: m.len(),
            modified: m.modified().ok(),
            inode,
        })
    }
}

/// Parses the file's text: a JSON object whose values are all strings. Keys
/// outside `cloud.tritoncompute:` are ignored, as they are in instance
/// metadata.
pub fn parse_json(path: &Path, text: &str) -> Result<Metadata, SourceError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| SourceError::Json(path.to_owned(), e.to_string()))?;
    let serde_json::Value::Object(map) = value else {
        return Err(SourceError::Json(
            path.to_owned(),
            "expected a JSON object of key to string".to_owned(),
        ));
    };
    let mut md = Metadata::new();
    for (k, v) in map {
        if !k.starts_with(keys::PREFIX) {
            continue;
        }
        match v {
            serde_json::Value::String(s) => {
                md.insert(k, s);
            }
            other => {
                return Err(SourceError::Json(
                    path.to_owned(),
                    format!("value of {k:?} must be a string, not {other}"),
                ))
            }
        }
    }
    Ok(md)
}

impl Source for FileSource {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn read(&mut self) -> Result<Metadata, SourceError> {
        let before = FileSource::stamp(&self.path);
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| SourceError::Io(self.path.display().to_string(), e))?;
        let md = parse_json(&self.path, &text)?;
        // Only remember a version that parsed, so a half-written file is
        // read again once its writer finishes.
        self.last = before;
        Ok(md)
    }

    fn may_have_changed(&mut self) -> Option<bool> {
        Some(FileSource::stamp(&self.path) != self.last)
    }

    fn put(&mut self, _key: &str, _value: &str) -> Result<(), SourceError> {
        Err(SourceError::Unsupported("store keys"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_string_values_under_the_prefix() {
        let p = Path::new("x.json");
        let md = parse_json(
            p,
            r#"{"cloud.tritoncompute:portmap":"tcp://1:10.0.0.1:2","other":"x"}"#,
        )
        .unwrap();
        assert_eq!(md.len(), 1);
        assert!(parse_json(p, r#"{"cloud.tritoncompute:max_rs":5}"#).is_err());
        assert!(parse_json(p, "[]").is_err());
        assert!(parse_json(p, "{\"cloud.tritoncompute:portmap\": \"x").is_err());
    }
}
