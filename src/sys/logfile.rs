//! Log files moirai appends to as root (`--access-log`, `--error-log`),
//! and the in-process pipe that carries access lines from the workers to
//! the access log's writer thread: a pipe, not a socket, so nothing
//! outside the process can add a line (a loopback socket once took
//! datagrams from any local user and wrote them, newlines and all, into
//! root's log).
//!
//! A log file is opened so that no other local user can choose what it
//! is: never through a symbolic link at its path (`O_NOFOLLOW`), only in
//! a directory nobody else may write to (the state directory's rule: in
//! one that anybody can write to, another user could plant a link or a
//! file of their own there between two opens), only a regular file, and
//! owner-only (`0600`; an existing file with looser bits is tightened,
//! with a log line).

use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice, PipeReader, PipeWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a log file cannot be used.
#[derive(Debug)]
pub enum LogFileError {
    /// Its directory can be written to by anybody.
    OpenDirectory(PathBuf, u32),
    /// Its path is a symbolic link.
    Symlink(PathBuf),
    /// It exists and is not a regular file.
    NotAFile(PathBuf),
    /// It has other names (hard links): another user could have made it
    /// a second name of a file of root's.
    Linked(PathBuf, u64),
    /// Another user owns it (or its directory).
    NotOurs(PathBuf, u32),
    /// Creating or opening it failed.
    Io(PathBuf, io::Error),
}

impl fmt::Display for LogFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogFileError::OpenDirectory(d, mode) => write!(
                f,
                "log directory {} is writable by anybody (mode {mode:04o}): another user could \
                 plant a link there; choose another path or chmod o-w it",
                d.display()
            ),
            LogFileError::Symlink(p) => write!(
                f,
                "log file {} is a symbolic link; moirai does not follow one",
                p.display()
            ),
            LogFileError::NotAFile(p) => {
                write!(f, "log file {} is not a regular file", p.display())
            }
            LogFileError::Linked(p, n) => write!(
                f,
                "log file {} has {n} names (hard links); moirai writes only a file of its own",
                p.display()
            ),
            LogFileError::NotOurs(p, uid) => write!(
                f,
                "{} belongs to user {uid}, not to moirai's user or root; choose another path",
                p.display()
            ),
            LogFileError::Io(p, e) => write!(f, "log file {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for LogFileError {}

/// Checks that `path` may be a log file (its directory created if
/// missing), without opening it: for start-up, so a bad path is an error
/// before anything runs.
pub fn check_log_path(path: &Path) -> Result<(), LogFileError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Made 0755 whatever the umask, so a group-writable umask does not
    // make moirai refuse a directory it created itself.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| LogFileError::Io(dir.to_owned(), e))?;
    // The directory itself is judged where it leads: a link to /tmp is
    // as open as /tmp.
    let m = std::fs::metadata(dir).map_err(|e| LogFileError::Io(dir.to_owned(), e))?;
    let mode = m.permissions().mode() & 0o7777;
    // Writable by others or by a group: someone else could plant a link,
    // or a second name of a file of root's, there.
    if mode & 0o022 != 0 {
        return Err(LogFileError::OpenDirectory(dir.to_owned(), mode));
    }
    if !owned(m.uid()) {
        return Err(LogFileError::NotOurs(dir.to_owned(), m.uid()));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(LogFileError::Symlink(path.to_owned())),
        Ok(m) if !m.file_type().is_file() => Err(LogFileError::NotAFile(path.to_owned())),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogFileError::Io(path.to_owned(), e)),
    }
}

/// Opens `path` for appending, created `0600` if missing; see the module
/// doc for what is refused.
pub fn open_log(path: &Path) -> Result<File, LogFileError> {
    check_log_path(path)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        // The check above and this open are two steps: O_NOFOLLOW makes
        // a link planted between them fail here instead of being followed.
        // O_NONBLOCK: a FIFO planted there must not hang the open.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => LogFileError::Symlink(path.to_owned()),
            _ => LogFileError::Io(path.to_owned(), e),
        })?;
    let m = file
        .metadata()
        .map_err(|e| LogFileError::Io(path.to_owned(), e))?;
    if !m.file_type().is_file() {
        return Err(LogFileError::NotAFile(path.to_owned()));
    }
    if m.nlink() != 1 {
        return Err(LogFileError::Linked(path.to_owned(), m.nlink()));
    }
    if !owned(m.uid()) {
        return Err(LogFileError::NotOurs(path.to_owned(), m.uid()));
    }
    if m.mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| LogFileError::Io(path.to_owned(), e))?;
        log::warn!(
            "log file {} was readable or writable by others (mode {:04o}); made owner-only",
            path.display(),
            m.mode() & 0o7777
        );
    }
    Ok(file)
}

/// Whether a file owned by `uid` is moirai's own: its user's, or root's.
fn owned(uid: u32) -> bool {
    // SAFETY: geteuid takes nothing, cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    uid == 0 || uid == me
}

/// A pipe for lines from the workers to the access-log writer: in this
/// process only (no socket another process could send to), both ends
/// closed on exec, the write end non-blocking so a worker never waits for
/// the disk (a full pipe drops the line, counted).
pub fn log_pipe() -> io::Result<(PipeReader, PipeWriter)> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let (r, w) = std::io::pipe()?;
    let flags = OFlag::from_bits_truncate(fcntl(&w, FcntlArg::F_GETFL)?);
    fcntl(&w, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok((r, w))
}

/// The longest line the pipe carries, with its 2-byte length: writes of
/// at most `PIPE_BUF` bytes (4096 on Linux, 5120 on illumos) are atomic,
/// so lines from several workers never interleave and a full pipe
/// refuses a whole line, never half of one.
pub const MAX_FRAME: usize = 4096;

/// Where workers write lines: the pipe's write end, shared (each worker's
/// sink holds its own duplicate). Equal only to itself, so a snapshot
/// with the same log compares equal.
#[derive(Debug, Clone)]
pub struct LocalLog(Arc<PipeWriter>);

impl PartialEq for LocalLog {
    fn eq(&self, other: &LocalLog) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for LocalLog {}

impl LocalLog {
    /// The pipe's write end, shared from now on.
    pub fn new(w: PipeWriter) -> LocalLog {
        LocalLog(Arc::new(w))
    }

    /// A write end of the worker's own.
    pub fn writer(&self) -> std::io::Result<LineWriter> {
        Ok(LineWriter(self.0.try_clone()?))
    }
}

/// One worker's end of the pipe.
#[derive(Debug)]
pub struct LineWriter(PipeWriter);

impl LineWriter {
    /// Sends one line (cut to fit a frame); false when it was dropped
    /// (the pipe is full, or the writer thread is gone).
    pub fn send(&mut self, line: &[u8]) -> bool {
        let line = &line[..line.len().min(MAX_FRAME - 2)];
        let len = (line.len() as u16).to_be_bytes();
        let frame = [IoSlice::new(&len), IoSlice::new(line)];
        matches!(self.0.write_vectored(&frame), Ok(n) if n == line.len() + 2)
    }
}

/// Reads the next frame's line into `line`; its length, or none at the
/// end.
pub fn next_frame(r: &mut impl Read, line: &mut [u8]) -> Option<usize> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len).ok()?;
    let n = usize::from(u16::from_be_bytes(len)).min(line.len());
    r.read_exact(&mut line[..n]).ok()?;
    // Lines escape what a client sent; a line break here would still be
    // a second line in the file, so none is written whatever comes.
    for b in &mut line[..n] {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str, mode: u32) -> PathBuf {
        let d = std::env::temp_dir().join(format!("moirai-logfile-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        d
    }

    #[test]
    fn a_new_log_is_owner_only_and_an_old_one_is_made_so() {
        let d = dir("mode", 0o755);
        let p = d.join("access.log");
        open_log(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        open_log(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn links_open_directories_and_odd_files_are_refused() {
        let d = dir("refused", 0o755);
        let target = d.join("target");
        std::fs::write(&target, "root's file\n").unwrap();
        let link = d.join("link.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(open_log(&link), Err(LogFileError::Symlink(_))));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "root's file\n");
        std::fs::create_dir(d.join("sub")).unwrap();
        assert!(matches!(
            open_log(&d.join("sub")),
            Err(LogFileError::NotAFile(_))
        ));
        // A second name of a file of root's, planted where the log goes.
        let planted = d.join("hard.log");
        std::fs::hard_link(&target, &planted).unwrap();
        assert!(matches!(
            open_log(&planted),
            Err(LogFileError::Linked(_, 2))
        ));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "root's file\n");
        // A directory its group may write to.
        let shared = dir("group", 0o775);
        assert!(matches!(
            open_log(&shared.join("a.log")),
            Err(LogFileError::OpenDirectory(_, 0o775))
        ));
        let _ = std::fs::remove_dir_all(&shared);
        let open = dir("open", 0o1777);
        assert!(matches!(
            open_log(&open.join("a.log")),
            Err(LogFileError::OpenDirectory(_, 0o1777))
        ));
        assert!(!open.join("a.log").exists(), "nothing created there");
        let _ = std::fs::remove_dir_all(&d);
        let _ = std::fs::remove_dir_all(&open);
    }

    #[test]
    fn the_pipes_write_end_never_blocks() {
        use std::io::Write;
        let (_r, mut w) = log_pipe().unwrap();
        let line = [b'x'; 1000];
        let mut n = 0;
        let e = loop {
            match w.write(&line) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
            assert!(n < 100_000, "a pipe holds far less");
        };
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn frames_carry_whole_lines_and_never_a_line_break() {
        let (r, w) = log_pipe().unwrap();
        let mut w = LineWriter(w);
        assert!(w.send(b"<134>one"));
        assert!(w.send(b"two\nthree"));
        let long = vec![b'x'; 10_000];
        assert!(w.send(&long));
        drop(w);
        let mut r = std::io::BufReader::new(r);
        let mut line = vec![0u8; MAX_FRAME];
        let mut got = Vec::new();
        while let Some(n) = next_frame(&mut r, &mut line) {
            got.push(line[..n].to_vec());
        }
        assert_eq!(got[0], b"<134>one");
        assert_eq!(got[1], b"two three");
        assert_eq!(got[2].len(), MAX_FRAME - 2, "cut to fit one atomic write");
        assert_eq!(got.len(), 3);
    }
}
