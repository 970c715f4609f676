//! The operator's side of the control loop: the control socket's
//! commands (backend disable/drain/enable, log level, ACME retry,
//! upgrade) and `svcadm refresh`'s re-read of the SMF properties.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use super::{acme, publish, Control};

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
pub(super) fn exe_identity(path: &std::path::Path) -> Option<(u64, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.mtime()))
}

/// Where `moirai backend disable|drain` is remembered.
pub(super) const ADMIN_FILE: &str = "admin.json";

/// The operator's backend states from the state directory; none if the
/// file is missing or unreadable (said in the log).
pub(super) fn load_admin(
    dir: &std::path::Path,
) -> HashMap<(u16, std::net::SocketAddr), publish::Admin> {
    let path = dir.join(ADMIN_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return HashMap::new();
    };
    match serde_json::from_str::<Vec<(u16, std::net::SocketAddr, publish::Admin)>>(&text) {
        Ok(list) => list.into_iter().map(|(p, a, s)| ((p, a), s)).collect(),
        Err(e) => {
            log::error!("{}: {e}; no backend is disabled or drained", path.display());
            HashMap::new()
        }
    }
}

impl Control {
    /// Under SMF (`SMF_FMRI` set), `svcadm refresh` also means "read the
    /// service's config properties again": those that can apply live do
    /// (log level, ACME challenge, grace), the others are said to need a
    /// restart. Without SMF, nothing.
    pub(super) fn reread_smf_config(&mut self) {
        let Ok(fmri) = std::env::var("SMF_FMRI") else {
            return;
        };
        let out = match std::process::Command::new("svcprop")
            .args(["-p", "config", &fmri])
            .output()
        {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            Ok(o) => {
                log::error!(
                    "refresh: svcprop -p config {fmri} failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                return;
            }
            Err(e) => {
                log::error!("refresh: cannot run svcprop: {e}");
                return;
            }
        };
        for (name, value) in parse_svcprop(&out) {
            match name.as_str() {
                "log_level" => match value.parse::<log::LevelFilter>() {
                    Ok(l) if l != log::max_level() => {
                        // Said at any level: an operator changed it.
                        log::set_max_level(l.max(log::LevelFilter::Warn));
                        log::warn!("refresh: config/log_level is now {value}");
                        log::set_max_level(l);
                    }
                    Ok(_) => {}
                    Err(_) => log::error!("refresh: config/log_level {value:?} is not a level"),
                },
                "acme_challenge" => match value.parse::<acme::ChallengeChoice>() {
                    Ok(c) if c != self.acme_opts.challenge => {
                        self.acme_opts.challenge = c;
                        log::warn!("refresh: config/acme_challenge is now {value}");
                        // Asked again with the new plan.
                        self.acme_wanted = None;
                        if let Some(config) = self.config.clone() {
                            self.follow_certificate_names(&config);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => log::error!("refresh: config/acme_challenge: {e}"),
                },
                "grace" => match humantime::parse_duration(&value) {
                    Ok(g) if g != self.grace => {
                        self.grace = g;
                        log::warn!("refresh: config/grace is now {value}");
                    }
                    Ok(_) => {}
                    Err(e) => log::error!("refresh: config/grace {value:?}: {e}"),
                },
                _ => {}
            }
        }
    }

    /// Checks that `path` can run, then asks for the hand-over: the main
    /// loop ends and [`Control::handover`] takes over.
    pub(super) fn ask_upgrade(&mut self, path: PathBuf) -> Result<String, String> {
        use std::os::unix::fs::PermissionsExt;
        if self.upgrade.is_some() || self.draining {
            return Err("already stopping or upgrading".to_owned());
        }
        let m = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !m.is_file() || m.permissions().mode() & 0o111 == 0 {
            return Err(format!("{} is not an executable file", path.display()));
        }
        log::warn!(
            "upgrade: handing the listeners to {} (requests in flight finish first)",
            path.display()
        );
        let msg = format!("upgrading to {}", path.display());
        self.upgrade = Some(path);
        Ok(msg)
    }

    /// Answers one line from the control socket.
    pub(super) fn command(&mut self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] | ["status"] => self.status_report().to_string(),
            ["backend", action, port, addr] => self.admin_command(action, port, addr),
            ["log-level", level] => match level.parse::<log::LevelFilter>() {
                Ok(l) => {
                    log::set_max_level(l);
                    log::warn!("log level is now {l} (moirai log-level)");
                    format!("ok: log level {l}")
                }
                Err(_) => format!(
                    "error: {level:?} is not error, warn, info, debug or trace"
                ),
            },
            ["upgrade"] | ["upgrade", _] => {
                let path = match words.get(1) {
                    Some(p) => PathBuf::from(p),
                    None => match &self.exe {
                        Some((p, _)) => p.clone(),
                        None => return "error: cannot tell which program runs; name it".to_owned(),
                    },
                };
                match self.ask_upgrade(path) {
                    Ok(msg) => format!("ok: {msg}"),
                    Err(e) => format!("error: {e}"),
                }
            }
            ["acme", "retry"] => match &self.acme {
                Some(a) => {
                    a.retry_now();
                    log::info!("acme: retrying now (moirai acme retry)");
                    "ok: ACME order started".to_owned()
                }
                None => "error: no certificate is being ordered (no certificate_name, or no TLS service)"
                    .to_owned(),
            },
            _ => format!(
                "error: unknown command {line:?}; expected status, backend disable|enable|drain PORT ADDRESS, log-level LEVEL or acme retry"
            ),
        }
    }

    /// `backend disable|enable|drain PORT ADDRESS`: applied with a new
    /// generation at once and remembered until enabled again.
    pub(super) fn admin_command(&mut self, action: &str, port: &str, addr: &str) -> String {
        let Ok(port) = port.parse::<u16>() else {
            return format!("error: {port:?} is not a service port");
        };
        let Ok(addr) = addr.parse::<std::net::SocketAddr>() else {
            return format!("error: {addr:?} is not a backend address such as 10.0.0.5:8080");
        };
        if self.snapshot.service(port).is_none() {
            return format!("error: no service listens on port {port}");
        }
        if self.builder.candidates(port).all(|b| b.addr() != addr) {
            return format!("error: {addr} is not a backend of service :{port}");
        }
        let state = match action {
            "disable" => Some(publish::Admin::Disable),
            "drain" => Some(publish::Admin::Drain),
            "enable" => None,
            _ => return format!("error: {action:?} is not disable, enable or drain"),
        };
        match state {
            Some(s) => self.admin.insert((port, addr), s),
            None => self.admin.remove(&(port, addr)),
        };
        let mut list: Vec<_> = self.admin.iter().map(|((p, a), s)| (*p, *a, *s)).collect();
        list.sort_by_key(|(p, a, _)| (*p, *a));
        let saved = serde_json::to_vec(&list)
            .map_err(std::io::Error::other)
            .and_then(|json| crate::state::write_private(&self.state_dir.join(ADMIN_FILE), &json));
        let what = match state {
            Some(publish::Admin::Disable) => "disabled (no traffic; open connections finish)",
            Some(publish::Admin::Drain) => "draining (sticky clients only)",
            None => "enabled",
        };
        log::warn!("service :{port} backend {addr} {what} by an operator");
        self.rebuild(Instant::now());
        match saved {
            Ok(()) => format!("ok: service :{port} backend {addr} {what}"),
            Err(e) => format!(
                "ok: service :{port} backend {addr} {what}; not remembered across restarts: {e}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_svcprop;

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
    }
}
