//! The access line of a connection or request, begun in one place: what
//! the service and the backend say, every measure empty. Each session
//! fills in what it knows (`Access { status, ..access::line(..) }`).

use std::net::SocketAddr;
use std::time::Duration;

use crate::proto::syslog::{Access, Termination};
use crate::snapshot::{Backend, ServiceSnapshot};

/// The line of `client` on `service`, served by `backend` if one was
/// chosen: `http` lines say HTTP/1.1 until the request says otherwise, `tcp`
/// lines carry no version.
pub fn line(
    service: &ServiceSnapshot,
    client: SocketAddr,
    backend: Option<&Backend>,
) -> Access<'static> {
    let http = service.spec.kind.is_http();
    Access {
        kind: if http { "http" } else { "tcp" },
        client,
        service: service.port(),
        frontend: service.index,
        tls: service.spec.kind.is_tls(),
        server: backend.map_or(0, Backend::slot),
        version: if http { "HTTP/1.1" } else { "" },
        backend: backend.map(Backend::addr),
        status: None,
        request: None,
        bytes: (0, 0),
        t_request: None,
        t_connect: None,
        t_response: None,
        t_total: Duration::ZERO,
        term: Termination::NORMAL,
    }
}
