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

criterion_group!(benches, bench_portmap, bench_proxy_v2, bench_engine);
criterion_main!(benches);
