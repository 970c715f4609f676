//! The state directory and the secrets in it (TLS keys, the ACME account
//! key, the cookie key).
//!
//! - A directory moirai creates is `0700`. An existing one keeps its mode
//!   (an operator chose it, and it may be shared), but one that anybody
//!   can write to is refused: another user could swap a key or plant a
//!   link where moirai writes.
//! - A secret is written to a fresh temporary file (`0600`, never an old
//!   one with looser bits), synced, renamed over the old one, and the
//!   directory synced, so a crash leaves the old secret or the new one,
//!   never half of one.
//! - A secret found readable by group or others is made owner-only, with
//!   a log line saying so.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why the state directory cannot be used.
#[derive(Debug)]
pub enum StateDirError {
    /// Creating or inspecting it failed.
    Io(PathBuf, io::Error),
    /// It exists and anybody may write to it.
    WorldWritable(PathBuf, u32),
    /// It exists and is not a directory.
    NotADirectory(PathBuf),
}

impl fmt::Display for StateDirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateDirError::Io(p, e) => write!(f, "state directory {}: {e}", p.display()),
            StateDirError::WorldWritable(p, mode) => write!(
                f,
                "state directory {} is writable by anybody (mode {mode:04o}); keys cannot be kept there: \
                 choose another --state-dir or chmod o-w it",
                p.display()
            ),
            StateDirError::NotADirectory(p) => {
                write!(f, "state directory {} is not a directory", p.display())
            }
        }
    }
}

impl std::error::Error for StateDirError {}

/// Makes sure `dir` exists and may hold secrets; see the module doc.
pub fn prepare(dir: &Path) -> Result<(), StateDirError> {
    let err = |e| StateDirError::Io(dir.to_owned(), e);
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => check_mode(dir, &m),
        Ok(_) => Err(StateDirError::NotADirectory(dir.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(err)?;
            }
            let mut b = std::fs::DirBuilder::new();
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            match b.create(dir) {
                Ok(()) => Ok(()),
                // Made by someone else meanwhile: judge it as found.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let m = std::fs::symlink_metadata(dir).map_err(err)?;
                    check_mode(dir, &m)
                }
                Err(e) => Err(err(e)),
            }
        }
        Err(e) => Err(err(e)),
    }
}

#[cfg(unix)]
fn check_mode(dir: &Path, m: &std::fs::Metadata) -> Result<(), StateDirError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = m.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Err(StateDirError::WorldWritable(dir.to_owned(), mode));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_: &Path, _: &std::fs::Metadata) -> Result<(), StateDirError> {
    Ok(())
}

/// Reads a secret, first making it owner-only if group or others could
/// read it (logged).
pub fn read_private(path: &Path) -> io::Result<Vec<u8>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(path)?;
        let mode = m.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
            log::warn!(
                "{} was readable by others (mode {mode:04o}); made it owner-only",
                path.display()
            );
        }
    }
    std::fs::read(path)
}

/// Writes a secret atomically and owner-only; see the module doc.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(name);
    // A stale temporary file may have looser bits: never reuse it.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let written = opts.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename itself survives a crash once the directory is synced.
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("moirai-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_directory_is_private_and_an_existing_one_keeps_its_mode() {
        let d = scratch("new").join("state");
        prepare(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        let shared = scratch("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o750)).unwrap();
        prepare(&shared).unwrap();
        assert_eq!(mode(&shared), 0o750);
    }

    #[test]
    fn a_world_writable_directory_is_refused_and_left_alone() {
        let d = scratch("tmp");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = prepare(&d).unwrap_err();
        assert!(matches!(e, StateDirError::WorldWritable(_, 0o1777)), "{e}");
        assert!(e.to_string().contains("writable by anybody"));
        assert_eq!(mode(&d), 0o1777);
        let f = scratch("file");
        std::fs::write(&f, b"x").unwrap();
        assert!(matches!(prepare(&f), Err(StateDirError::NotADirectory(_))));
    }

    #[test]
    fn secrets_are_written_owner_only_and_fixed_when_found_open() {
        let d = scratch("keys");
        std::fs::create_dir(&d).unwrap();
        let k = d.join("key.pem");
        // A stale temporary file with loose bits is not reused.
        let stale = d.join(format!("key.pem.tmp.{}", std::process::id()));
        std::fs::write(&stale, b"old").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&k, b"secret").unwrap();
        assert_eq!(mode(&k), 0o600);
        assert!(!stale.exists());
        assert_eq!(std::fs::read(&k).unwrap(), b"secret");
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read_private(&k).unwrap(), b"secret");
        assert_eq!(mode(&k), 0o600);
    }
}
