//! DNS messages without I/O: building a query and checking an answer, on
//! hickory-proto's codec. An answer is accepted only if it carries our id,
//! is a response to our question, and parses; CNAME chains are followed
//! inside the answer.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

/// What was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qtype {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
    /// Service records.
    Srv,
}

impl Qtype {
    fn record_type(self) -> RecordType {
        match self {
            Qtype::A => RecordType::A,
            Qtype::Aaaa => RecordType::AAAA,
            Qtype::Srv => RecordType::SRV,
        }
    }
}

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// Lower is preferred.
    pub priority: u16,
    /// Share among equal priorities.
    pub weight: u16,
    /// The backend's port.
    pub port: u16,
    /// The host to resolve, lower-case, no trailing dot.
    pub target: String,
}

/// A checked answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// The name does not exist (NXDOMAIN).
    pub nxdomain: bool,
    /// The server truncated the answer: ask again over TCP.
    pub truncated: bool,
    /// Addresses of the asked name (after CNAMEs).
    pub addrs: Vec<IpAddr>,
    /// SRV records of the asked name (after CNAMEs).
    pub srv: Vec<Srv>,
    /// Addresses given for other names (the additional section), by name.
    pub extra: HashMap<String, Vec<IpAddr>>,
    /// Smallest TTL among the records used, in seconds.
    pub ttl: Option<u32>,
}

/// Why an answer was not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// The name cannot be put in a query.
    BadName(String),
    /// The bytes are not a DNS message.
    Garbage(String),
    /// Not a response, or another id (a late or forged answer).
    WrongId,
    /// A response to another question.
    WrongQuestion,
    /// SERVFAIL, REFUSED and other failures.
    Rcode(String),
    /// No answer in time from any server.
    Timeout,
    /// The socket failed.
    Io(String),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::BadName(n) => write!(f, "{n:?} is not a valid DNS name"),
            DnsError::Garbage(e) => write!(f, "undecodable answer: {e}"),
            DnsError::WrongId => f.write_str("answer with the wrong id"),
            DnsError::WrongQuestion => f.write_str("answer to another question"),
            DnsError::Rcode(c) => write!(f, "server answered {c}"),
            DnsError::Timeout => f.write_str("no answer in time"),
            DnsError::Io(e) => write!(f, "{e}"),
        }
    }
}

fn fqdn(name: &str) -> Result<Name, DnsError> {
    let n = if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    };
    Name::from_ascii(&n).map_err(|_| DnsError::BadName(name.to_owned()))
}

fn plain(name: &Name) -> String {
    let s = name.to_ascii().to_ascii_lowercase();
    s.strip_suffix('.').unwrap_or(&s).to_owned()
}

/// A recursive query for `name`.
pub fn query(id: u16, name: &str, qtype: Qtype) -> Result<Vec<u8>, DnsError> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(fqdn(name)?, qtype.record_type()));
    m.to_vec().map_err(|e| DnsError::Garbage(e.to_string()))
}

/// Checks and reads an answer to `query(id, name, qtype)`.
pub fn parse(buf: &[u8], id: u16, name: &str, qtype: Qtype) -> Result<Answer, DnsError> {
    let m = Message::from_vec(buf).map_err(|e| DnsError::Garbage(e.to_string()))?;
    if m.metadata.id != id || m.metadata.message_type != MessageType::Response {
        return Err(DnsError::WrongId);
    }
    let want = fqdn(name)?;
    match m.queries.first() {
        Some(q) if q.name == want && q.query_type == qtype.record_type() => {}
        _ => return Err(DnsError::WrongQuestion),
    }
    let mut a = Answer {
        truncated: m.metadata.truncation,
        ..Answer::default()
    };
    match m.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => {
            a.nxdomain = true;
            return Ok(a);
        }
        other => return Err(DnsError::Rcode(format!("{other:?}"))),
    }
    // Follow CNAMEs: the owner names that stand for the asked name.
    let mut names = vec![plain(&want)];
    for _ in 0..8 {
        let before = names.len();
        for r in &m.answers {
            if let RData::CNAME(c) = &r.data {
                let owner = plain(&r.name);
                let target = plain(&c.0);
                if names.contains(&owner) && !names.contains(&target) {
                    names.push(target);
                }
            }
        }
        if names.len() == before {
            break;
        }
    }
    let mut ttl: Option<u32> = None;
    for r in &m.answers {
        let owner = plain(&r.name);
        if !names.contains(&owner) {
            continue;
        }
        let used = match (&r.data, qtype) {
            (RData::A(v4), Qtype::A) => {
                a.addrs.push(IpAddr::V4(v4.0));
                true
            }
            (RData::AAAA(v6), Qtype::Aaaa) => {
                a.addrs.push(IpAddr::V6(v6.0));
                true
            }
            (RData::SRV(s), Qtype::Srv) => {
                a.srv.push(Srv {
                    priority: s.priority,
                    weight: s.weight,
                    port: s.port,
                    target: plain(&s.target),
                });
                true
            }
            (RData::CNAME(_), _) => true,
            _ => false,
        };
        if used {
            ttl = Some(ttl.map_or(r.ttl, |t| t.min(r.ttl)));
        }
    }
    for r in &m.additionals {
        let ip = match &r.data {
            RData::A(v4) => IpAddr::V4(v4.0),
            RData::AAAA(v6) => IpAddr::V6(v6.0),
            _ => continue,
        };
        a.extra.entry(plain(&r.name)).or_default().push(ip);
    }
    a.ttl = ttl;
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME, SRV};
    use hickory_proto::rr::Record;

    fn answer(
        id: u16,
        name: &str,
        qt: RecordType,
        records: Vec<Record>,
        extra: Vec<Record>,
    ) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(fqdn(name).unwrap(), qt));
        m.answers = records;
        m.additionals = extra;
        m.to_vec().unwrap()
    }

    fn a(name: &str, ip: [u8; 4], ttl: u32) -> Record {
        Record::from_rdata(fqdn(name).unwrap(), ttl, RData::A(A(ip.into())))
    }

    #[test]
    fn query_round_trips() {
        let q = query(7, "web.svc.x.dc.cns.test", Qtype::Srv).unwrap();
        let m = Message::from_vec(&q).unwrap();
        assert_eq!(m.metadata.id, 7);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries[0].query_type, RecordType::SRV);
    }

    #[test]
    fn addresses_with_the_smallest_ttl() {
        let buf = answer(
            1,
            "web.test",
            RecordType::A,
            vec![
                a("web.test", [10, 0, 0, 1], 30),
                a("web.test", [10, 0, 0, 2], 5),
            ],
            vec![],
        );
        let ans = parse(&buf, 1, "web.test", Qtype::A).unwrap();
        assert_eq!(ans.addrs.len(), 2);
        assert_eq!(ans.ttl, Some(5));
    }

    #[test]
    fn cnames_are_followed_and_strangers_ignored() {
        let cname = Record::from_rdata(
            fqdn("www.test").unwrap(),
            60,
            RData::CNAME(CNAME(fqdn("web.test").unwrap())),
        );
        let buf = answer(
            2,
            "www.test",
            RecordType::A,
            vec![
                cname,
                a("web.test", [10, 0, 0, 3], 20),
                a("evil.test", [6, 6, 6, 6], 20),
            ],
            vec![],
        );
        let ans = parse(&buf, 2, "www.test", Qtype::A).unwrap();
        assert_eq!(ans.addrs, vec![IpAddr::from([10, 0, 0, 3])]);
    }

    #[test]
    fn srv_with_additional_addresses() {
        let srv = Record::from_rdata(
            fqdn("api.test").unwrap(),
            30,
            RData::SRV(SRV::new(0, 10, 8080, fqdn("i1.inst.test").unwrap())),
        );
        let buf = answer(
            3,
            "api.test",
            RecordType::SRV,
            vec![srv],
            vec![a("i1.inst.test", [10, 0, 0, 7], 30)],
        );
        let ans = parse(&buf, 3, "api.test", Qtype::Srv).unwrap();
        assert_eq!(ans.srv[0].port, 8080);
        assert_eq!(ans.srv[0].target, "i1.inst.test");
        assert_eq!(ans.extra["i1.inst.test"], vec![IpAddr::from([10, 0, 0, 7])]);
    }

    #[test]
    fn wrong_id_question_rcode_and_garbage() {
        let buf = answer(
            4,
            "web.test",
            RecordType::A,
            vec![a("web.test", [1, 2, 3, 4], 1)],
            vec![],
        );
        assert_eq!(parse(&buf, 5, "web.test", Qtype::A), Err(DnsError::WrongId));
        assert_eq!(
            parse(&buf, 4, "other.test", Qtype::A),
            Err(DnsError::WrongQuestion)
        );
        assert_eq!(
            parse(&buf, 4, "web.test", Qtype::Aaaa),
            Err(DnsError::WrongQuestion)
        );
        assert!(matches!(
            parse(b"\x00\x01garbage", 1, "web.test", Qtype::A),
            Err(DnsError::Garbage(_) | DnsError::WrongId)
        ));
        let mut m = Message::new(6, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(fqdn("web.test").unwrap(), RecordType::A));
        m.metadata.response_code = ResponseCode::ServFail;
        assert!(matches!(
            parse(&m.to_vec().unwrap(), 6, "web.test", Qtype::A),
            Err(DnsError::Rcode(_))
        ));
        m.metadata.response_code = ResponseCode::NXDomain;
        assert!(
            parse(&m.to_vec().unwrap(), 6, "web.test", Qtype::A)
                .unwrap()
                .nxdomain
        );
    }
}
