//! An upgrade's pre-flight: before anything drains, the new program runs
//! as a child, `PROGRAM run ... --preflight` (the argv the exec would
//! pass, plus the flag), with duplicates of the listening sockets named in
//! [`INHERITED_ENV`] as they would be. It parses its options, reads the
//! metadata, builds its first configuration the way `run` does (a
//! `loadbalancer` that is not `true` fails it) and checks that every
//! socket is a listening TCP socket it could take, then exits 0. Only
//! then do the workers hand over and the process exec the program.
//!
//! The child gets [`LIMIT`] and is killed after; the control loop polls it
//! between events, so serving, health checks and `moirai status` go on
//! meanwhile.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::intake::{Configured, Intake};
use crate::metadata::Source;
use crate::sys::net::{self, ListenKey, INHERITED_ENV};

/// The hidden `moirai run` flag that makes it a pre-flight.
pub const FLAG: &str = "--preflight";
/// How long the new program gets to pass.
pub const LIMIT: Duration = Duration::from_secs(10);
/// Once it exited, how long its stderr may take to end (a program that
/// left a child holding it open is not waited for).
const STDERR_WAIT: Duration = Duration::from_millis(500);
/// How much of its stderr is kept: the end, where the reason is.
const STDERR_KEEP: usize = 4096;
/// Lines of it quoted in a failure.
const TAIL_LINES: usize = 5;

/// Why the new program failed its pre-flight.
#[derive(Debug)]
pub enum PreflightError {
    /// It could not be started at all.
    Spawn(PathBuf, std::io::Error),
    /// It did not finish within [`LIMIT`] and was killed.
    TimedOut(PathBuf, String),
    /// It exited with this status and said this (the end of its stderr).
    Failed(PathBuf, ExitStatus, String),
    /// Waiting for it failed.
    Wait(PathBuf, std::io::Error),
}

impl fmt::Display for PreflightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let said = |f: &mut fmt::Formatter<'_>, tail: &str| {
            if tail.is_empty() {
                f.write_str(" (it said nothing)")
            } else {
                write!(f, ":\n{tail}")
            }
        };
        match self {
            PreflightError::Spawn(p, e) => write!(f, "cannot start {}: {e}", p.display()),
            PreflightError::TimedOut(p, tail) => {
                write!(
                    f,
                    "{} did not pass its pre-flight within {} s (killed)",
                    p.display(),
                    LIMIT.as_secs()
                )?;
                said(f, tail)
            }
            PreflightError::Failed(p, status, tail) => {
                write!(f, "{} failed its pre-flight ({status})", p.display())?;
                said(f, tail)
            }
            PreflightError::Wait(p, e) => write!(f, "cannot wait for {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for PreflightError {}

/// A pre-flight under way.
#[derive(Debug)]
pub struct Preflight {
    path: PathBuf,
    child: Child,
    deadline: Instant,
    /// The end of its stderr, filled by a reader thread.
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Says when its stderr ended.
    stderr_done: crossbeam_channel::Receiver<()>,
}

impl Preflight {
    /// Starts `path` with `args` (those of this process's `run`) and
    /// [`FLAG`], handing it `sockets` (duplicates; they are closed here
    /// once the child has them).
    pub fn start(
        path: &Path,
        args: impl IntoIterator<Item = OsString>,
        sockets: Vec<(ListenKey, std::net::TcpListener)>,
    ) -> Result<Preflight, PreflightError> {
        use std::os::fd::AsRawFd;
        let env = net::inherited_env_value(
            sockets
                .iter()
                .map(|((addr, port), l)| (l.as_raw_fd(), *addr, *port)),
        );
        let mut cmd = Command::new(path);
        cmd.args(args)
            .arg(FLAG)
            .env(INHERITED_ENV, env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::sys::process::pass_fds(
            &mut cmd,
            sockets.iter().map(|(_, l)| l.as_raw_fd()).collect(),
        );
        let mut child = cmd
            .spawn()
            .map_err(|e| PreflightError::Spawn(path.to_owned(), e))?;
        drop(sockets);
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, stderr_done) = crossbeam_channel::bounded(1);
        if let Some(mut pipe) = child.stderr.take() {
            let keep = Arc::clone(&stderr);
            let spawned = std::thread::Builder::new()
                .name("moirai-preflight".to_owned())
                .spawn(move || {
                    let mut chunk = [0u8; 1024];
                    while let Ok(n) = pipe.read(&mut chunk) {
                        if n == 0 {
                            break;
                        }
                        let mut buf = keep.lock().unwrap_or_else(|p| p.into_inner());
                        buf.extend_from_slice(&chunk[..n]);
                        let over = buf.len().saturating_sub(STDERR_KEEP);
                        buf.drain(..over);
                    }
                    let _ = done_tx.send(());
                });
            if let Err(e) = spawned {
                log::warn!("upgrade: the pre-flight's stderr is not read: {e}");
            }
        }
        Ok(Preflight {
            path: path.to_owned(),
            child,
            deadline: Instant::now() + LIMIT,
            stderr,
            stderr_done,
        })
    }

    /// The program checked.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `None` while it runs; then its last line on success, or why it
    /// failed. Kills it once past [`LIMIT`].
    pub fn poll(&mut self, now: Instant) -> Option<Result<String, PreflightError>> {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => s,
            Ok(None) if now < self.deadline => return None,
            Ok(None) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Some(Err(PreflightError::TimedOut(
                    self.path.clone(),
                    self.tail(),
                )));
            }
            Err(e) => return Some(Err(PreflightError::Wait(self.path.clone(), e))),
        };
        let tail = self.tail();
        Some(if status.success() {
            Ok(tail.lines().last().unwrap_or("").to_owned())
        } else {
            Err(PreflightError::Failed(self.path.clone(), status, tail))
        })
    }

    /// The last lines of its stderr, once it ended (or after a moment).
    fn tail(&self) -> String {
        let _ = self.stderr_done.recv_timeout(STDERR_WAIT);
        let buf = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        tail_lines(&String::from_utf8_lossy(&buf), TAIL_LINES)
    }
}

impl Drop for Preflight {
    /// A pre-flight abandoned (moirai stops) is killed.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last `n` non-empty lines of `text`.
fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Why this program, run as a pre-flight, would not take over.
#[derive(Debug)]
pub enum CheckError {
    /// The metadata cannot be read.
    Metadata(String),
    /// No configuration to run (`loadbalancer` is not `true`).
    Config(String),
    /// A socket handed over cannot be taken.
    Listener(net::InheritError),
}

impl CheckError {
    /// The exit status: 96 (`SMF_EXIT_ERR_CONFIG`) as `run` would give
    /// for a configuration, 2 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CheckError::Config(_) => 96,
            _ => 2,
        }
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Metadata(e) | CheckError::Config(e) => f.write_str(e),
            CheckError::Listener(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CheckError {}

/// The pre-flight itself, in the new program: reads the metadata from
/// `source`, builds the first configuration as `run` would, and takes (to
/// check, then closes) every socket [`INHERITED_ENV`] names. Returns a
/// line saying what it would serve, adopt and close.
pub fn check(
    mut source: Box<dyn Source>,
    listen_addresses: &[IpAddr],
) -> Result<String, CheckError> {
    let described = source.describe();
    let md = source
        .read()
        .map_err(|e| CheckError::Metadata(format!("cannot read metadata from {described}: {e}")))?;
    let config = match Configured::new(&described).read(Ok(md), false, 0) {
        Intake::Apply(c) => c,
        Intake::Fatal(why) | Intake::ReadFailed(why) | Intake::KeptRunning(why) => {
            return Err(CheckError::Config(why))
        }
        Intake::Unchanged => unreachable!("nothing ran before the first read"),
    };
    let (sockets, errors) = net::inherited_from_env();
    if let Some(e) = errors.into_iter().next() {
        return Err(CheckError::Listener(e));
    }
    // The keys the workers will open: every service port on every listen
    // address (none: all of them).
    let addrs: Vec<Option<IpAddr>> = if listen_addresses.is_empty() {
        vec![None]
    } else {
        listen_addresses.iter().copied().map(Some).collect()
    };
    let served: HashSet<ListenKey> = config
        .services()
        .iter()
        .flat_map(|s| addrs.iter().map(move |a| (*a, s.listen.get())))
        .collect();
    let (adopt, close): (Vec<_>, Vec<_>) = sockets.iter().partition(|(k, _)| served.contains(k));
    let mut closed: Vec<u16> = close.iter().map(|((_, port), _)| *port).collect();
    closed.sort_unstable();
    closed.dedup();
    Ok(format!(
        "pre-flight passed: {} services; of {} inherited listeners {} would be adopted{}",
        config.services().len(),
        sockets.len(),
        adopt.len(),
        if closed.is_empty() {
            String::new()
        } else {
            format!(
                ", {} closed (ports not configured: {closed:?})",
                close.len()
            )
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_quotes_the_end_of_what_the_program_said() {
        assert_eq!(tail_lines("a\n\nb\nc\n  \nd\ne\nf\n", 3), "d\ne\nf");
        assert_eq!(tail_lines("", 3), "");
    }

    /// A program that exits at once fails, with its status; one that
    /// passes gives its last line; one that hangs is killed.
    #[test]
    fn the_child_decides_within_the_limit() {
        let dir = std::env::temp_dir().join(format!("moirai-preflight-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = |name: &str, body: &str| {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let run = |p: &Path| {
            let mut pf = Preflight::start(p, [OsString::from("run")], Vec::new()).unwrap();
            loop {
                if let Some(v) = pf.poll(Instant::now()) {
                    return v;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let fails = script(
            "fails",
            "echo starting >&2\necho 'moirai: no good' >&2\nexit 3",
        );
        let e = run(&fails).unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(e, PreflightError::Failed(_, s, _) if s.code() == Some(3)),
            "{text}"
        );
        assert!(text.ends_with("starting\nmoirai: no good"), "{text}");
        // The flag and the sockets' variable reach it.
        let passes = script(
            "passes",
            &format!(
                "[ \"$2\" = {FLAG} ] && [ \"${{{INHERITED_ENV}+set}}\" = set ] || exit 1\necho 'pre-flight passed' >&2"
            ),
        );
        assert_eq!(run(&passes).unwrap(), "pre-flight passed");
        let mut hangs =
            Preflight::start(&script("hangs", "exec sleep 30"), [], Vec::new()).unwrap();
        hangs.deadline = Instant::now();
        let start = Instant::now();
        assert!(matches!(
            hangs.poll(Instant::now() + Duration::from_millis(1)),
            Some(Err(PreflightError::TimedOut(..)))
        ));
        assert!(start.elapsed() < Duration::from_secs(5));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
