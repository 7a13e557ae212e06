//! Token authentication for the real registry: a small token issuer (a loopback HTTP
//! server on a thread) and a `docker-registry` configured with `auth: token` trusting it.
//!
//! The issuer checks Basic credentials against one user and answers Docker's token format
//! (`token`, `access_token`, `expires_in`). Tokens are RS256 JWTs signed by shelling out to
//! `openssl dgst -sha256 -sign`, with the signing certificate in the `x5c` header, which
//! is how the registry (`rootcertbundle`) verifies them. Anonymous requests get pull-only
//! tokens; wrong credentials get 401. Every request is recorded for assertions.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::json;

use super::custom_registry::{CustomRegistry, Extra};
use super::http1::read_head;
use super::require_tool;

pub const SERVICE: &str = "ocibuild-test-registry";
pub const ISSUER: &str = "ocibuild-test-issuer";

/// One request the issuer answered.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// None: anonymous; Some(true): good credentials; Some(false): wrong ones.
    pub credentials: Option<bool>,
    pub scopes: Vec<String>,
    pub status: u16,
}

struct State {
    user: String,
    password: String,
    key: PathBuf,
    x5c: String,
    requests: Mutex<Vec<TokenRequest>>,
    serial: AtomicU64,
    /// How many of the next tokens to issue already expired (while `expires_in` still
    /// says 300 s): a token revoked early, or a clock ahead of the client's.
    expired: AtomicU64,
}

pub struct TokenIssuer {
    port: u16,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The signing certificate (PEM): the registry's `rootcertbundle`.
    pub cert: PathBuf,
}

impl TokenIssuer {
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenIssuer {
        require_tool("openssl");
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=ocibuild test token issuer"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        assert!(der.status.success());
        let state = Arc::new(State {
            user: user.into(),
            password: password.into(),
            key,
            x5c: base64::engine::general_purpose::STANDARD.encode(&der.stdout),
            requests: Mutex::new(Vec::new()),
            serial: AtomicU64::new(0),
            expired: AtomicU64::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let state = state.clone();
                            std::thread::spawn(move || serve(conn, &state));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        TokenIssuer {
            port,
            state,
            stop,
            thread: Some(thread),
            cert,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The next `n` tokens are issued already expired (`expires_in` still says 300 s).
    pub fn expire_next(&self, n: u64) {
        self.state.expired.store(n, Ordering::SeqCst);
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, state: &State) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let Some(head) = read_head(&mut reader) else {
        return;
    };
    let scopes = head.query("scope");
    let authorization = head.header("authorization");
    let credentials = authorization.map(|a| {
        let decoded = a
            .strip_prefix("Basic ")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        decoded == format!("{}:{}", state.user, state.password)
    });
    let (status, body) = match credentials {
        Some(false) => (401, json!({"details": "incorrect username or password"})),
        _ => {
            let account = if credentials == Some(true) {
                state.user.as_str()
            } else {
                ""
            };
            let token = sign(state, account, &scopes, credentials == Some(true));
            (
                200,
                json!({"token": token, "access_token": token, "expires_in": 300}),
            )
        }
    };
    state.requests.lock().unwrap().push(TokenRequest {
        credentials,
        scopes,
        status,
    });
    let body = body.to_string();
    let reason = if status == 200 { "OK" } else { "Unauthorized" };
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A JWT granting `scopes` (`repository:<name>:<actions>`); push only with credentials.
fn sign(state: &State, account: &str, scopes: &[String], may_push: bool) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            let actions: Vec<&str> = actions
                .split(',')
                .filter(|a| *a == "pull" || (may_push && *a == "push"))
                .collect();
            (kind == "repository").then(|| json!({"type": kind, "name": name, "actions": actions}))
        })
        .collect();
    let expired = state
        .expired
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let issued = if expired { now - 400 } else { now };
    let header = json!({"alg": "RS256", "typ": "JWT", "x5c": [state.x5c]});
    let claims = json!({
        "iss": ISSUER, "sub": account, "aud": SERVICE,
        "exp": issued + 300, "nbf": issued - 10, "iat": issued,
        "jti": format!("jti-{}-{now}", state.serial.fetch_add(1, Ordering::SeqCst)),
        "access": access,
    });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&state.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run openssl dgst");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl dgst -sign failed");
    format!("{input}.{}", b64(&out.stdout))
}

/// A registry with `auth: token` and its issuer (one user).
pub struct TokenRegistry {
    pub registry: CustomRegistry,
    pub issuer: TokenIssuer,
    user: String,
    password: String,
    _dir: tempfile::TempDir,
}

impl TokenRegistry {
    pub fn start(user: &str, password: &str) -> TokenRegistry {
        let dir = tempfile::Builder::new()
            .prefix("ocibuild-token-")
            .tempdir()
            .unwrap();
        let issuer = TokenIssuer::start(dir.path(), user, password);
        let auth = format!(
            "  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    \
             rootcertbundle: {}\n",
            issuer.realm(),
            issuer.cert.display()
        );
        let registry = CustomRegistry::start(&Extra {
            tls: vec![],
            auth: Some(auth),
            raw: None,
        });
        TokenRegistry {
            registry,
            issuer,
            user: user.into(),
            password: password.into(),
            _dir: dir,
        }
    }

    pub fn host(&self) -> String {
        self.registry.host()
    }

    pub fn reference(&self, name: &str) -> String {
        self.registry.reference(name)
    }

    pub fn creds(&self) -> (&str, &str) {
        (&self.user, &self.password)
    }
}
