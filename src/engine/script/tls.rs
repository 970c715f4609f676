//! TLS over a scripted socket: what goes out in which write.

use super::*;

/// A TLS client talking to a server [`Conn`] over a scripted socket.
struct TlsPair {
    server: crate::engine::conn::Conn<Script>,
    wire: Script,
    client: rustls::ClientConnection,
    /// Where the client keeps the session tickets it gets.
    tickets: Arc<rustls::client::ClientSessionMemoryCache>,
    now: Instant,
}

impl TlsPair {
    fn new(version: &'static rustls::SupportedProtocolVersion) -> TlsPair {
        let h = Harness::new("https-http://443:backend.example:8080", false);
        let dir = std::env::temp_dir().join(format!(
            "moirai-script-tls-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let key = crate::tls::certs::self_signed(&dir, &["lb.example.test".to_owned()]).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let config = crate::tls::config::server(crate::tls::certs::CertStore::new(key)).unwrap();
        let provider = crate::tls::config::provider();
        let mut client_config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(
                crate::tls::danger::AcceptAnyServerCert::new(provider),
            ))
            .with_no_client_auth();
        let tickets = Arc::new(rustls::client::ClientSessionMemoryCache::new(8));
        client_config.resumption = rustls::client::Resumption::store(tickets.clone());
        let client = rustls::ClientConnection::new(
            Arc::new(client_config),
            "lb.example.test".try_into().unwrap(),
        )
        .unwrap();
        let wire = Script::connected();
        let now = h.now;
        let meter = crate::engine::meter::Meter::client(&h.service(), 0);
        let mut server = crate::engine::conn::Conn::new(wire.clone(), now, meter)
            .with_tls(rustls::ServerConnection::new(config).unwrap().into());
        server.note(Readiness::BOTH);
        TlsPair {
            server,
            wire,
            client,
            tickets,
            now,
        }
    }

    /// The client's pending records reach the server's socket.
    fn client_sends(&mut self) {
        let mut out = Vec::new();
        while self.client.wants_write() {
            self.client.write_tls(&mut out).unwrap();
        }
        self.wire.push(&out);
        self.server.note(Readiness::BOTH);
    }

    /// The server reads; what it wrote reaches the client. Returns the
    /// plaintext read.
    fn server_reads(&mut self) -> Vec<u8> {
        let mut buf = [0u8; 4096];
        let n = self.server.recv(&mut buf, self.now).moved().unwrap_or(0);
        self.deliver();
        buf[..n].to_vec()
    }

    /// What the server wrote reaches the client.
    fn deliver(&mut self) {
        let written = std::mem::take(&mut self.wire.0.borrow_mut().written);
        let mut rd = &written[..];
        while !rd.is_empty() {
            self.client.read_tls(&mut rd).unwrap();
            self.client.process_new_packets().unwrap();
        }
    }

    /// Whether the client holds a TLS 1.3 session ticket (taking one).
    fn took_ticket(&self) -> bool {
        use rustls::client::ClientSessionStore;
        let name = "lb.example.test".try_into().unwrap();
        self.tickets.take_tls13_ticket(&name).is_some()
    }

    fn calls(&self) -> (usize, usize) {
        let w = self.wire.0.borrow();
        (w.read_calls, w.write_calls)
    }
}

/// TLS 1.3: the session tickets queued once the client's Finished is read
/// go out in the same write as the response; each flight is read with
/// one read (a short read drained the socket).
#[test]
fn tls13_tickets_ride_with_the_response_and_a_flight_takes_one_read() {
    let mut t = TlsPair::new(&rustls::version::TLS13);
    t.client_sends(); // ClientHello
    assert!(t.server_reads().is_empty());
    assert_eq!(
        t.calls(),
        (1, 1),
        "one read, the server's flight in one write"
    );
    assert!(!t.client.is_handshaking());

    // The client's Finished and its request arrive together.
    t.client
        .writer()
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .unwrap();
    t.client_sends();
    assert_eq!(t.server_reads(), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(t.calls(), (2, 1), "the tickets wait");
    assert!(!t.took_ticket(), "no ticket yet");

    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let sent = t.server.send(&[io::IoSlice::new(response)], t.now);
    assert_eq!(sent.moved(), Some(response.len()));
    assert_eq!(t.calls(), (2, 2), "tickets and response in one write");
    t.deliver();
    let mut got = Vec::new();
    let _ = t.client.reader().read_to_end(&mut got);
    assert_eq!(got, response);
    assert!(t.took_ticket(), "the tickets came with the response");
    let state = t.client.process_new_packets().unwrap();
    assert!(
        !state.peer_has_closed(),
        "a keep-alive response, no close_notify"
    );
}

/// TLS 1.2: the server's last flight (after the client's Finished) is
/// part of the handshake and goes at once; the client waits for it.
#[test]
fn tls12_sends_its_finished_at_once() {
    let mut t = TlsPair::new(&rustls::version::TLS12);
    t.client_sends(); // ClientHello
    t.server_reads();
    assert!(t.client.is_handshaking());
    t.client_sends(); // key exchange, Finished
    t.server_reads();
    assert_eq!(t.calls().1, 2, "the server's Finished went out");
    assert!(!t.client.is_handshaking(), "the client's handshake is done");
}

/// The last response of a closing TLS connection carries the close_notify
/// in its write, made as the socket's final one (the FIN may ride on it);
/// ending the connection after it writes nothing more.
#[test]
fn tls_close_notify_rides_with_the_last_response() {
    let mut t = TlsPair::new(&rustls::version::TLS13);
    t.client_sends();
    t.server_reads();
    t.client
        .writer()
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .unwrap();
    t.client_sends();
    t.server_reads();
    let writes = t.calls().1;
    let response = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    let sent = t.server.send_last(&[io::IoSlice::new(response)], t.now);
    assert_eq!(sent.moved(), Some(response.len()));
    assert_eq!(t.server.end_after_final().ok(), Some(()));
    assert_eq!(t.calls().1, writes + 1, "one write for both");
    assert_eq!(t.wire.0.borrow().final_writes, 1, "the final one");
    let written = std::mem::take(&mut t.wire.0.borrow_mut().written);
    let mut rd = &written[..];
    let mut closed = false;
    while !rd.is_empty() {
        t.client.read_tls(&mut rd).unwrap();
        closed |= t.client.process_new_packets().unwrap().peer_has_closed();
    }
    assert!(closed, "the client saw the close_notify");
    let mut got = Vec::new();
    let _ = t.client.reader().read_to_end(&mut got);
    assert_eq!(got, response);
}
