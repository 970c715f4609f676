//! A DNS front that flaps: it sits between moirai and the soak's real
//! nameserver (dnsmasq) and, as the soak switches its mode, forwards
//! queries, drops them, answers garbage or answers NXDOMAIN, so the soak
//! can check that moirai's resolution survives each (keeps its last good
//! backends, recovers when the answers come back).
//!
//! UDP only: moirai resolves over UDP, and should it fall back to TCP the
//! connection simply fails, one more failure among those the soak causes.

// The soak driver that uses this is written alongside it; until it lands
// only the tests do.
#![allow(dead_code)]

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How the front treats each query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsMode {
    /// Relays the query upstream and the answer back, unchanged.
    Forward,
    /// Never answers: the resolver times out.
    Drop,
    /// Answers with bytes that are no valid answer.
    Garbage,
    /// Answers that the name does not exist.
    NxDomain,
}

impl DnsMode {
    /// Its index in `counts` and its stored form.
    fn index(self) -> usize {
        match self {
            DnsMode::Forward => 0,
            DnsMode::Drop => 1,
            DnsMode::Garbage => 2,
            DnsMode::NxDomain => 3,
        }
    }

    fn from_index(i: u8) -> DnsMode {
        match i {
            1 => DnsMode::Drop,
            2 => DnsMode::Garbage,
            3 => DnsMode::NxDomain,
            _ => DnsMode::Forward,
        }
    }
}

/// How long a forwarded query waits for upstream's answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the serving thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// A DNS header's length.
const HEADER: usize = 12;

/// What the serving thread and the handle share.
struct Shared {
    mode: AtomicU8,
    stop: AtomicBool,
    counts: [AtomicU64; 4],
}

/// A UDP DNS front on 127.0.0.1, serving on its own thread until dropped.
pub struct DnsFront {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl DnsFront {
    /// Binds UDP on 127.0.0.1:0 and serves on its own thread until dropped,
    /// forwarding to `upstream` (in mode Forward, the initial one).
    pub fn start(upstream: SocketAddr) -> io::Result<DnsFront> {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        // The thread blocks in recv; the timeout lets it see `stop`.
        sock.set_read_timeout(Some(POLL))?;
        let addr = sock.local_addr()?;
        let shared = Arc::new(Shared {
            mode: AtomicU8::new(DnsMode::Forward.index() as u8),
            stop: AtomicBool::new(false),
            counts: Default::default(),
        });
        let thread = thread::Builder::new().name("chaos-dns".into()).spawn({
            let shared = Arc::clone(&shared);
            move || serve(&sock, upstream, &shared)
        })?;
        Ok(DnsFront {
            addr,
            shared,
            thread: Some(thread),
        })
    }

    /// Where to send queries.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the mode; queries from now on meet it.
    pub fn set(&self, mode: DnsMode) {
        self.shared
            .mode
            .store(mode.index() as u8, Ordering::Relaxed);
    }

    pub fn mode(&self) -> DnsMode {
        DnsMode::from_index(self.shared.mode.load(Ordering::Relaxed))
    }

    /// Queries seen, by the mode they met: (forward, drop, garbage,
    /// nxdomain). Datagrams too short to be a query are not counted.
    pub fn counts(&self) -> [u64; 4] {
        let c = &self.shared.counts;
        [0, 1, 2, 3].map(|i| c[i].load(Ordering::Relaxed))
    }
}

impl Drop for DnsFront {
    /// Stops and joins the serving thread. Forwarding threads still waiting
    /// on upstream are left to end by their own timeout (2 s at most);
    /// their late answers go to a querier that has stopped listening.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(sock: &UdpSocket, upstream: SocketAddr, shared: &Shared) {
    // The largest UDP payload, so no query is cut short.
    let mut buf = vec![0u8; 65_535];
    while !shared.stop.load(Ordering::Relaxed) {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            // Timeouts (to look at `stop`), and ICMP errors a previous
            // reply provoked (a querier gone): neither ends the front.
            Err(_) => continue,
        };
        let query = &buf[..n];
        if n < HEADER {
            continue;
        }
        let mode = DnsMode::from_index(shared.mode.load(Ordering::Relaxed));
        let seen = shared.counts[mode.index()].fetch_add(1, Ordering::Relaxed);
        let reply = match mode {
            DnsMode::Drop => None,
            DnsMode::Garbage => Some(garbage(query, seen)),
            DnsMode::NxDomain => Some(nxdomain(query)),
            DnsMode::Forward => {
                forward(sock, upstream, query.to_vec(), peer);
                None
            }
        };
        if let Some(r) = reply {
            // A querier that went away is no concern of the front's.
            let _ = sock.send_to(&r, peer);
        }
    }
}

/// Relays one query on a thread of its own, so a slow or silent upstream
/// holds up only this query.
fn forward(sock: &UdpSocket, upstream: SocketAddr, query: Vec<u8>, peer: SocketAddr) {
    let Ok(reply_sock) = sock.try_clone() else {
        return;
    };
    let _ = thread::Builder::new()
        .name("chaos-dns-fwd".into())
        .spawn(move || {
            if let Ok(answer) = ask(upstream, &query) {
                let _ = reply_sock.send_to(&answer, peer);
            }
        });
}

/// Sends `query` to `upstream` from a fresh ephemeral socket (so answers
/// cannot cross between queries) and returns its answer.
fn ask(upstream: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let s = UdpSocket::bind(local)?;
    // Connected: datagrams from anyone but upstream are not received.
    s.connect(upstream)?;
    s.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    s.send(query)?;
    let mut buf = vec![0u8; 65_535];
    let n = s.recv(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// A reply that no resolver should accept, in three shapes taken in turn
/// (`seen` is the count of garbage replies before this one), since each
/// trips a different check of a resolver's parser.
fn garbage(query: &[u8], seen: u64) -> Vec<u8> {
    match seen % 3 {
        0 => {
            // Random bytes under the query's ID, so the resolver takes them
            // as its answer and must parse them. At least the ID itself.
            let mut rng = XorShift::new(fnv1a(query) ^ seen);
            let len = 2 + (rng.next() % 510) as usize;
            let mut r: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            r[..2].copy_from_slice(&query[..2]);
            if let Some(flags) = r.get_mut(2) {
                // QR set: a response, else it is dropped before parsing.
                *flags |= 0x80;
            }
            r
        }
        1 => {
            // The query itself turned into a response that claims five
            // answers it does not hold.
            let mut r = query.to_vec();
            r[2] |= 0x80;
            r[6..8].copy_from_slice(&5u16.to_be_bytes());
            r
        }
        _ => {
            // A bare header: SERVFAIL, no sections.
            let mut r = vec![0u8; HEADER];
            r[..2].copy_from_slice(&query[..2]);
            r[2] = 0x80 | (query[2] & 0x79);
            r[3] = 0x80 | 2;
            r
        }
    }
}

/// NXDOMAIN for `query`: its ID, opcode and RD, QR and RA set, RCODE 3,
/// its first question copied (none if it cannot be delimited), no records.
fn nxdomain(query: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8; HEADER];
    r[..2].copy_from_slice(&query[..2]);
    // Opcode and RD from the query (RFC 1035 §4.1.1).
    r[2] = 0x80 | (query[2] & 0x79);
    r[3] = 0x80 | 3;
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    if let Some(end) = first_question_end(query).filter(|_| qdcount > 0) {
        r[5] = 1;
        r.extend_from_slice(&query[HEADER..end]);
    }
    r
}

/// Where the first question of a message ends: its name (uncompressed
/// labels, as in queries), then type and class. None if malformed.
fn first_question_end(msg: &[u8]) -> Option<usize> {
    let mut i = HEADER;
    loop {
        let len = usize::from(*msg.get(i)?);
        if len == 0 {
            i += 1;
            break;
        }
        // A compression pointer (or reserved label type) has no place in
        // a query's question.
        if len & 0xC0 != 0 {
            return None;
        }
        i += 1 + len;
    }
    let end = i + 4;
    (end <= msg.len()).then_some(end)
}

/// FNV-1a of `b`: a seed that differs between queries.
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Marsaglia's xorshift64: enough randomness for garbage, no crate.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // Zero is xorshift's fixed point.
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that answers every datagram with 40 bytes: the query's
    /// ID, then 0xAA.
    fn fake_upstream() -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, peer)) = s.recv_from(&mut buf) {
                if n >= 2 {
                    let mut r = [0xAAu8; 40];
                    r[..2].copy_from_slice(&buf[..2]);
                    let _ = s.send_to(&r, peer);
                }
            }
        });
        addr
    }

    /// A query for `example.test` A, with this ID and RD set.
    fn query(id: u16) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend_from_slice(b"\x07example\x04test\x00");
        q.extend_from_slice(&[0, 1, 0, 1]);
        q
    }

    fn client() -> UdpSocket {
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        c
    }

    /// Sends `q` to the front and returns its reply, if one came.
    fn exchange(c: &UdpSocket, front: &DnsFront, q: &[u8]) -> Option<Vec<u8>> {
        c.send_to(q, front.addr()).unwrap();
        let mut buf = [0u8; 2048];
        c.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
    }

    #[test]
    fn forward_relays_upstreams_answer() {
        let front = DnsFront::start(fake_upstream()).unwrap();
        assert_eq!(front.mode(), DnsMode::Forward);
        let r = exchange(&client(), &front, &query(0x1234)).unwrap();
        assert_eq!(r.len(), 40);
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert!(r[2..].iter().all(|&b| b == 0xAA));
        assert_eq!(front.counts(), [1, 0, 0, 0]);
    }

    #[test]
    fn drop_never_answers() {
        let front = DnsFront::start(fake_upstream()).unwrap();
        front.set(DnsMode::Drop);
        assert_eq!(front.mode(), DnsMode::Drop);
        assert_eq!(exchange(&client(), &front, &query(7)), None);
        assert_eq!(front.counts(), [0, 1, 0, 0]);
    }

    #[test]
    fn garbage_takes_three_shapes_in_turn() {
        let front = DnsFront::start(fake_upstream()).unwrap();
        front.set(DnsMode::Garbage);
        let c = client();
        let q = query(0xBEEF);

        let a = exchange(&c, &front, &q).unwrap();
        assert!((2..512).contains(&a.len()), "{}", a.len());
        assert_eq!(&a[..2], &[0xBE, 0xEF]);

        let b = exchange(&c, &front, &q).unwrap();
        assert_eq!(b.len(), q.len());
        assert_eq!(&b[..2], &[0xBE, 0xEF]);
        assert_ne!(b[2] & 0x80, 0, "QR");
        assert_eq!(&b[6..8], &[0, 5], "ANCOUNT 5");
        assert_eq!(&b[HEADER..], &q[HEADER..], "no answers follow");

        let s = exchange(&c, &front, &q).unwrap();
        assert_eq!(s.len(), HEADER);
        assert_eq!(&s[..2], &[0xBE, 0xEF]);
        assert_eq!(s[3] & 0x0F, 2, "SERVFAIL");

        assert_eq!(front.counts(), [0, 0, 3, 0]);
    }

    #[test]
    fn nxdomain_copies_the_question() {
        let front = DnsFront::start(fake_upstream()).unwrap();
        front.set(DnsMode::NxDomain);
        let q = query(0x0102);
        let r = exchange(&client(), &front, &q).unwrap();
        assert_eq!(&r[..2], &[0x01, 0x02]);
        assert_eq!(r[2], 0x81, "QR, opcode 0, RD");
        assert_eq!(r[3], 0x83, "RA, NXDOMAIN");
        assert_eq!(&r[4..12], &[0, 1, 0, 0, 0, 0, 0, 0], "one question only");
        assert_eq!(&r[HEADER..], &q[HEADER..]);
        assert_eq!(front.counts(), [0, 0, 0, 1]);
    }

    #[test]
    fn modes_switch_and_short_datagrams_are_ignored() {
        let front = DnsFront::start(fake_upstream()).unwrap();
        let c = client();
        assert_eq!(exchange(&c, &front, b"short"), None);
        front.set(DnsMode::NxDomain);
        assert_eq!(exchange(&c, &front, &query(1)).unwrap()[3] & 0x0F, 3);
        front.set(DnsMode::Forward);
        assert_eq!(exchange(&c, &front, &query(2)).unwrap().len(), 40);
        assert_eq!(front.counts(), [1, 0, 0, 1]);
    }

    #[test]
    fn a_malformed_question_gets_a_bare_nxdomain() {
        let mut q = query(3);
        q.truncate(HEADER + 4);
        let r = nxdomain(&q);
        assert_eq!(r.len(), HEADER);
        assert_eq!(&r[4..6], &[0, 0]);
    }
}
