//! nginx from the Debian package as a real backend: a loopback port, a big
//! file, `/xff` telling the forwarding headers it received, and an access
//! log of every request it parsed, with the X-Forwarded-For it carried.
//! Hostile-input tests judge moirai by what this parser sees.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{connect_within, free_port, local, temp_dir};

pub struct Nginx {
    child: Child,
    pub port: u16,
    pub file: Vec<u8>,
    dir: PathBuf,
}

impl Nginx {
    pub fn start() -> Nginx {
        let nginx = std::path::Path::new("/usr/sbin/nginx");
        assert!(
            nginx.exists(),
            "nginx is needed as a real backend: apt-get install -y nginx-light (scripts/test does)"
        );
        let dir = temp_dir("nginx");
        let port = free_port();
        let file: Vec<u8> = (0..5_000_000u32).map(|i| (i ^ (i >> 9)) as u8).collect();
        std::fs::create_dir_all(dir.join("www")).unwrap();
        std::fs::write(dir.join("www/big.bin"), &file).unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  log_format seen '$request_method $request_uri xff=$http_x_forwarded_for status=$status';\n\
                   access_log {d}/access.log seen;\n\
                   client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
                   keepalive_requests 10000;\n\
                   server {{\n    listen 127.0.0.1:{port};\n    root {d}/www;\n\
                     location = /xff {{ default_type text/plain; return 200 \"$http_x_forwarded_for|$http_x_forwarded_proto|$http_x_forwarded_port\"; }}\n\
                     location / {{ default_type text/plain; return 200 \"ok $request_uri\"; }}\n\
                     location = /big.bin {{ }}\n\
                     location /missing {{ }}\n\
                     location = /switch {{ return 101; }}\n\
                   }}\n}}\n"
            ),
        )
        .unwrap();
        let child = Command::new(nginx)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        connect_within(local(port), Duration::from_secs(5));
        Nginx {
            child,
            port,
            file,
            dir,
        }
    }

    /// Every request nginx logged so far, one line each:
    /// `METHOD URI xff=VALUE status=CODE`.
    pub fn seen(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until nginx logged at least `n` requests (or `limit` passed),
    /// then a little longer for any it should not have, and returns them.
    pub fn seen_settled(&self, n: usize, limit: Duration) -> Vec<String> {
        let start = Instant::now();
        while self.seen().len() < n && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        self.seen()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
