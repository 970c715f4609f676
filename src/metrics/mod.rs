//! Metrics: what the workers count ([`stats`]), the names it is exported
//! under ([`names`]), the Prometheus rendering ([`export`]) and the scrape
//! endpoint on the control thread ([`server`]).

pub mod export;
pub mod haproxy;
pub mod names;
pub mod server;
pub mod stats;
pub mod view;
