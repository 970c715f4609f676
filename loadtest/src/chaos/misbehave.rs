//! The soak's misbehaving clients: slowloris heads, readers that never
//! read, uploads reset halfway, floods nobody reads. They run beside the
//! well-behaved load of `clients.rs`, on its pacing and bookkeeping; their
//! outcomes are recorded as theirs, and what matters is that no other
//! client notices them.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clients::{connect, io_fail, paced, period, Fail, Shared, Target};
use super::rng::Rng;

/// Clients that misbehave: slowloris heads, readers that never read,
/// uploads reset halfway. Their outcomes are recorded as theirs; what
/// matters is that nobody else notices them.
pub fn misbehaving(shared: Arc<Shared>, web: Target, stream: Target, rate: f64, mut rng: Rng) {
    let mut threads: Vec<std::thread::JoinHandle<()>> = Vec::new();
    paced(&shared, period(rate), &mut rng, |rng| {
        let kind = rng.range(0, 4);
        let mut r = rng.fork();
        let (sh, web, stream) = (Arc::clone(&shared), web.clone(), stream.clone());
        threads.retain(|h| !h.is_finished());
        threads.push(std::thread::spawn(move || {
            let class = [
                "slowloris",
                "never-reads",
                "reset-mid-body",
                "tcp-never-reads",
            ][kind as usize];
            let target = if kind == 3 { &stream } else { &web };
            let key = (target.service, class);
            let start = Instant::now();
            let mut port = 0;
            let res = misbehave(&sh, target, kind, &mut r, &mut port);
            match res {
                Ok(()) => sh.ok(key),
                Err(f) => sh.fail(key, start, port, f.cause, true),
            }
        }));
    });
    for h in threads {
        let _ = h.join();
    }
}

fn misbehave(
    shared: &Shared,
    t: &Target,
    kind: u64,
    rng: &mut Rng,
    port: &mut u16,
) -> Result<(), Fail> {
    let mut s = connect(t.addr)?;
    *port = s.local_addr().map(|a| a.port()).unwrap_or(0);
    match kind {
        // Slowloris: a header byte every 2 s; the balancer should end it
        // at its request-header timeout.
        0 => {
            let head =
                b"GET /slow HTTP/1.1\r\nHost: lb.cns.test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaa\r\n";
            for b in head.iter() {
                if shared.stopping() {
                    break;
                }
                s.write_all(&[*b]).map_err(|e| io_fail("slowloris", &e))?;
                std::thread::sleep(Duration::from_secs(2));
            }
            Ok(())
        }
        // A big response nobody reads, held 5 to 15 s, then a reset.
        1 => {
            s.write_all(b"GET /big?n=67108864 HTTP/1.1\r\nHost: lb.cns.test\r\n\r\n")
                .map_err(|e| io_fail("never-reads", &e))?;
            sleep_unless_stopped(shared, Duration::from_secs(rng.range(5, 15)));
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            Ok(())
        }
        // An upload reset a tenth of the way through its body.
        2 => {
            s.write_all(
                b"POST /upload HTTP/1.1\r\nHost: lb.cns.test\r\nContent-Length: 1048576\r\n\r\n",
            )
            .map_err(|e| io_fail("reset-mid-body", &e))?;
            s.write_all(&vec![b'r'; 100 * 1024])
                .map_err(|e| io_fail("reset-mid-body", &e))?;
            std::thread::sleep(Duration::from_millis(rng.range(10, 500)));
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            Ok(())
        }
        // Floods an echo backend and never reads the echo.
        _ => {
            let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
            let chunk = vec![b'f'; 64 * 1024];
            let until = Instant::now() + Duration::from_secs(rng.range(3, 10));
            while Instant::now() < until && !shared.stopping() {
                if s.write_all(&chunk).is_err() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            Ok(())
        }
    }
}

/// Sleeps `d`, or less if the soak is stopping.
fn sleep_unless_stopped(shared: &Shared, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !shared.stopping() {
        std::thread::sleep(Duration::from_millis(100));
    }
}
