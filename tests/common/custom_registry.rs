//! A real `docker-registry` with a configuration [`super::registry::Registry`] does not
//! offer: extra `http.tls` keys (client CAs for mTLS), `auth: token`, other top-level
//! blocks (manifest URL validation). Same rules as the
//! standard one: a free loopback port, its own temp storage, killed on Drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::registry::free_port;
use super::require_tool;

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// What to add to the base configuration (storage, `http.addr`, quiet logs).
#[derive(Clone, Debug, Default)]
pub struct Extra {
    /// `http.tls` lines, indented under `tls:` by 4 spaces (e.g. `certificate: …`).
    pub tls: Vec<String>,
    /// A top-level `auth:` block, verbatim (its lines indented by 2 spaces and more).
    pub auth: Option<String>,
    /// More top-level configuration, verbatim (e.g. a `validation:` block).
    pub raw: Option<String>,
}

pub struct CustomRegistry {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl CustomRegistry {
    pub fn start(extra: &Extra) -> CustomRegistry {
        require_tool("docker-registry");
        let mut last = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("ocibuild-registry-")
                .tempdir()
                .unwrap();
            let storage = dir.path().join("storage");
            std::fs::create_dir(&storage).unwrap();
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(&config, yaml(port, &storage, extra)).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut cmd = Command::new("docker-registry");
            cmd.arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .env_remove("REGISTRY_CONFIGURATION_PATH");
            // SAFETY: prctl in the child before exec; no allocation, no locks.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = cmd.spawn().expect("spawn docker-registry");
            let mut reg = CustomRegistry { child, port, dir };
            match reg.wait_ready() {
                Ok(()) => return reg,
                Err(log) => {
                    last = log;
                    // Port taken between our probe and the registry's bind: try another.
                    if !last.contains("address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("docker-registry did not become ready; its log:\n{last}");
    }

    /// `127.0.0.1:PORT`
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.host())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// A directory next to the registry's files, for the caller's keys and certificates.
    pub fn scratch(&self) -> PathBuf {
        let p = self.dir.path().join("scratch");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("(exited with {status})\n{}", self.log()));
            }
            // Any HTTP answer means it is serving (a TLS listener answers plain HTTP 400),
            // once this registry holds the port (not another test's that won the race).
            if super::registry::listens_on(self.child.id(), self.port) && answers_http(self.port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "(not answering after {READY_TIMEOUT:?})\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for CustomRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn yaml(port: u16, storage: &Path, extra: &Extra) -> String {
    let mut y = format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: ocibuild-tests\n",
        storage.display()
    );
    if !extra.tls.is_empty() {
        y += "  tls:\n";
        for line in &extra.tls {
            y += &format!("    {line}\n");
        }
    }
    if let Some(raw) = &extra.raw {
        y += raw;
        if !raw.ends_with('\n') {
            y.push('\n');
        }
    }
    if let Some(auth) = &extra.auth {
        y += "auth:\n";
        y += auth;
        if !auth.ends_with('\n') {
            y.push('\n');
        }
    }
    y
}

fn answers_http(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/"
}
