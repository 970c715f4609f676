//! Test backends: thread-per-connection, small and obvious, so a failure is
//! the balancer's and not the backend's.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a backend does with each connection.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Send the tag byte, then echo everything; on EOF, shut down writing.
    TaggedEcho(u8),
    /// Echo everything; on EOF, shut down writing.
    Echo,
}

/// A listening backend, stopped (and every connection cut) on drop or kill.
pub struct Backend {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Backend {
    /// Listens on `addr` (port 0 for any).
    pub fn start(addr: &str, behaviour: Behaviour) -> Backend {
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, c, s) = (accepted.clone(), conns.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        a.fetch_add(1, Ordering::SeqCst);
                        c.lock().unwrap().push(stream.try_clone().unwrap());
                        std::thread::Builder::new()
                            .stack_size(64 * 1024)
                            .spawn(move || serve(stream, behaviour))
                            .unwrap();
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Backend {
            addr,
            accepted,
            conns,
            stop,
        }
    }

    /// Stops listening and resets every open connection: a dead backend.
    pub fn kill(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO));
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

fn serve(mut s: TcpStream, b: Behaviour) {
    if let Behaviour::TaggedEcho(tag) = b {
        if s.write_all(&[tag]).is_err() {
            return;
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => {
                let _ = s.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}
