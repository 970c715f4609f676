//! What the soak is asked for and what it builds: its services and their
//! backends, shared by the moirai and HAProxy sides so both balance
//! exactly the same thing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What to soak, for how long.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    pub duration: Duration,
    pub seed: u64,
    /// `moirai`, `haproxy` or both, one after the other, same seed.
    pub systems: Vec<&'static str>,
    pub moirai: PathBuf,
    pub haproxy: PathBuf,
    /// Where the run's files go (kept); a fresh temporary one without it.
    pub dir: Option<PathBuf>,
    /// Load multiplier over the default rates.
    pub scale: f64,
}

/// A service type, as the portmap names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    Http,
    HttpsHttp,
    Https,
    Tcp,
    TcpProxyV2,
}

impl ServiceKind {
    /// Whether the balancer speaks HTTP on it (and so can health-check
    /// with `GET` and answer 503).
    pub fn is_http(self) -> bool {
        matches!(
            self,
            ServiceKind::Http | ServiceKind::HttpsHttp | ServiceKind::Https
        )
    }

    /// Whether clients speak TLS to the balancer.
    pub fn client_tls(self) -> bool {
        matches!(self, ServiceKind::HttpsHttp | ServiceKind::Https)
    }
}

/// Where a service's backends come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Fixed addresses, one portmap entry each.
    Ip(Vec<SocketAddr>),
    /// A CNS name's A records, all on one port.
    Cns { name: String, port: u16 },
}

/// One service of the soak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// A short label for reports (`web`, `api`, ...).
    pub label: &'static str,
    pub kind: ServiceKind,
    /// The balancer's listening port (on 127.0.0.1).
    pub listen: u16,
    pub target: Target,
    /// HTTP health-check path (`check:` in the portmap); TCP connect
    /// checks without it.
    pub check: Option<String>,
}
