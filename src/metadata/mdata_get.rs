//! Runs an `mdata-get` binary once per key: exit 0 is the value on stdout,
//! exit 1 is "not set", anything else is an error. Used where the metadata
//! socket is not reachable, e.g. KVM guests that talk over a serial port.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{read_known_keys, Source, SourceError};
use crate::config::Metadata;

/// How long one `mdata-get` may run before it is killed.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The `mdata-get` source.
#[derive(Debug)]
pub struct MdataGet {
    program: PathBuf,
}

impl MdataGet {
    /// Uses the binary at `program`.
    pub fn new(program: impl Into<PathBuf>) -> MdataGet {
        MdataGet {
            program: program.into(),
        }
    }

    /// Runs the binary for one key.
    pub fn get(&self, key: &str) -> Result<Option<String>, SourceError> {
        let (status, mut out, err) = run(&self.program, &[key], "mdata-get")?;
        match status {
            Some(0) => {
                // mdata-get ends the value with one newline of its own.
                if out.ends_with('\n') {
                    out.pop();
                }
                Ok(Some(out))
            }
            Some(1) => Ok(None),
            code => Err(SourceError::Command {
                key: key.to_owned(),
                status: code,
                stderr: err,
            }),
        }
    }

    /// `mdata-put`, beside `mdata-get` (as on SmartOS: /usr/sbin).
    fn put_program(&self) -> PathBuf {
        self.program.with_file_name("mdata-put")
    }
}

/// Runs `program args`, killed after [`TIMEOUT`]: exit code, stdout, stderr.
fn run(
    program: &Path,
    args: &[&str],
    what: &'static str,
) -> Result<(Option<i32>, String, String), SourceError> {
    let describe = || format!("{} {}", program.display(), args.first().unwrap_or(&""));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SourceError::Io(describe(), e))?;
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child
            .try_wait()
            .map_err(|e| SourceError::Io(describe(), e))?
        {
            Some(s) => break s,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SourceError::Timeout(what));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out)
            .map_err(|e| SourceError::Io(describe(), e))?;
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    Ok((status.code(), out, err))
}

impl Source for MdataGet {
    fn describe(&self) -> String {
        format!("mdata-get {}", self.program.display())
    }

    fn read(&mut self) -> Result<Metadata, SourceError> {
        read_known_keys(|k| self.get(k))
    }

    fn can_write(&self) -> bool {
        self.put_program().exists()
    }

    fn put(&mut self, key: &str, value: &str) -> Result<(), SourceError> {
        match run(&self.put_program(), &[key, value], "mdata-put")? {
            (Some(0), _, _) => Ok(()),
            (status, _, stderr) => Err(SourceError::Command {
                key: key.to_owned(),
                status,
                stderr,
            }),
        }
    }
}
