//! A client for the SmartOS metadata protocol V2 over a UNIX stream socket.
//!
//! The connection is kept between reads. Any error (timeout, bad frame,
//! closed socket) drops it, and the next call reconnects and negotiates
//! again, so a metadata agent restart costs one failed read at most.
//! Calls block for at most the configured timeout: they run on the control
//! thread, never on a worker.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::protocol::{self, RequestId, Response};
use super::{read_known_keys, Source, SourceError};
use crate::config::Metadata;

/// Default time allowed for one request and its answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The V2 client.
#[derive(Debug)]
pub struct MdataClient {
    path: PathBuf,
    timeout: Duration,
    conn: Option<BufReader<UnixStream>>,
    next_id: u32,
}

impl MdataClient {
    /// A client for the socket at `path`; it connects on first use.
    pub fn new(path: impl Into<PathBuf>) -> MdataClient {
        // Ids only need to differ between requests on one connection; a
        // time-derived start keeps two processes from looking alike in logs.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() ^ std::process::id());
        MdataClient {
            path: path.into(),
            timeout: DEFAULT_TIMEOUT,
            conn: None,
            next_id: seed,
        }
    }

    /// Sets how long one request may take.
    pub fn with_timeout(mut self, timeout: Duration) -> MdataClient {
        self.timeout = timeout;
        self
    }

    fn io_err(&self, e: std::io::Error) -> SourceError {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            SourceError::Timeout("a request")
        } else {
            SourceError::Io(format!("metadata socket {}", self.path.display()), e)
        }
    }

    fn connect(&mut self) -> Result<BufReader<UnixStream>, SourceError> {
        let stream = UnixStream::connect(&self.path).map_err(|e| self.io_err(e))?;
        stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
            .map_err(|e| self.io_err(e))?;
        let mut conn = BufReader::new(stream);
        conn.get_mut()
            .write_all(protocol::NEGOTIATE)
            .map_err(|e| self.io_err(e))?;
        let line = read_line(&mut conn, Instant::now() + self.timeout).map_err(|e| match e {
            LineError::Io(e) => self.io_err(e),
            LineError::Closed => SourceError::Negotiation("connection closed".to_owned()),
            LineError::TooLong => SourceError::Negotiation("an over-long line".to_owned()),
        })?;
        if line != protocol::NEGOTIATE_OK.as_bytes() {
            return Err(SourceError::Negotiation(
                String::from_utf8_lossy(&line).into_owned(),
            ));
        }
        Ok(conn)
    }

    /// Sends one request and waits for the answer with the same id; answers
    /// with other ids (late replies to an earlier, timed-out request) are
    /// dropped.
    fn request(
        &mut self,
        op: &'static str,
        payload: Option<&[u8]>,
    ) -> Result<Response, SourceError> {
        let result = self.request_once(op, payload);
        if result.is_err() {
            // Whatever went wrong, the stream may hold half a frame.
            self.conn = None;
        }
        result
    }

    fn request_once(
        &mut self,
        op: &'static str,
        payload: Option<&[u8]>,
    ) -> Result<Response, SourceError> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.connect()?,
        };
        self.next_id = self.next_id.wrapping_add(1);
        let id = RequestId(self.next_id);
        let deadline = Instant::now() + self.timeout;
        conn.get_mut()
            .write_all(&protocol::encode_request(id, op, payload))
            .map_err(|e| self.io_err(e))?;
        loop {
            let line = read_line(&mut conn, deadline).map_err(|e| match e {
                LineError::Io(e) => self.io_err(e),
                LineError::Closed => SourceError::Io(
                    format!("metadata socket {}", self.path.display()),
                    std::io::ErrorKind::UnexpectedEof.into(),
                ),
                LineError::TooLong => SourceError::Protocol(protocol::FrameError::BadHeader),
            })?;
            let (got, response) =
                protocol::decode_response(&line).map_err(SourceError::Protocol)?;
            if got == id {
                self.conn = Some(conn);
                return Ok(response);
            }
            log::debug!("metadata: dropped an answer for request {got}, waiting for {id}");
        }
    }

    /// `GET key`: the value, or None when the key is not set.
    pub fn get(&mut self, key: &str) -> Result<Option<String>, SourceError> {
        match self.request("GET", Some(key.as_bytes()))? {
            Response::Success(v) => Ok(Some(
                String::from_utf8_lossy(&v.unwrap_or_default()).into_owned(),
            )),
            Response::NotFound => Ok(None),
            Response::Failure => Err(SourceError::Failure {
                op: "GET",
                key: key.to_owned(),
            }),
        }
    }

    /// `KEYS`: the names of the customer metadata keys.
    pub fn keys(&mut self) -> Result<Vec<String>, SourceError> {
        match self.request("KEYS", None)? {
            Response::Success(v) => Ok(String::from_utf8_lossy(&v.unwrap_or_default())
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()),
            Response::NotFound => Ok(Vec::new()),
            Response::Failure => Err(SourceError::Failure {
                op: "KEYS",
                key: String::new(),
            }),
        }
    }
}

impl Source for MdataClient {
    fn describe(&self) -> String {
        format!("metadata socket {}", self.path.display())
    }

    fn read(&mut self) -> Result<Metadata, SourceError> {
        read_known_keys(|k| self.get(k))
    }

    fn can_write(&self) -> bool {
        true
    }

    fn put(&mut self, key: &str, value: &str) -> Result<(), SourceError> {
        match self.request("PUT", Some(&protocol::put_payload(key, value)))? {
            Response::Success(_) => Ok(()),
            _ => Err(SourceError::Failure {
                op: "PUT",
                key: key.to_owned(),
            }),
        }
    }
}

enum LineError {
    Io(std::io::Error),
    Closed,
    TooLong,
}

/// Reads one `\n`-terminated line (without it), bounded in size and time.
fn read_line(conn: &mut BufReader<UnixStream>, deadline: Instant) -> Result<Vec<u8>, LineError> {
    let mut line = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LineError::Io(std::io::ErrorKind::TimedOut.into()));
        }
        conn.get_ref()
            .set_read_timeout(Some(left))
            .map_err(LineError::Io)?;
        let buf = match conn.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LineError::Io(e)),
        };
        if buf.is_empty() {
            return Err(LineError::Closed);
        }
        if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&buf[..nl]);
            conn.consume(nl + 1);
            return Ok(line);
        }
        let n = buf.len();
        line.extend_from_slice(buf);
        conn.consume(n);
        if line.len() > protocol::MAX_LINE {
            return Err(LineError::TooLong);
        }
    }
}
