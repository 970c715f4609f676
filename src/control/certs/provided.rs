//! Watching the operator's certificates in `STATE_DIR/certs`
//! ([`crate::tls::provided`] has the file convention).
//!
//! The control thread looks at the directory once a second: no inotify
//! (illumos has event ports for files, Linux inotify; a stat of a handful
//! of files a second costs nothing and works on both, NFS included). A file
//! is read again when its stamp (mtime, size, inode, mode) changes, which a
//! rewrite in place, a rename over it and a chmod all do; and only once the
//! stamp stayed the same for one look, so a certificate copied before its
//! key is not refused on the way. A file that fails keeps its previous
//! version serving; a file removed stops being served.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::sign::CertifiedKey;

use crate::tls::provided::{self, Provided};

/// One version of a file, as far as `stat` tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
    dev: u64,
    mode: u32,
}

fn file_stamp(path: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: m.modified().ok(),
        len: m.len(),
        ino: m.ino(),
        dev: m.dev(),
        mode: m.mode(),
    })
}

/// `NAME.pem` and `NAME.key`.
type Stamp = (Option<FileStamp>, Option<FileStamp>);

fn stamp(pem: &Path) -> Stamp {
    (file_stamp(pem), file_stamp(&provided::key_path(pem)))
}

#[derive(Debug)]
struct Entry {
    /// At the last look.
    seen: Stamp,
    /// Of the version last read, served or refused.
    read: Option<Stamp>,
    serving: Option<Provided>,
    /// Why the version last read is not served.
    error: Option<String>,
}

/// The provided certificates, by `NAME.pem` path.
#[derive(Debug)]
pub struct Watch {
    dir: PathBuf,
    entries: BTreeMap<PathBuf, Entry>,
    /// Why the directory itself is not read.
    dir_error: Option<String>,
}

impl Watch {
    /// Watches `STATE_DIR/certs`.
    pub fn new(state_dir: &Path) -> Watch {
        Watch {
            dir: state_dir.join(provided::DIR),
            entries: BTreeMap::new(),
            dir_error: None,
        }
    }

    /// The certificate files now in the directory; `None` when there is no
    /// directory.
    fn list(&self) -> Result<Option<BTreeSet<PathBuf>>, provided::ProvidedError> {
        use provided::ProvidedError;
        let meta = match std::fs::metadata(&self.dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ProvidedError::Io(self.dir.clone(), e)),
        };
        provided::check_dir(&self.dir, &meta)?;
        let rd =
            std::fs::read_dir(&self.dir).map_err(|e| ProvidedError::Io(self.dir.clone(), e))?;
        Ok(Some(
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| provided::is_cert_file(p) && p.is_file())
                .collect(),
        ))
    }

    fn set_dir_error(&mut self, e: Option<String>) {
        if e != self.dir_error {
            if let Some(why) = &e {
                log::error!("tls: {why}; provided certificates already served are kept");
            }
            self.dir_error = e;
        }
    }

    /// Looks at the directory; true when the certificates served changed.
    /// `first`: files are read at once, not after a settling look (at
    /// start, before the first handshake).
    pub fn scan(&mut self, first: bool) -> bool {
        let files = match self.list() {
            Ok(f) => {
                self.set_dir_error(None);
                f.unwrap_or_default()
            }
            Err(e) => {
                self.set_dir_error(Some(e.to_string()));
                return false;
            }
        };
        let mut changed = false;
        let gone: Vec<PathBuf> = self
            .entries
            .keys()
            .filter(|p| !files.contains(*p))
            .cloned()
            .collect();
        for p in gone {
            if self.entries.remove(&p).is_some_and(|e| e.serving.is_some()) {
                log::info!(
                    "tls: {} was removed; its names go back to ACME or the self-signed certificate",
                    p.display()
                );
                changed = true;
            }
        }
        for pem in files {
            let now = stamp(&pem);
            let e = self.entries.entry(pem.clone()).or_insert(Entry {
                seen: (None, None),
                read: None,
                serving: None,
                error: None,
            });
            let settled = first || e.seen == now;
            e.seen = now;
            if !settled || e.read == Some(now) {
                continue;
            }
            e.read = Some(now);
            match provided::load(&pem) {
                Ok(p) => {
                    log::info!(
                        "tls: serving the provided certificate {} for {}{}",
                        pem.display(),
                        p.names.join(", "),
                        until(p.leaf())
                    );
                    e.serving = Some(p);
                    e.error = None;
                    changed = true;
                }
                Err(why) => {
                    log::error!(
                        "tls: {why}; {}",
                        if e.serving.is_some() {
                            "still serving its previous version"
                        } else {
                            "not served"
                        }
                    );
                    e.error = Some(why.to_string());
                }
            }
        }
        changed
    }

    /// The key for every name, for the store. Two files with a name in
    /// common: the first by file name wins (logged), so the outcome does
    /// not depend on the order files were copied in.
    pub fn by_name(&self) -> HashMap<String, Arc<CertifiedKey>> {
        let mut map: HashMap<String, (Arc<CertifiedKey>, &Path)> = HashMap::new();
        for (pem, p) in self.serving() {
            for n in &p.names {
                match map.get(n) {
                    Some((_, first)) => log::warn!(
                        "tls: {} and {} both cover {n}; {} is served for it",
                        first.display(),
                        pem.display(),
                        first.display()
                    ),
                    None => {
                        map.insert(n.clone(), (Arc::clone(&p.key), pem));
                    }
                }
            }
        }
        map.into_iter().map(|(n, (k, _))| (n, k)).collect()
    }

    /// The certificates served, by file.
    pub fn serving(&self) -> impl Iterator<Item = (&Path, &Provided)> {
        self.entries
            .iter()
            .filter_map(|(p, e)| e.serving.as_ref().map(|s| (p.as_path(), s)))
    }

    /// Why files (or the directory) are not served, each naming the file.
    pub fn errors(&self) -> Vec<String> {
        self.dir_error
            .iter()
            .chain(self.entries.values().filter_map(|e| e.error.as_ref()))
            .cloned()
            .collect()
    }
}

/// ", valid until DATE" for a leaf whose date can be read.
fn until(leaf: &[u8]) -> String {
    crate::tls::validity::validity(leaf)
        .map(|(_, na)| format!(", valid until {}", humantime::format_rfc3339_seconds(na)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let c = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (c.pem(), key.serialize_pem())
    }

    fn put(p: &Path, text: &str) {
        let tmp = p.with_file_name(".tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&tmp, p).unwrap();
    }

    #[test]
    fn changes_are_read_once_settled_and_a_bad_version_keeps_the_old() {
        let state = std::env::temp_dir().join(format!("moirai-certs-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(state.join("certs")).unwrap();
        let pem = state.join("certs/site.pem");
        let (c, k) = pair("a.test");
        put(&pem, &format!("{c}{k}"));
        let mut w = Watch::new(&state);
        assert!(w.scan(true), "read at once at start");
        let first = Arc::clone(&w.by_name()["a.test"]);
        // A bad version: refused, the old one kept, the error names the file.
        put(&pem, "garbage");
        assert!(!w.scan(false), "not read before it settled");
        assert!(!w.scan(false));
        assert!(Arc::ptr_eq(&w.by_name()["a.test"], &first));
        let errors = w.errors();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("site.pem"), "{errors:?}");
        // A good one replaces it; the error goes.
        let (c, k) = pair("a.test");
        put(&pem, &format!("{c}{k}"));
        assert!(!w.scan(false));
        assert!(w.scan(false));
        assert!(!Arc::ptr_eq(&w.by_name()["a.test"], &first));
        assert!(w.errors().is_empty());
        // Removed: no longer served.
        std::fs::remove_file(&pem).unwrap();
        assert!(w.scan(false));
        assert!(w.by_name().is_empty());
        // A directory anybody may write to is not read.
        put(&pem, &format!("{c}{k}"));
        std::fs::set_permissions(state.join("certs"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        assert!(!w.scan(true));
        assert!(w.errors()[0].contains("writable by others"));
        std::fs::remove_dir_all(&state).unwrap();
    }
}
