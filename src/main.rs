//! The `moirai` command: `run`, `check`, `--version`.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use moirai::config::Config;
use moirai::metadata::{self, file::FileSource, mdata::MdataClient, mdata_get::MdataGet, Source};
use moirai::sys::net::ListenMode;

#[derive(Parser)]
#[command(
    name = "moirai",
    version = moirai::VERSION,
    about = "A metadata-driven load balancer for Triton"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the balancer.
    Run(Box<RunArgs>),
    /// Print the services the metadata describes, and every error in it.
    Check(CheckArgs),
    /// Ask a running moirai what it is doing (services, backends, DNS).
    Status(StatusArgs),
    /// Take a backend out of service, drain it, or put it back; kept until
    /// enabled again, across restarts.
    Backend(BackendArgs),
    /// Change the running moirai's log level.
    LogLevel(LogLevelArgs),
    /// ACME: `moirai acme retry` orders the certificate now.
    Acme(AcmeArgs),
    /// Replace the running moirai by this program (default: the one it
    /// runs, e.g. after installing a new one there) without refusing a
    /// connection: the program is checked first (it must read the metadata
    /// and be able to take the listening sockets, or nothing changes), then
    /// the sockets are handed over, requests in flight finish first, the
    /// PID stays.
    Upgrade(UpgradeArgs),
}

#[derive(Args)]
struct UpgradeArgs {
    /// The program to run [default: the running one's path].
    binary: Option<PathBuf>,
    /// The running moirai's state directory.
    #[arg(long, value_name = "DIR", default_value = default_state_dir())]
    state_dir: PathBuf,
}

#[derive(Args)]
struct BackendArgs {
    /// disable (no traffic), drain (sticky clients only) or enable.
    #[arg(value_parser = ["disable", "drain", "enable"])]
    action: String,
    /// The service's listen port.
    port: u16,
    /// The backend's address and port, as `moirai status` lists it.
    address: std::net::SocketAddr,
    /// The running moirai's state directory.
    #[arg(long, value_name = "DIR", default_value = default_state_dir())]
    state_dir: PathBuf,
}

#[derive(Args)]
struct LogLevelArgs {
    /// error, warn, info, debug or trace.
    level: log::LevelFilter,
    /// The running moirai's state directory.
    #[arg(long, value_name = "DIR", default_value = default_state_dir())]
    state_dir: PathBuf,
}

#[derive(Args)]
struct AcmeArgs {
    /// What to do: retry.
    #[arg(value_parser = ["retry"])]
    action: String,
    /// The running moirai's state directory.
    #[arg(long, value_name = "DIR", default_value = default_state_dir())]
    state_dir: PathBuf,
}

#[derive(Args)]
struct StatusArgs {
    /// The running moirai's state directory.
    #[arg(long, value_name = "DIR", default_value = default_state_dir())]
    state_dir: PathBuf,
    /// Print the JSON document as it comes.
    #[arg(long)]
    json: bool,
    /// Print how many refreshes (SIGHUPs) have been answered, and nothing
    /// else (for scripts).
    #[arg(long, conflicts_with_all = ["json", "wait_reload_after"])]
    reloads: bool,
    /// Wait until more than N refreshes have been answered, then print the
    /// last one's outcome ("no change" or "generation G applied: ...");
    /// exit 1 if none comes within --timeout.
    #[arg(long, value_name = "N", conflicts_with = "json")]
    wait_reload_after: Option<u64>,
    /// How long --wait-reload-after waits.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
}

/// Where metadata comes from; without one, the zone's metadata socket (or
/// /usr/sbin/mdata-get) is used.
#[derive(Args)]
#[group(multiple = false)]
struct SourceArgs {
    /// A JSON object of metadata key to string value; re-read when it changes.
    #[arg(long, value_name = "PATH")]
    metadata_file: Option<PathBuf>,
    /// The SmartOS metadata socket (protocol V2).
    #[arg(long, value_name = "PATH")]
    mdata_socket: Option<PathBuf>,
    /// An mdata-get binary, run once per key.
    #[arg(long, value_name = "PATH")]
    mdata_get: Option<PathBuf>,
}

impl SourceArgs {
    fn open(&self) -> Result<Box<dyn Source>, String> {
        if let Some(p) = &self.metadata_file {
            return Ok(Box::new(FileSource::new(p)));
        }
        if let Some(p) = &self.mdata_socket {
            return Ok(Box::new(MdataClient::new(p)));
        }
        if let Some(p) = &self.mdata_get {
            return Ok(Box::new(MdataGet::new(p)));
        }
        metadata::default_source().ok_or_else(|| {
            format!(
                "no metadata source: none of {} or {} exists; give --metadata-file, --mdata-socket or --mdata-get",
                metadata::ZONE_SOCKETS.join(", "),
                metadata::MDATA_GET
            )
        })
    }
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// The --acme-challenge that `moirai run` is given, to say which
    /// challenge it will try first.
    #[arg(long, value_name = "TYPE", default_value = "auto")]
    acme_challenge: moirai::control::certs::acme::ChallengeChoice,
    /// The --listen-address list that `moirai run` is given.
    #[arg(long = "listen-address", value_name = "ADDR")]
    listen_addresses: Vec<std::net::IpAddr>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Look every service's backends up now and say, per service, how many
    /// addresses there are, or why none (NXDOMAIN, no SRV, no answer).
    #[arg(long)]
    resolve: bool,
    /// With --resolve: the --nameserver list that `moirai run` is given
    /// (repeatable); default: those of --resolv-conf.
    #[arg(long = "nameserver", value_name = "IP:PORT", requires = "resolve")]
    nameservers: Vec<std::net::SocketAddr>,
    /// With --resolve: where the default nameservers are listed.
    #[arg(long, value_name = "PATH", default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// With --resolve: the static names consulted before DNS, as `moirai
    /// run --hosts-file`.
    #[arg(long, value_name = "PATH", default_value = "/etc/hosts")]
    hosts_file: PathBuf,
}

/// How long `moirai check --resolve` waits for each nameserver, as `run`
/// does.
const CHECK_DNS_TIMEOUT: Duration = Duration::from_secs(1);

impl CheckArgs {
    /// The backends of every service, looked up now (`--resolve`).
    fn lookups(&self, config: &Config) -> Option<Vec<moirai::check::Lookup>> {
        use moirai::control::dns::resolver::Resolver;
        if !self.resolve {
            return None;
        }
        let resolver = if self.nameservers.is_empty() {
            Resolver::from_resolv_conf(&self.resolv_conf, CHECK_DNS_TIMEOUT)
                .map_err(|e| format!("no nameserver: {}: {e}", self.resolv_conf.display()))
        } else {
            Ok(Resolver::new(self.nameservers.clone(), CHECK_DNS_TIMEOUT))
        };
        let hosts = moirai::control::hosts::Hosts::load(&self.hosts_file);
        Some(moirai::check::resolve(config, &resolver, &hosts))
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Worker threads; 0 or absent: one per CPU.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Certificates, keys and the control socket live here.
    #[arg(long, value_name = "DIR", default_value = default_state_dir())]
    state_dir: PathBuf,
    /// How long open connections may finish after SIGTERM (`30`, `30s`, `500ms`).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    grace: Duration,
    /// How often the metadata is read (a --metadata-file is also watched).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    metadata_interval: Duration,
    /// How long an HTTP request head may take: from its first byte (then
    /// 408), and for a new connection from accept (then a silent close).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    request_header_timeout: Duration,
    /// Nameserver for backend discovery (repeatable); default: those of
    /// --resolv-conf.
    #[arg(long = "nameserver", value_name = "IP:PORT")]
    nameservers: Vec<std::net::SocketAddr>,
    /// Where the default nameservers are listed.
    #[arg(long, value_name = "PATH", default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// Longest time a DNS answer is used before asking again, whatever its TTL.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    max_ttl: Duration,
    /// Static names, consulted before DNS.
    #[arg(long, value_name = "PATH", default_value = "/etc/hosts")]
    hosts_file: PathBuf,
    /// CA bundle that `https` backends are verified against [default: the
    /// system's, /etc/ssl/certs/ca-certificates.crt or on SmartOS
    /// /opt/local/share/mozilla-rootcerts/cacert.pem].
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,
    /// ACME directory URL for certificate_name [default: Let's Encrypt].
    #[arg(long, value_name = "URL")]
    acme_directory: Option<String>,
    /// Use Let's Encrypt's staging directory.
    #[arg(long)]
    acme_staging: bool,
    /// An extra CA that the ACME server's own HTTPS is signed by (e.g.
    /// pebble's test CA).
    #[arg(long, value_name = "PATH")]
    acme_ca_file: Option<PathBuf>,
    /// How ACME challenges are answered: auto (tls-alpn-01 when a TLS
    /// service listens on 443, http-01 when an http service listens on 80,
    /// else dns-01; dns-01 after a failed validation), or always one of
    /// tls-alpn-01, http-01 (on the http listener) or dns-01 (TXT records
    /// published by CNS from metadata).
    #[arg(long, value_name = "TYPE", default_value = "auto")]
    acme_challenge: moirai::control::certs::acme::ChallengeChoice,
    /// Renew certificates this long before they expire [default: at
    /// two-thirds of their lifetime].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    acme_renew_before: Option<Duration>,
    /// With dns-01: how long CNS gets to publish the TXT record before the
    /// CA is told to look.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    acme_dns_propagation: Duration,
    /// Share one listening socket among workers even where SO_REUSEPORT
    /// exists (what illumos does; for testing that path).
    #[arg(long)]
    shared_listener: bool,
    /// Listen on this address only (IPv4 or IPv6; repeat for several),
    /// e.g. the public interface of a multi-homed balancer, or to run two
    /// instances on one host [default: every address].
    #[arg(long = "listen-address", value_name = "ADDR")]
    listen_addresses: Vec<std::net::IpAddr>,
    /// The local error log: per service and interval, the errors moirai
    /// answered or met (5xx it made, connect failures, timeouts, resets,
    /// 4xx for hostile requests); "none" turns it off. Rotate it with
    /// logadm (boot/setup.sh does).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/log/moirai/errors.log"
    )]
    error_log: String,
    /// The remote syslog format: rfc3164 (what Moirai's HAProxy sends:
    /// HAProxy's httplog/tcplog text, which the HAPROXYHTTP grok pattern
    /// reads) or rfc5424 (the same fields as structured data).
    #[arg(long, value_name = "FORMAT", default_value = "rfc3164")]
    syslog_format: moirai::proto::syslog::Format,
    /// Also write every access line (the syslog format) to this file, as
    /// the HAProxy image's /var/log/haproxy.log; rotate it with logadm
    /// (`logadm -w PATH -C 5 -c -s 100m`); "none" is off. Off unless
    /// asked; the SMF service asks for /var/log/moirai/access.log
    /// (config/access_log).
    #[arg(long, value_name = "PATH")]
    access_log: Option<String>,
    /// How often the error log gets its lines.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    error_log_interval: Duration,
    /// At start, how long the metadata may stay unreadable before moirai
    /// exits with status 96 (SMF_EXIT_ERR_CONFIG).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    startup_timeout: Duration,
    /// Where the metrics endpoint listens (repeatable) [default: as
    /// --listen-address].
    #[arg(long = "metrics-listen-address", value_name = "ADDR")]
    metrics_addresses: Vec<std::net::IpAddr>,
    /// error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: log::LevelFilter,
    /// An upgrade's check of this program, run by the moirai it replaces:
    /// parse the options, read the metadata, build the configuration and
    /// check the listening sockets handed over; exit 0 if it could take
    /// over, serving nothing.
    #[arg(long, hide = true)]
    preflight: bool,
}

const fn default_state_dir() -> &'static str {
    if cfg!(any(target_os = "illumos", target_os = "solaris")) {
        "/var/moirai"
    } else {
        "/var/lib/moirai"
    }
}

/// `N` (seconds), `Ns`, `Nms`, `Nm`, `Nh` or `Nd`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration such as 30, 30s, 500ms, 5m, 12h or 30d");
    let (digits, ms) = if let Some(d) = s.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = s.strip_suffix('s') {
        (d, 1000)
    } else if let Some(d) = s.strip_suffix('m') {
        (d, 60_000)
    } else if let Some(d) = s.strip_suffix('h') {
        (d, 3_600_000)
    } else if let Some(d) = s.strip_suffix('d') {
        (d, 86_400_000)
    } else {
        (s, 1000)
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(ms).map(Duration::from_millis).ok_or_else(bad)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors.
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Check(args) => check(args),
        Command::Run(args) => run(*args),
        Command::Status(args) => status(args),
        Command::Backend(a) => control(
            &a.state_dir,
            &format!("backend {} {} {}", a.action, a.port, a.address),
        ),
        Command::LogLevel(a) => control(&a.state_dir, &format!("log-level {}", a.level)),
        Command::Acme(a) => control(&a.state_dir, &format!("acme {}", a.action)),
        Command::Upgrade(a) => upgrade(a),
    }
}

/// `moirai upgrade`: the program is named to the daemon by its absolute
/// path (a relative one means this shell's directory, not the daemon's),
/// and the answer waits for the new program's pre-flight.
fn upgrade(a: UpgradeArgs) -> ExitCode {
    let line = match &a.binary {
        Some(b) => match std::fs::canonicalize(b) {
            Ok(p) => format!("upgrade {}", p.display()),
            Err(e) => return fail(&format!("{}: {e}", b.display())),
        },
        None => "upgrade".to_owned(),
    };
    match ask_within(&a.state_dir, &line, UPGRADE_ANSWER) {
        Ok(answer) => say(&answer),
        Err(e) => fail(&e),
    }
}

/// How long `moirai upgrade` waits for its answer: the pre-flight's 10 s
/// and some.
const UPGRADE_ANSWER: Duration = Duration::from_secs(20);

/// Sends one command line to the running moirai and returns its answer.
fn ask(state_dir: &std::path::Path, line: &str) -> Result<String, String> {
    ask_within(state_dir, line, Duration::from_secs(5))
}

/// [`ask`], waiting up to `limit` for the answer.
fn ask_within(state_dir: &std::path::Path, line: &str, limit: Duration) -> Result<String, String> {
    let path = state_dir.join(moirai::control::status::SOCKET);
    moirai::control::status::ask(&path, line, limit)
        .map_err(|e| format!("cannot reach moirai at {}: {e}", path.display()))
}

/// One status document from the running moirai.
fn read_status(state_dir: &std::path::Path) -> Result<String, String> {
    ask(state_dir, "status")
}

/// A run-time control: prints the answer; exit 1 when moirai refused it.
fn control(state_dir: &std::path::Path, line: &str) -> ExitCode {
    match ask(state_dir, line) {
        Ok(answer) => say(&answer),
        Err(e) => fail(&e),
    }
}

/// Prints moirai's answer; exit 1 unless it is `ok`.
fn say(answer: &str) -> ExitCode {
    println!("{}", answer.trim_end());
    if answer.starts_with("ok") {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn status(args: StatusArgs) -> ExitCode {
    let parse = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| format!("unreadable status from {}: {e}", args.state_dir.display()))
    };
    if let Some(after) = args.wait_reload_after {
        let deadline = std::time::Instant::now() + args.timeout;
        loop {
            // The daemon may be restarting: keep asking until the deadline.
            if let Ok(v) = read_status(&args.state_dir).and_then(|t| parse(&t)) {
                if v["reload"]["done"].as_u64().is_some_and(|d| d > after) {
                    println!("{}", v["reload"]["outcome"].as_str().unwrap_or("done"));
                    return ExitCode::SUCCESS;
                }
            }
            if std::time::Instant::now() >= deadline {
                eprintln!(
                    "moirai: the refresh was not answered within {}",
                    humantime::format_duration(args.timeout)
                );
                return ExitCode::from(1);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let text = match read_status(&args.state_dir) {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    if args.json {
        println!("{text}");
        return ExitCode::SUCCESS;
    }
    let v = match parse(&text) {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    if args.reloads {
        println!("{}", v["reload"]["done"].as_u64().unwrap_or(0));
        return ExitCode::SUCCESS;
    }
    print!("{}", moirai::check::status_text(&v));
    ExitCode::SUCCESS
}

fn check(args: CheckArgs) -> ExitCode {
    let mut source = match args.source.open() {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let md = match source.read() {
        Ok(md) => md,
        Err(e) => {
            return fail(&format!(
                "cannot read metadata from {}: {e}",
                source.describe()
            ))
        }
    };
    let (config, mut errors) = Config::from_metadata(&md);
    moirai::check::predict(&md, &config, &mut errors);
    let acme = moirai::check::acme_plan(
        &config,
        args.acme_challenge,
        source.can_write(),
        &mut errors,
    );
    let lookups = args.lookups(&config);
    let (listen, lookups) = (&args.listen_addresses, lookups.as_deref());
    if args.json {
        println!(
            "{}",
            moirai::check::to_json(&config, &errors, acme.as_ref(), listen, lookups)
        );
    } else {
        print!(
            "{}",
            moirai::check::to_text(&config, &errors, acme.as_ref(), listen, lookups)
        );
    }
    // Warnings alone still run: exit 0.
    if errors.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `moirai run --preflight`: what the moirai being replaced asks before it
/// hands over (see `moirai::control::preflight`). Warnings and errors go to
/// stderr, which that moirai quotes; the last line says the outcome.
fn preflight(args: RunArgs) -> ExitCode {
    moirai::logging::init(args.log_level.min(log::LevelFilter::Warn));
    let source = match args.source.open() {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    match moirai::control::preflight::check(source, &args.listen_addresses) {
        Ok(said) => {
            eprintln!("moirai: {said}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("moirai: pre-flight: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("moirai: {msg}");
    ExitCode::from(2)
}

fn run(args: RunArgs) -> ExitCode {
    if args.preflight {
        return preflight(args);
    }
    moirai::logging::init(args.log_level);
    // First, so every log (and every bug report) says which poller ran.
    log::info!(
        "moirai {} starting; poller: {}",
        moirai::VERSION,
        moirai::sys::poll::name()
    );
    let source = match args.source.open() {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let workers = match args.workers {
        Some(n) if n > 0 => n,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let opts = moirai::control::Options {
        source,
        workers,
        grace: args.grace,
        metadata_interval: args.metadata_interval,
        hosts_file: args.hosts_file,
        listen_addresses: args.listen_addresses,
        metrics_addresses: (!args.metrics_addresses.is_empty()).then_some(args.metrics_addresses),
        listen_mode: if args.shared_listener {
            ListenMode::Shared
        } else {
            ListenMode::native()
        },
        state_dir: args.state_dir,
        header_timeout: args.request_header_timeout,
        nameservers: args.nameservers,
        resolv_conf: args.resolv_conf,
        max_ttl: args.max_ttl,
        ca_file: args
            .ca_file
            .unwrap_or_else(|| PathBuf::from(moirai::tls::config::default_ca_file())),
        acme_directory: match (args.acme_directory, args.acme_staging) {
            (Some(url), _) => url,
            (None, true) => moirai::control::certs::acme::LETS_ENCRYPT_STAGING.to_owned(),
            (None, false) => moirai::control::certs::acme::LETS_ENCRYPT.to_owned(),
        },
        acme_ca_file: args.acme_ca_file,
        acme_challenge: args.acme_challenge,
        acme_renew_before: args.acme_renew_before,
        acme_dns_propagation: args.acme_dns_propagation,
        startup_timeout: args.startup_timeout,
        error_log: (args.error_log != "none").then(|| PathBuf::from(&args.error_log)),
        error_log_interval: args.error_log_interval,
        syslog_format: args.syslog_format,
        access_log: args.access_log.filter(|p| p != "none").map(PathBuf::from),
    };
    match moirai::control::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, for `svcs -x` and the SMF log.
            eprintln!("moirai: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
