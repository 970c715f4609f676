#![allow(missing_docs)] // criterion_main! generates an undocumented main.
//! Criterion benchmarks of the hot paths: portmap parsing (every metadata
//! change), PROXY v2 encoding (every tcp-proxy-v2 connection), the buffer
//! pool and balancing (every connection). Run with `cargo bench`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use moirai::config::portmap;
use moirai::engine::balance::{self, RoundRobin};
use moirai::engine::buffer::BufferPool;
use moirai::proto::http1::{head_slices, request, MAX_SLICES};
use moirai::proto::proxy_v2;
use moirai::snapshot::Backend;

fn bench_portmap(c: &mut Criterion) {
    let one =
        "https-http://443:web.svc.acct.dc.cns.provider.zone:8080{check:/healthz,rise:3,fall:2}";
    let many: String = (0..64)
        .map(|i| {
            format!(
                "http://{}:web{i}.svc.acct.dc.cns.provider.zone:8080{{check:/healthz}}",
                1000 + i
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    c.bench_function("portmap/parse_one", |b| {
        b.iter(|| portmap::parse(black_box(one)))
    });
    c.bench_function("portmap/parse_64", |b| {
        b.iter(|| portmap::parse(black_box(&many)))
    });
}

fn bench_proxy_v2(c: &mut Criterion) {
    let v4: (SocketAddr, SocketAddr) = (
        "192.0.2.1:56324".parse().unwrap(),
        "198.51.100.7:443".parse().unwrap(),
    );
    let v6: (SocketAddr, SocketAddr) = (
        "[2001:db8::1]:1000".parse().unwrap(),
        "[2001:db8::2]:80".parse().unwrap(),
    );
    c.bench_function("proxy_v2/encode_v4", |b| {
        b.iter(|| proxy_v2::encode(black_box(v4.0), black_box(v4.1)))
    });
    c.bench_function("proxy_v2/encode_v6", |b| {
        b.iter(|| proxy_v2::encode(black_box(v6.0), black_box(v6.1)))
    });
}

fn bench_engine(c: &mut Criterion) {
    let mut pool = BufferPool::new(64);
    c.bench_function("buffer_pool/take_give", |b| {
        b.iter(|| {
            let buf = pool.take();
            pool.give(black_box(buf));
        })
    });
    let backends: Vec<Arc<Backend>> = (1..=32u16)
        .map(|p| Arc::new(Backend::new(SocketAddr::from(([10, 0, 0, 1], p)))))
        .collect();
    let mut rr = RoundRobin::default();
    c.bench_function("balance/leastconn_32", |b| {
        b.iter(|| balance::pick(black_box(&backends), &mut rr, None).map(|b| b.addr()))
    });
}

fn bench_http(c: &mut Criterion) {
    let head = b"GET /api/v1/items?page=2 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\nCookie: session=abc123; CLOUD-TRITONCOMPUTE-RS=0123456789abcdef\r\n\r\n";
    let fwd: &[u8] =
        b"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 80\r\n";
    let mut drop = Vec::new();
    let mut rest = Vec::new();
    c.bench_function("http/parse_and_inject", |b| {
        b.iter(|| {
            let h = request::parse(black_box(head), &mut drop, &mut rest)
                .unwrap()
                .unwrap();
            let injects: [&[u8]; 3] = [&rest, fwd, b"Connection: keep-alive\r\n"];
            let mut out = [std::io::IoSlice::new(&[]); MAX_SLICES];
            let n = head_slices(&head[..h.end_of_fields], &drop, &injects, 0, &mut out);
            black_box(n)
        })
    });
}

criterion_group!(
    benches,
    bench_portmap,
    bench_proxy_v2,
    bench_engine,
    bench_http
);
criterion_main!(benches);
