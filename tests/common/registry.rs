//! A real registry (Debian's `docker-registry`, i.e. CNCF distribution v2) per test, on a
//! free loopback port, with its own temp config and storage, killed on Drop.
//!
//! `Registry::start()` is the plain-HTTP variant. `Registry::builder()` adds TLS with a
//! generated self-signed certificate (`.tls()`) and htpasswd basic auth (`.htpasswd(u, p)`).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::require_tool;

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const START_ATTEMPTS: usize = 5;

/// A running registry. Dropping it kills the process and removes its storage.
pub struct Registry {
    child: Child,
    port: u16,
    dir: TempDir,
    tls: Option<TlsFiles>,
    creds: Option<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Self-signed certificate (also the CA to trust) for 127.0.0.1 and localhost.
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Default)]
pub struct RegistryBuilder {
    tls: bool,
    tls_files: Option<TlsFiles>,
    htpasswd: Option<(String, String)>,
}

impl RegistryBuilder {
    /// Serve HTTPS with a freshly generated self-signed certificate for 127.0.0.1/localhost.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Serve HTTPS with the given certificate and key.
    pub fn tls_files(mut self, cert: &Path, key: &Path) -> Self {
        self.tls = true;
        self.tls_files = Some(TlsFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        });
        self
    }

    /// Require HTTP basic auth with this single user (bcrypt htpasswd file via `htpasswd`).
    pub fn htpasswd(mut self, user: &str, password: &str) -> Self {
        self.htpasswd = Some((user.to_string(), password.to_string()));
        self
    }

    pub fn start(self) -> Registry {
        require_tool("docker-registry");
        let mut dir = tempfile::Builder::new()
            .prefix("ocibuild-registry-")
            .tempdir()
            .expect("temp dir for registry");
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).unwrap();

        let tls = match (self.tls, self.tls_files) {
            (_, Some(files)) => Some(files),
            (true, None) => Some(generate_self_signed(dir.path())),
            (false, None) => None,
        };
        let htpasswd_file = self.htpasswd.as_ref().map(|(u, p)| {
            require_tool("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .stdin(Stdio::null())
                .output()
                .expect("run htpasswd");
            assert!(
                out.status.success(),
                "htpasswd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, &out.stdout).unwrap();
            path
        });

        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                config_yaml(port, &storage, tls.as_ref(), htpasswd_file.as_deref()),
            )
            .unwrap();
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let mut cmd = Command::new("docker-registry");
            cmd.arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                // Keep the registry from reading a system-wide config through the environment.
                .env_remove("REGISTRY_CONFIGURATION_PATH");
            // If the test thread dies without unwinding (e.g. the test binary is killed), the
            // kernel kills the registry too. A registry never outlives its test's thread.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = cmd.spawn().expect("spawn docker-registry");
            let mut registry = Registry {
                child,
                port,
                dir,
                tls: tls.clone(),
                creds: self.htpasswd.clone(),
            };
            match registry.wait_ready() {
                Ok(()) => return registry,
                Err(log) => {
                    last_log = log;
                    // Port taken between our probe and the registry's bind: try another.
                    let collision = last_log.contains("address already in use");
                    let _ = registry.child.kill();
                    let _ = registry.child.wait();
                    if !collision {
                        break;
                    }
                    // Take the temp dir back out of the dead registry for the next attempt.
                    dir = std::mem::replace(&mut registry.dir, TempDir::new().unwrap());
                }
            }
        }
        panic!("docker-registry did not become ready; its log:\n{last_log}");
    }
}

impl Registry {
    /// A plain-HTTP registry on 127.0.0.1:<free port>.
    pub fn start() -> Registry {
        Registry::builder().start()
    }

    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The registry process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:PORT/<name>` for a `repo[:tag]` name.
    pub fn reference(&self, name: &str) -> String {
        format!("{}/{}", self.host(), name)
    }

    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The htpasswd user and password, when the registry requires auth.
    pub fn creds(&self) -> Option<(&str, &str)> {
        self.creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The registry's storage root (to look at what was pushed, byte for byte).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// A raw HTTP/1.0 GET against the plain-HTTP registry: (status line, headers, body).
    /// Only for plain registries without auth (TLS needs a real client: use skopeo).
    pub fn http_get(&self, path: &str, accept: &[&str]) -> (String, String, Vec<u8>) {
        assert!(self.tls.is_none(), "http_get is for plain-HTTP registries");
        http_get(self.port, path, accept)
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}", self.host()))
    }

    /// GETs blob `digest` from repository `repo` and checks it hashes to `digest`.
    #[track_caller]
    pub fn blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let (status, _, body) = self.http_get(&format!("/v2/{repo}/blobs/{digest}"), &[]);
        assert!(
            status.contains(" 200 "),
            "GET blob {digest} from {repo} on {}: {status}",
            self.host()
        );
        assert_eq!(
            super::sha256_digest(&body),
            digest,
            "blob {digest} from {repo} has other content"
        );
        body
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("(exited with {status})\n{}", self.log()));
            }
            // Any HTTP answer means it is serving: 200 (open), 401 (auth), or Go's
            // "400 Client sent an HTTP request to an HTTPS server" for a TLS listener.
            // Ours answering, not another test's registry that won the race for the port
            // (this one then exits with "address already in use", maybe only after that
            // other one answered).
            if listens_on(self.child.id(), self.port)
                && let Ok((status, _, _)) = http_get(self.port, "/v2/", &[])
                && status.starts_with("HTTP/")
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "(not answering GET /v2/ after {READY_TIMEOUT:?})\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether process `pid` holds the listening TCP socket on 127.0.0.1:`port` (Linux:
/// the socket's inode in /proc/net/tcp among the process's open files).
pub fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let local = format!(":{port:04X}");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address, state 0A = LISTEN, inode.
            (f.len() > 9 && f[1].ends_with(&local) && f[3] == "0A")
                .then(|| format!("socket:[{}]", f[9]))
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|t| inodes.iter().any(|i| t.to_string_lossy() == *i))
    })
}

/// A loopback port nothing listens on right now (bind port 0, read it, close it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

fn config_yaml(
    port: u16,
    storage: &Path,
    tls: Option<&TlsFiles>,
    htpasswd: Option<&Path>,
) -> String {
    let mut y = format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: ocibuild-tests\n",
        storage.display()
    );
    if let Some(t) = tls {
        y += &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            t.cert.display(),
            t.key.display()
        );
    }
    if let Some(h) = htpasswd {
        y += &format!(
            "auth:\n  htpasswd:\n    realm: ocibuild-tests\n    path: {}\n",
            h.display()
        );
    }
    y
}

/// A self-signed EC certificate valid for 127.0.0.1, ::1 and localhost, made with openssl.
pub fn generate_self_signed(dir: &Path) -> TlsFiles {
    require_tool("openssl");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "2", "-subj", "/CN=localhost"])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
        ])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    TlsFiles { cert, key }
}

fn http_get(port: u16, path: &str, accept: &[&str]) -> std::io::Result<(String, String, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    for a in accept {
        req += &format!("Accept: {a}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes())?;
    let _ = s.shutdown(Shutdown::Write);
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header terminator"))?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let body = buf[split + 4..].to_vec();
    let (status, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
    Ok((status.to_string(), headers.to_string(), body))
}

/// A loopback port that refuses connections for as long as this value lives: a TCP socket
/// bound to it (without SO_REUSEADDR) but never listening, so no registry started by a
/// parallel test can take the port, and connecting gets ECONNREFUSED at once.
pub struct ClosedPort {
    _fd: std::os::fd::OwnedFd,
    port: u16,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket syscalls on a fresh fd we own; structs are zero-initialized
        // and sized as the kernel expects.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            addr.sin_port = 0;
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let rc = libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len);
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            let mut got: libc::sockaddr_in = std::mem::zeroed();
            let mut got_len = len;
            let rc = libc::getsockname(fd, &mut got as *mut _ as *mut libc::sockaddr, &mut got_len);
            assert_eq!(rc, 0, "getsockname: {}", std::io::Error::last_os_error());
            ClosedPort {
                _fd: owned,
                port: u16::from_be(got.sin_port),
            }
        }
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Default for ClosedPort {
    fn default() -> Self {
        Self::new()
    }
}
