//! The metadata reader: a thread of the control plane that owns the
//! [`Source`] and does its slow I/O, so a metadata agent that hangs (the
//! SmartOS protocol allows seconds per key) never delays health checks,
//! DNS answers, `moirai status` or a drain on the control loop.
//!
//! It reads when the source says it changed (a file, checked every tick),
//! every `interval` otherwise, and at once when asked (SIGHUP); it writes
//! keys when asked (ACME dns-01). Every outcome goes back on a channel,
//! followed by a wake-up of the control poll.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::Source;
use crate::config::Metadata;
use crate::sys::poll::Waker;

/// How often the reader asks a source whether it changed.
const TICK: Duration = Duration::from_millis(200);

/// What the control loop asks of the reader.
#[derive(Debug)]
enum Request {
    ReadNow,
    Put { key: String, value: String },
}

/// What the reader reports.
#[derive(Debug)]
pub enum Outcome {
    /// A read finished: the keys, or why not.
    Read(Result<Metadata, String>),
    /// A write finished.
    Put {
        /// The key written.
        key: String,
        /// Success, or why not.
        result: Result<(), String>,
    },
}

/// The control loop's handle on the reader thread. Dropping it stops the
/// thread after its current operation.
#[derive(Debug)]
pub struct Reader {
    tx: Sender<Request>,
    /// Outcomes, in order.
    pub outcomes: Receiver<Outcome>,
    describe: String,
    writable: bool,
}

impl Reader {
    /// Starts the thread; its first read begins at once.
    pub fn spawn(
        mut source: Box<dyn Source>,
        interval: Duration,
        waker: Arc<Waker>,
    ) -> std::io::Result<Reader> {
        let (tx, requests) = crossbeam_channel::unbounded();
        let (report, outcomes) = crossbeam_channel::unbounded();
        let describe = source.describe();
        let writable = source.can_write();
        std::thread::Builder::new()
            .name("metadata".into())
            .spawn(move || {
                let send = |o: Outcome| {
                    let alive = report.send(o).is_ok();
                    let _ = waker.wake();
                    alive
                };
                let mut next_read = Instant::now();
                let mut failing = false;
                loop {
                    let now = Instant::now();
                    // A failing source is retried at the interval, not at
                    // every tick of its change hint.
                    let due =
                        now >= next_read || (!failing && source.may_have_changed() == Some(true));
                    if due {
                        next_read = now + interval;
                        let r = source.read().map_err(|e| e.to_string());
                        failing = r.is_err();
                        if !send(Outcome::Read(r)) {
                            return;
                        }
                    }
                    match requests.recv_timeout(TICK) {
                        Ok(Request::ReadNow) => next_read = Instant::now(),
                        Ok(Request::Put { key, value }) => {
                            let result = source.put(&key, &value).map_err(|e| e.to_string());
                            if !send(Outcome::Put { key, result }) {
                                return;
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        Ok(Reader {
            tx,
            outcomes,
            describe,
            writable,
        })
    }

    /// The source, for logs and `moirai status`.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Whether the source can store keys (ACME dns-01).
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Asks for a read as soon as the current operation ends.
    pub fn read_now(&self) {
        let _ = self.tx.send(Request::ReadNow);
    }

    /// Asks for `key` to be written; the outcome comes back later.
    pub fn put(&self, key: &str, value: &str) {
        let _ = self.tx.send(Request::Put {
            key: key.to_owned(),
            value: value.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::SourceError;
    use crate::sys::poll::{Poll, Token};

    /// A source whose reads take as long as a hung metadata agent's.
    struct Slow(Duration);

    impl Source for Slow {
        fn describe(&self) -> String {
            "slow".into()
        }
        fn read(&mut self) -> Result<Metadata, SourceError> {
            std::thread::sleep(self.0);
            Err(SourceError::Timeout("GET"))
        }
        fn put(&mut self, _: &str, _: &str) -> Result<(), SourceError> {
            Ok(())
        }
    }

    #[test]
    fn a_slow_source_answers_later_without_blocking_the_caller() {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(1)).unwrap());
        let start = Instant::now();
        let r = Reader::spawn(Box::new(Slow(Duration::from_millis(300))), TICK, waker).unwrap();
        r.put("k", "v");
        // Handing work over returns at once, whatever the source does.
        assert!(start.elapsed() < Duration::from_millis(100));
        let first = r.outcomes.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(matches!(first, Outcome::Read(Err(_))));
        let second = r.outcomes.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(matches!(second, Outcome::Put { result: Ok(()), .. }));
        assert_eq!(r.describe(), "slow");
    }
}
