//! Connection-bound logins: NTLM and Negotiate authenticate the backend
//! *connection*, so a connection that carried one belongs to its client
//! alone. Judged from both sides: a second client never gets the logged-in
//! answer, and the backend never sees that client's request on the
//! logged-in connection.

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::util::http::{read_request, Client};
use crate::util::{http_lb, local};

/// One request as the backend saw it: its connection, the client's tag
/// (`X-Client`) and the user logged in on that connection when it came.
#[derive(Debug, Clone)]
struct Seen {
    conn: usize,
    client: String,
    user: Option<String>,
}

/// A backend that logs connections in as IIS does: NTLM in three steps
/// (401 offering NTLM and Negotiate, type 1 → 401 with a challenge, type
/// 3 → logged in), or Negotiate (Kerberos) in one request sent without
/// being asked. A logged-in connection answers every later request as its
/// user, whatever it carries; one not logged in is closed after its
/// challenge.
fn login_backend() -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for (conn, s) in l.incoming().enumerate() {
            let Ok(mut s) = s else { break };
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut user: Option<String> = None;
                let mut challenged = false;
                while let Some(req) = read_request(&mut r) {
                    let auth = req.header("authorization").unwrap_or_default();
                    log.lock().unwrap().push(Seen {
                        conn,
                        client: req.header("x-client").unwrap_or_default(),
                        user: user.clone(),
                    });
                    let answer = if auth.starts_with("NTLM TlRMTVNTUAAB") {
                        challenged = true;
                        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM TlRMTVNTUAACAAAA\r\nContent-Length: 0\r\n\r\n".to_owned()
                    } else if auth.starts_with("NTLM TlRMTVNTUAAD") && challenged {
                        user = Some("alice".into());
                        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nalice".to_owned()
                    } else if auth.starts_with("Negotiate ") {
                        user = Some("alice".into());
                        "HTTP/1.1 200 OK\r\nWWW-Authenticate: Negotiate oRQwEqADCgEA\r\nContent-Length: 5\r\n\r\nalice".to_owned()
                    } else if let Some(u) = &user {
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{u}", u.len())
                    } else {
                        // Not logged in: the challenge, and the connection
                        // closes (as servers that keep no anonymous
                        // connections do), so the client's next request
                        // needs another backend connection: the pool's.
                        let _ = s.write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\nWWW-Authenticate: Negotiate\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        break;
                    };
                    if s.write_all(answer.as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, seen)
}

fn request(client: &str, extra: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: t\r\nX-Client: {client}\r\n{extra}\r\n").into_bytes()
}

/// Another client's keep-alive requests after a login ended: every one is
/// refused (401), none answered as the logged-in user, and the backend
/// never saw one of them on the logged-in connection.
fn nobody_else_is_alice(port: u16, seen: &Mutex<Vec<Seen>>, round: usize) {
    let tag = format!("B{round}");
    let mut b = Client::connect(local(port));
    for i in 0..4 {
        let r = b.exchange(&request(&tag, "")).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (401, &b""[..]),
            "round {round}, request {i} of another client"
        );
    }
    let seen = seen.lock().unwrap();
    let leaked: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.client == tag && s.user.is_some())
        .collect();
    assert!(leaked.is_empty(), "{leaked:#?}");
}

#[test]
fn an_ntlm_login_never_serves_another_client() {
    let (bport, seen) = login_backend();
    // One worker: one idle pool, where a leaked connection would wait.
    let (_m, port) = http_lb(bport, &["--workers", "1"]);
    for round in 0..3 {
        let tag = format!("A{round}");
        let mut a = Client::connect(local(port));
        let r = a.exchange(&request(&tag, "")).unwrap();
        assert_eq!(r.status, 401);
        let r = a
            .exchange(&request(&tag, "Authorization: NTLM TlRMTVNTUAABAAAA\r\n"))
            .unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some("NTLM TlRMTVNTUAACAAAA")
        );
        let r = a
            .exchange(&request(&tag, "Authorization: NTLM TlRMTVNTUAADAAAA\r\n"))
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"alice"[..]));
        // Logged in: the client's next requests ride the same connection,
        // the last one closing the client's side.
        let r = a.exchange(&request(&tag, "")).unwrap();
        assert_eq!(r.body, b"alice");
        let r = a.exchange(&request(&tag, "Connection: close\r\n")).unwrap();
        assert_eq!(r.body, b"alice");
        assert!(a.closed());
        nobody_else_is_alice(port, &seen, round);
    }
    // Every step of each login (after the first challenge, whose
    // connection closed) reached one backend connection.
    let seen = seen.lock().unwrap();
    for round in 0..3 {
        let tag = format!("A{round}");
        let conns: std::collections::BTreeSet<usize> = seen
            .iter()
            .filter(|s| s.client == tag)
            .skip(1)
            .map(|s| s.conn)
            .collect();
        assert_eq!(conns.len(), 1, "{tag}: {seen:#?}");
    }
}

/// Kerberos logs in with one request sent unasked: no 401 tells the
/// balancer, so moirai's own rule (the request's `Authorization:
/// Negotiate`) keeps the connection private.
#[test]
fn a_negotiate_login_sent_unasked_never_serves_another_client() {
    let (bport, seen) = login_backend();
    let (_m, port) = http_lb(bport, &["--workers", "1"]);
    for round in 0..3 {
        let tag = format!("A{round}");
        let mut a = Client::connect(local(port));
        let r = a.exchange(&request(&tag, "")).unwrap();
        assert_eq!(r.status, 401, "so that the next request is not the first");
        let r = a
            .exchange(&request(
                &tag,
                "Authorization: Negotiate YIIBhgYGKwYBBQUCoIIB\r\nConnection: close\r\n",
            ))
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"alice"[..]));
        assert!(a.closed());
        nobody_else_is_alice(port, &seen, round);
    }
}
