//! The operator's side of the control loop, without the loop: the control
//! socket's commands parsed into [`Command`]s, the backend states an
//! operator set ([`Admins`], kept in the state directory), the SMF
//! properties `svcadm refresh` re-reads ([`SmfSetting`]), and what an
//! upgrade may exec. The loop carries them out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::certs::acme::ChallengeChoice;
use super::publish::Admin;

/// One line from the control socket, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The status document.
    Status,
    /// `backend disable|drain|enable PORT ADDRESS` (`None`: enable).
    Backend {
        port: u16,
        addr: SocketAddr,
        state: Option<Admin>,
    },
    /// `log-level LEVEL`.
    LogLevel(log::LevelFilter),
    /// `upgrade [BINARY]` (none: the program running).
    Upgrade(Option<PathBuf>),
    /// `acme retry`.
    AcmeRetry,
}

impl Command {
    /// Parses a control-socket line; the error is the answer to send.
    pub fn parse(line: &str) -> Result<Command, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] | ["status"] => Ok(Command::Status),
            ["backend", action, port, addr] => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("error: {port:?} is not a service port"))?;
                let addr = addr.parse::<SocketAddr>().map_err(|_| {
                    format!("error: {addr:?} is not a backend address such as 10.0.0.5:8080")
                })?;
                let state = match *action {
                    "disable" => Some(Admin::Disable),
                    "drain" => Some(Admin::Drain),
                    "enable" => None,
                    _ => return Err(format!("error: {action:?} is not disable, enable or drain")),
                };
                Ok(Command::Backend { port, addr, state })
            }
            ["log-level", level] => level.parse().map(Command::LogLevel).map_err(|_| {
                format!("error: {level:?} is not error, warn, info, debug or trace")
            }),
            ["upgrade"] => Ok(Command::Upgrade(None)),
            ["upgrade", path] => Ok(Command::Upgrade(Some(PathBuf::from(path)))),
            ["acme", "retry"] => Ok(Command::AcmeRetry),
            _ => Err(format!(
                "error: unknown command {line:?}; expected status, backend disable|enable|drain PORT ADDRESS, log-level LEVEL or acme retry"
            )),
        }
    }
}

/// What a backend state means, for the log and the answer.
pub fn admin_meaning(state: Option<Admin>) -> &'static str {
    match state {
        Some(Admin::Disable) => "disabled (no traffic; open connections finish)",
        Some(Admin::Drain) => "draining (sticky clients only)",
        None => "enabled",
    }
}

/// Where `moirai backend disable|drain` is remembered.
const ADMIN_FILE: &str = "admin.json";

/// The backend states operators set, remembered until enabled again.
#[derive(Debug)]
pub struct Admins {
    states: HashMap<(u16, SocketAddr), Admin>,
    file: PathBuf,
}

impl Admins {
    /// The states kept in `dir`; none if the file is missing or unreadable
    /// (said in the log).
    pub fn load(dir: &Path) -> Admins {
        let file = dir.join(ADMIN_FILE);
        let states = match std::fs::read_to_string(&file) {
            Err(_) => HashMap::new(),
            Ok(text) => match serde_json::from_str::<Vec<(u16, SocketAddr, Admin)>>(&text) {
                Ok(list) => list.into_iter().map(|(p, a, s)| ((p, a), s)).collect(),
                Err(e) => {
                    log::error!("{}: {e}; no backend is disabled or drained", file.display());
                    HashMap::new()
                }
            },
        };
        Admins { states, file }
    }

    /// Every state set, by (service port, backend).
    pub fn states(&self) -> &HashMap<(u16, SocketAddr), Admin> {
        &self.states
    }

    /// Sets (or with `None` clears) the state of `addr` in the service on
    /// `port`, and writes the states down.
    pub fn set(
        &mut self,
        port: u16,
        addr: SocketAddr,
        state: Option<Admin>,
    ) -> std::io::Result<()> {
        match state {
            Some(s) => self.states.insert((port, addr), s),
            None => self.states.remove(&(port, addr)),
        };
        let mut list: Vec<_> = self.states.iter().map(|((p, a), s)| (*p, *a, *s)).collect();
        list.sort_by_key(|(p, a, _)| (*p, *a));
        let json = serde_json::to_vec(&list).map_err(std::io::Error::other)?;
        crate::state::write_private(&self.file, &json)
    }
}

/// A service property `svcadm refresh` can apply live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmfSetting {
    /// `config/log_level`.
    LogLevel(log::LevelFilter),
    /// `config/acme_challenge`.
    AcmeChallenge(ChallengeChoice),
    /// `config/grace`.
    Grace(Duration),
}

/// The live settings in `svcprop -p config FMRI` output; values that do
/// not parse are logged and left out.
pub fn smf_settings(text: &str) -> Vec<SmfSetting> {
    let mut out = Vec::new();
    for (name, value) in parse_svcprop(text) {
        match name.as_str() {
            "log_level" => match value.parse() {
                Ok(l) => out.push(SmfSetting::LogLevel(l)),
                Err(_) => log::error!("refresh: config/log_level {value:?} is not a level"),
            },
            "acme_challenge" => match value.parse() {
                Ok(c) => out.push(SmfSetting::AcmeChallenge(c)),
                Err(e) => log::error!("refresh: config/acme_challenge: {e}"),
            },
            "grace" => match humantime::parse_duration(&value) {
                Ok(g) => out.push(SmfSetting::Grace(g)),
                Err(e) => log::error!("refresh: config/grace {value:?}: {e}"),
            },
            _ => {}
        }
    }
    out
}

/// Under SMF (`SMF_FMRI` set), the service's config properties; `None`
/// without SMF or when `svcprop` fails (logged).
pub fn read_smf_config() -> Option<String> {
    let fmri = std::env::var("SMF_FMRI").ok()?;
    match std::process::Command::new("svcprop")
        .args(["-p", "config", &fmri])
        .output()
    {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => {
            log::error!(
                "refresh: svcprop -p config {fmri} failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            log::error!("refresh: cannot run svcprop: {e}");
            None
        }
    }
}

/// `svcprop -p config FMRI` output (`config/NAME TYPE VALUE`) as
/// (NAME, VALUE); values with spaces come back as svcprop quotes them,
/// backslashes removed.
pub fn parse_svcprop(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (prop, rest) = l.split_once(' ')?;
            let name = prop.strip_prefix("config/")?;
            let (_ty, value) = rest.trim_start().split_once(' ').unwrap_or((rest, ""));
            let value = value.trim().trim_matches('"').replace('\\', "");
            Some((name.to_owned(), value))
        })
        .collect()
}

/// (device, inode, mtime) of a program file: replaced binaries differ.
pub fn exe_identity(path: &Path) -> Option<(u64, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.mtime()))
}

/// Whether `path` is a program an upgrade can exec.
pub fn check_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !m.is_file() || m.permissions().mode() & 0o111 == 0 {
        return Err(format!("{} is not an executable file", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svcprop_lines() {
        let text = "config/log_level astring debug\nconfig/workers count 0\nconfig/acme_directory astring https://x.test/dir\nconfig/note astring a\\ b\nstart/exec astring /bin/true\n";
        assert_eq!(
            parse_svcprop(text),
            [
                ("log_level".to_owned(), "debug".to_owned()),
                ("workers".to_owned(), "0".to_owned()),
                ("acme_directory".to_owned(), "https://x.test/dir".to_owned()),
                ("note".to_owned(), "a b".to_owned()),
            ]
        );
        let text = "config/log_level astring loud\nconfig/grace astring 30s\nconfig/acme_challenge astring dns-01\n";
        assert_eq!(
            smf_settings(text),
            [
                SmfSetting::Grace(Duration::from_secs(30)),
                SmfSetting::AcmeChallenge("dns-01".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn commands_parse_or_say_why_not() {
        let addr: SocketAddr = "10.0.0.5:8080".parse().unwrap();
        assert_eq!(Command::parse(""), Ok(Command::Status));
        assert_eq!(Command::parse("status"), Ok(Command::Status));
        assert_eq!(
            Command::parse("backend drain 80 10.0.0.5:8080"),
            Ok(Command::Backend {
                port: 80,
                addr,
                state: Some(Admin::Drain)
            })
        );
        assert_eq!(
            Command::parse(" backend  enable 80 10.0.0.5:8080 "),
            Ok(Command::Backend {
                port: 80,
                addr,
                state: None
            })
        );
        assert_eq!(
            Command::parse("log-level debug"),
            Ok(Command::LogLevel(log::LevelFilter::Debug))
        );
        assert_eq!(Command::parse("upgrade"), Ok(Command::Upgrade(None)));
        assert_eq!(
            Command::parse("upgrade /opt/new"),
            Ok(Command::Upgrade(Some("/opt/new".into())))
        );
        assert_eq!(Command::parse("acme retry"), Ok(Command::AcmeRetry));
        for (line, why) in [
            ("backend drain http 10.0.0.5:8080", "is not a service port"),
            ("backend drain 80 10.0.0.5", "is not a backend address"),
            (
                "backend pause 80 10.0.0.5:8080",
                "is not disable, enable or drain",
            ),
            ("log-level loud", "is not error, warn"),
            ("reboot", "unknown command"),
        ] {
            let e = Command::parse(line).unwrap_err();
            assert!(e.starts_with("error: ") && e.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn admin_states_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("moirai-admins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let addr: SocketAddr = "10.0.0.5:8080".parse().unwrap();
        let mut a = Admins::load(&dir);
        assert!(a.states().is_empty());
        a.set(80, addr, Some(Admin::Disable)).unwrap();
        a.set(443, addr, Some(Admin::Drain)).unwrap();
        a.set(443, addr, None).unwrap();
        let b = Admins::load(&dir);
        assert_eq!(b.states().len(), 1);
        assert_eq!(b.states().get(&(80, addr)), Some(&Admin::Disable));
        std::fs::write(dir.join(ADMIN_FILE), "not json").unwrap();
        assert!(Admins::load(&dir).states().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
