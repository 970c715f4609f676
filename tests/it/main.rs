//! Integration tests: one binary for every capability, so the suite links
//! once. Each module is one capability; shared helpers are in `util`.

mod acme;
mod check_cli;
mod dns;
mod faults;
mod guide;
mod h2;
mod ha;
mod health;
mod http;
mod layout;
mod mdata;
mod metrics;
mod operator;
mod owncerts;
mod private;
mod props;
mod proxy_v2;
mod reconfig;
mod routing;
mod smf;
mod smuggling;
mod sticky;
mod syslog;
mod tcp;
mod tls;
mod util;
