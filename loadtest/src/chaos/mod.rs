pub mod backend;
pub mod dns;
