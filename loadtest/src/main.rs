//! `loadtest`: the harness that measures moirai side by side with HAProxy.
//!
//! Today it provides the fast backends (`loadtest backend`); the load
//! generator and the side-by-side comparison (`run`, `compare`, `idle`)
//! come with the loadtest issue and say so when called.

mod backend;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Measure moirai side by side with HAProxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What a backend does with each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A fixed HTTP/1.1 response of --body-size bytes, with keep-alive.
    Http,
    /// Sends back everything it reads.
    Echo,
    /// Reads and discards.
    Sink,
    /// Sends an endless stream.
    Source,
}

#[derive(Subcommand)]
enum Command {
    /// A fast backend on mio.
    Backend {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// What to do with connections.
        #[arg(long, value_enum)]
        kind: Kind,
        /// Body size of `http` responses.
        #[arg(long, default_value_t = 0)]
        body_size: usize,
        /// Print the PROXY v2 header each connection starts with.
        #[arg(long)]
        report_proxy: bool,
    },
    /// Load one target (not yet available).
    Run,
    /// Compare moirai, HAProxy and direct (not yet available).
    Compare,
    /// Hold idle connections and report memory (not yet available).
    Idle,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Backend {
            listen,
            kind,
            body_size,
            report_proxy,
        } => match backend::run(listen, kind, body_size, report_proxy) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadtest backend: {e}");
                ExitCode::from(1)
            }
        },
        Command::Run | Command::Compare | Command::Idle => {
            eprintln!("loadtest: this subcommand is not built yet; use wrk or iperf3 meanwhile (docs/BENCHMARKS.md)");
            ExitCode::from(2)
        }
    }
}
