//! Shared harness for the integration tests (`mod common;` in each tests/*.rs file).
//!
//! * [`registry::Registry`]: a real `docker-registry` per test on a free loopback port.
//! * [`fixture`]: base images generated in Rust into an OCI layout, pushed with skopeo.
//! * [`skopeo`]: readers (`skopeo inspect`, `umoci unpack`) nobody here wrote.
//! * [`TestEnv`]: the ocibuild binary with its own cache and Docker config per test.
//! * [`fs`]: build contexts on disk and assertions on unpacked root filesystems.
//!
//! Required tools (docker-registry, skopeo, umoci, …) are never optional: a missing one
//! panics with the install command, it does not skip.

// Each test crate uses a different part of the harness.
#![allow(dead_code, unused_imports)]

pub mod fixture;
pub mod fs;
pub mod registry;
pub mod skopeo;
pub mod tarball;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

pub use fixture::{ImageSpec, MediaTypes};
pub use registry::Registry;
pub use skopeo::{
    assert_absent, push_fixture, skopeo_exists, skopeo_inspect, skopeo_inspect_config,
    skopeo_inspect_config_bytes, skopeo_inspect_raw, skopeo_inspect_raw_bytes, unpack,
    unpack_layout,
};

/// Pseudo-random bytes (xorshift) that no compressor can shrink; `seed` picks the stream.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The standard fixture base ([`ImageSpec::base`]) for the host platform, written to
/// `<work>/base-layout` and pushed as `<registry>/base:1`: its reference and what was
/// written.
pub fn push_host_base(
    env: &TestEnv,
    reg: &Registry,
    media_types: MediaTypes,
) -> (String, fixture::WrittenImage) {
    let layout = env.work().join("base-layout");
    let base = fixture::write_image(
        &layout,
        "base",
        &ImageSpec::base(&fixture::host_platform()),
        media_types,
    );
    let base_ref = reg.reference("base:1");
    push_fixture(&layout, "base", &base_ref);
    (base_ref, base)
}

/// How long any one external command (ocibuild, skopeo, umoci) may take before the test
/// fails instead of hanging the suite: 60 s (every build here is a few KiB), or
/// `$OCIBUILD_TEST_TIMEOUT` seconds.
pub fn command_timeout() -> Duration {
    let secs = std::env::var("OCIBUILD_TEST_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// Panics (never skips) when a tool the tests rely on is not installed.
pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| is_executable(&d.join(name))))
        .unwrap_or(false);
    assert!(
        found,
        "required test tool `{name}` is not on PATH. Run scripts/test.sh, which installs it, or:\n  \
         apt-get install -y docker-registry skopeo umoci buildah openssl apache2-utils"
    );
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The result of running a command to completion.
#[derive(Clone, Debug)]
pub struct Output {
    /// Exit code; -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub stdout_bytes: Vec<u8>,
}

impl Output {
    /// Asserts a zero exit, showing stdout and stderr otherwise.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "command failed (exit {}).\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Asserts a failure with exit code `code`, a non-empty stderr that contains every one
    /// of `mentions`, and no panic or backtrace text.
    #[track_caller]
    pub fn assert_failure(&self, code: i32, mentions: &[&str]) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}.\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self.assert_clean_error(mentions)
    }

    /// Like [`assert_failure`] for any non-zero exit code.
    #[track_caller]
    pub fn assert_clean_error(&self, mentions: &[&str]) -> &Self {
        assert_ne!(self.code, 0, "expected a failure; stdout:\n{}", self.stdout);
        assert!(
            !self.stderr.trim().is_empty(),
            "a failure must explain itself on stderr (exit {})",
            self.code
        );
        for m in mentions {
            assert!(
                self.stderr.contains(m),
                "stderr should mention {m:?}; it was:\n{}",
                self.stderr
            );
        }
        for bad in ["panicked at", "RUST_BACKTRACE", "stack backtrace"] {
            assert!(
                !self.stderr.contains(bad),
                "stderr contains panic text {bad:?}:\n{}",
                self.stderr
            );
        }
        assert!(
            self.code != 101 && self.code != -1,
            "exit code {} means a panic or a signal:\n{}",
            self.code,
            self.stderr
        );
        self
    }

    /// The non-empty lines of stdout.
    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().filter(|l| !l.is_empty()).collect()
    }
}

/// Runs a command to completion (stdin closed), capturing stdout and stderr, failing the
/// test if it runs longer than [`command_timeout`].
pub fn run(cmd: &mut Command) -> Output {
    run_with_timeout(cmd, command_timeout())
}

pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out_pipe.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for child") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_reader.join().unwrap_or_default();
            panic!(
                "{shown} did not finish within {timeout:?}; stderr so far:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout_bytes = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    Output {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        stdout_bytes,
    }
}

/// Per-test state for running ocibuild: its own `XDG_CACHE_HOME`, `DOCKER_CONFIG` and HOME,
/// so tests share no cache or credentials unless they share a `TestEnv`.
pub struct TestEnv {
    dir: TempDir,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("ocibuild-test-")
            .tempdir()
            .unwrap();
        for sub in ["cache", "docker", "home", "work"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        TestEnv { dir }
    }

    /// A scratch directory for this test (contexts, outputs, fixtures).
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// `$XDG_CACHE_HOME` ocibuild runs with (its cache is `<this>/ocibuild`).
    pub fn cache_home(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// `$DOCKER_CONFIG` ocibuild runs with.
    pub fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker")
    }

    /// A Command for the ocibuild binary under test, with this env's cache and config dirs
    /// and none of the caller's SOURCE_DATE_EPOCH or registry credentials.
    pub fn ocibuild(&self) -> Command {
        self.configure(Command::new(ocibuild_bin()))
    }

    /// Like [`ocibuild`](Self::ocibuild), but the process cannot read files its permission
    /// bits forbid, even when the tests run as root (as in CI): see [`without_dac_override`].
    pub fn ocibuild_without_dac_override(&self) -> Command {
        let mut c = without_dac_override();
        c.arg(ocibuild_bin());
        self.configure(c)
    }

    fn configure(&self, mut c: Command) -> Command {
        c.env("XDG_CACHE_HOME", self.cache_home())
            .env("DOCKER_CONFIG", self.docker_config())
            .env("HOME", self.dir.path().join("home"))
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LOG")
            .current_dir(self.work())
            .stdin(Stdio::null());
        c
    }

    /// Runs ocibuild with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        run(self.ocibuild().args(args))
    }
}

pub fn ocibuild_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ocibuild")
}

/// A command prefix under which file permission bits are enforced even for root: as root,
/// `setpriv` drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set, so the
/// program (still uid 0, still the owner of the test's temp files) gets EACCES on a
/// `chmod 000` file. As a normal user this is plain `env`. Append the program and its args.
pub fn without_dac_override() -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        require_tool("setpriv");
        let mut c = Command::new("setpriv");
        c.args(["--bounding-set", "-dac_override,-dac_read_search"]);
        c
    } else {
        Command::new("env")
    }
}

/// Splits one stdout line `<dest>@sha256:<64 hex>` into (dest, digest), asserting the form.
#[track_caller]
pub fn parse_dest_line(line: &str) -> (String, String) {
    let (dest, digest) = line
        .rsplit_once('@')
        .unwrap_or_else(|| panic!("stdout line {line:?} is not <dest>@sha256:<hex>"));
    assert!(
        is_digest(digest),
        "stdout line {line:?}: {digest:?} is not sha256:<64 hex>"
    );
    (dest.to_string(), digest.to_string())
}

pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Asserts that stdout is exactly one line per destination, `<dest>@sha256:<hex>` (in any
/// order: sinks may finish in any order), and returns the digests in the order of `dests`.
#[track_caller]
pub fn expect_dest_lines(out: &Output, dests: &[&str]) -> Vec<String> {
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        dests.len(),
        "stdout must be exactly one line per destination {dests:?}; it was:\n{}",
        out.stdout
    );
    assert!(
        out.stdout.ends_with('\n'),
        "stdout must end with a newline: {:?}",
        out.stdout
    );
    let parsed: Vec<(String, String)> = lines.iter().map(|l| parse_dest_line(l)).collect();
    dests
        .iter()
        .map(|want| {
            let hits: Vec<&(String, String)> = parsed.iter().filter(|(d, _)| d == want).collect();
            assert_eq!(
                hits.len(),
                1,
                "expected exactly one stdout line for {want:?}; stdout was:\n{}",
                out.stdout
            );
            hits[0].1.clone()
        })
        .collect()
}
pub mod custom_registry;
pub mod dfcontext;
pub mod dfdiff;
pub mod fake_registry;
pub mod http1;
pub mod proxy;
pub mod tls;
pub mod token;
