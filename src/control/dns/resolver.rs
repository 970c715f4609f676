//! Asking nameservers: each tried in order with a timeout, over UDP from a
//! fresh connected socket (so only the asked server's datagrams arrive, on a
//! random port), falling back to TCP when an answer is truncated. Answers
//! for another id or question are dropped and the wait goes on.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use super::wire::{self, Answer, DnsError, Qtype};

/// What to look up for one backend entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A/AAAA of `name`, every address with `port`.
    Addr {
        /// The name.
        name: String,
        /// The port.
        port: u16,
    },
    /// SRV at `name`: targets and ports from DNS.
    Srv {
        /// The name.
        name: String,
    },
}

impl Target {
    /// The name looked up.
    pub fn name(&self) -> &str {
        match self {
            Target::Addr { name, .. } | Target::Srv { name } => name,
        }
    }
}

/// Backends found: address and weight. Empty when the name does not exist
/// or has no records (CNS removed every instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The backends.
    pub backends: Vec<(SocketAddr, u16)>,
    /// Seconds until the answer should be refreshed.
    pub ttl: u32,
    /// Why there are none, when there are none.
    pub empty: Option<Emptiness>,
}

/// Why an answer holds no backends: what an operator has to fix differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emptiness {
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// The name exists without records of the asked type (NODATA).
    NoData,
    /// No SRV records at the name, but it has addresses: the portmap
    /// entry lacks its backend port.
    NoSrvButAddresses(usize),
}

impl std::fmt::Display for Emptiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Emptiness::NxDomain => f.write_str("NXDOMAIN: the name does not exist"),
            Emptiness::NoData => {
                f.write_str("NODATA: the name exists but has no records of this type")
            }
            Emptiness::NoSrvButAddresses(n) => write!(
                f,
                "no SRV records; A records exist ({n} addresses): add a port to the portmap entry"
            ),
        }
    }
}

/// TTL used for empty answers, which carry none of their own.
const EMPTY_TTL: u32 = 5;

/// A stub resolver.
#[derive(Debug, Clone)]
pub struct Resolver {
    servers: Vec<SocketAddr>,
    timeout: Duration,
}

/// The `nameserver` lines of a resolv.conf, port 53.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next())?
        })
        .filter_map(|a| a.split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

fn random_id() -> u16 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() as u16
}

impl Resolver {
    /// Asks `servers`, in order, `timeout` each.
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration) -> Resolver {
        Resolver { servers, timeout }
    }

    /// The nameservers of a resolv.conf file.
    pub fn from_resolv_conf(path: &Path, timeout: Duration) -> io::Result<Resolver> {
        let servers = parse_resolv_conf(&std::fs::read_to_string(path)?);
        if servers.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} names no nameserver", path.display()),
            ));
        }
        Ok(Resolver::new(servers, timeout))
    }

    /// The servers asked.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// One question, every server in turn until one answers.
    pub fn ask(&self, name: &str, qtype: Qtype) -> Result<Answer, DnsError> {
        let mut last = DnsError::Timeout;
        for &server in &self.servers {
            match self.ask_one(server, name, qtype) {
                Ok(a) => return Ok(a),
                Err(e @ DnsError::BadName(_)) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn ask_one(&self, server: SocketAddr, name: &str, qtype: Qtype) -> Result<Answer, DnsError> {
        let id = random_id();
        let q = wire::query(id, name, qtype)?;
        let io = |e: io::Error| DnsError::Io(format!("{server}: {e}"));
        let local: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let sock = UdpSocket::bind(local).map_err(io)?;
        sock.connect(server).map_err(io)?;
        sock.send(&q).map_err(io)?;
        let deadline = Instant::now() + self.timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DnsError::Timeout);
            }
            sock.set_read_timeout(Some(left)).map_err(io)?;
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(DnsError::Timeout)
                }
                Err(e) => return Err(io(e)),
            };
            match wire::parse(&buf[..n], id, name, qtype) {
                Ok(a) if a.truncated => return self.ask_tcp(server, name, qtype),
                Ok(a) => return Ok(a),
                // Late or forged: not ours, keep waiting.
                Err(DnsError::WrongId | DnsError::WrongQuestion) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn ask_tcp(&self, server: SocketAddr, name: &str, qtype: Qtype) -> Result<Answer, DnsError> {
        let id = random_id();
        let q = wire::query(id, name, qtype)?;
        let io = |e: io::Error| DnsError::Io(format!("{server} (tcp): {e}"));
        let mut s = TcpStream::connect_timeout(&server, self.timeout).map_err(io)?;
        s.set_read_timeout(Some(self.timeout)).map_err(io)?;
        s.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        s.write_all(&framed).map_err(io)?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).map_err(io)?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf).map_err(io)?;
        wire::parse(&buf, id, name, qtype)
    }

    /// Finds the backends of `target`.
    pub fn lookup(&self, target: &Target) -> Result<Resolved, DnsError> {
        match target {
            Target::Addr { name, port } => {
                let (ips, ttl, nxdomain) = self.addresses(name)?;
                let empty = ips.is_empty().then_some(if nxdomain {
                    Emptiness::NxDomain
                } else {
                    Emptiness::NoData
                });
                Ok(Resolved {
                    backends: ips
                        .into_iter()
                        .map(|ip| (SocketAddr::new(ip, *port), 1))
                        .collect(),
                    ttl,
                    empty,
                })
            }
            Target::Srv { name } => {
                let a = self.ask(name, Qtype::Srv)?;
                if a.nxdomain || a.srv.is_empty() {
                    let empty = if a.nxdomain {
                        Emptiness::NxDomain
                    } else {
                        // Worth one more question: the usual mistake is a
                        // name with addresses and no port in the portmap.
                        match self.addresses(name) {
                            Ok((ips, _, _)) if !ips.is_empty() => {
                                Emptiness::NoSrvButAddresses(ips.len())
                            }
                            _ => Emptiness::NoData,
                        }
                    };
                    return Ok(Resolved {
                        backends: Vec::new(),
                        ttl: EMPTY_TTL,
                        empty: Some(empty),
                    });
                }
                let best = a.srv.iter().map(|s| s.priority).min().unwrap_or(0);
                let mut ttl = a.ttl.unwrap_or(EMPTY_TTL);
                let mut backends = Vec::new();
                for s in a.srv.iter().filter(|s| s.priority == best) {
                    let ips = match a.extra.get(&s.target) {
                        Some(ips) => ips.clone(),
                        None => {
                            let (ips, t, _) = self.addresses(&s.target)?;
                            ttl = ttl.min(t);
                            ips
                        }
                    };
                    // A weight of 0 still deserves some traffic (RFC 2782).
                    let w = s.weight.max(1);
                    backends.extend(ips.into_iter().map(|ip| (SocketAddr::new(ip, s.port), w)));
                }
                let empty = backends.is_empty().then_some(Emptiness::NoData);
                Ok(Resolved {
                    backends,
                    ttl,
                    empty,
                })
            }
        }
    }

    /// A and AAAA of `name`, their TTL, and whether the name does not
    /// exist; an AAAA failure is forgiven when A answered.
    fn addresses(&self, name: &str) -> Result<(Vec<IpAddr>, u32, bool), DnsError> {
        let a = self.ask(name, Qtype::A)?;
        let mut ips = a.addrs.clone();
        let mut ttl = a.ttl;
        match self.ask(name, Qtype::Aaaa) {
            Ok(v6) => {
                ips.extend(v6.addrs);
                ttl = match (ttl, v6.ttl) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                };
            }
            Err(e) if ips.is_empty() && !a.nxdomain => return Err(e),
            Err(_) => {}
        }
        Ok((ips, ttl.unwrap_or(EMPTY_TTL), a.nxdomain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let s = parse_resolv_conf("# comment\nsearch example.com\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver bogus\noptions ndots:2\n");
        assert_eq!(
            s,
            vec![
                "10.0.0.1:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn a_silent_server_times_out_and_the_next_is_asked() {
        // A socket that never answers, then one with nothing listening.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let r = Resolver::new(
            vec![silent.local_addr().unwrap()],
            Duration::from_millis(200),
        );
        let start = Instant::now();
        assert_eq!(r.ask("web.test", Qtype::A), Err(DnsError::Timeout));
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
