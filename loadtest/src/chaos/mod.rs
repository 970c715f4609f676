pub mod haproxy;
pub mod spec;
