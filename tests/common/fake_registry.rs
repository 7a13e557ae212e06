//! A small in-process registry for the quirks the real one cannot produce: upload sessions
//! whose `Location` is absolute and on another host (a second loopback port, "storage"),
//! then relative and different after every chunk; `201` answers to `PATCH` (as ECR);
//! `OCI-Chunk-Min-Length`; monolithic uploads refused with `413`; an anonymous `/v2/`
//! with authentication required below it. Basic auth on the main host only. Anything a client does wrong is recorded in [`FakeRegistry::problems`]
//! (chunks below the minimum, out-of-order ranges, credentials sent to the storage host).

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;

use super::http1::{Head, read_head};
use super::sha256_digest;

#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// Basic credentials the main host requires (every request, `/v2/` included).
    pub user: (String, String),
    /// Answer `413` to a `PUT` that carries the whole blob.
    pub refuse_monolithic: bool,
    /// Sent as `OCI-Chunk-Min-Length` when an upload starts.
    pub min_chunk: Option<u64>,
    /// Status of `PATCH` answers (202 per spec, 201 as ECR does).
    pub patch_status: u16,
    /// Answer `/v2/` without credentials (as quay.io does); everything else still wants
    /// them.
    pub anonymous_ping: bool,
}

#[derive(Default)]
struct Upload {
    repo: String,
    data: Vec<u8>,
    chunks: Vec<u64>,
    step: u64,
}

/// A stored manifest: (media type, bytes).
type Stored = (String, Vec<u8>);

struct State {
    cfg: FakeConfig,
    main_port: u16,
    storage_port: u16,
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    manifests: Mutex<HashMap<(String, String), Stored>>,
    uploads: Mutex<HashMap<String, Upload>>,
    problems: Mutex<Vec<String>>,
    /// (host, method, target, body length)
    log: Mutex<Vec<(char, String, String, u64)>>,
    /// Sizes of the chunks of every committed chunked upload.
    chunked: Mutex<Vec<Vec<u64>>>,
    next: AtomicU64,
}

pub struct FakeRegistry {
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn reply(status: u16) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

impl Reply {
    fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.push((k.to_string(), v.into()));
        self
    }
    fn body(mut self, b: Vec<u8>) -> Reply {
        self.body = b;
        self
    }
    fn error(status: u16, code: &str) -> Reply {
        reply(status)
            .header("Content-Type", "application/json")
            .body(format!(r#"{{"errors":[{{"code":"{code}","message":"{code}"}}]}}"#).into_bytes())
    }
}

impl FakeRegistry {
    pub fn start(cfg: FakeConfig) -> FakeRegistry {
        let main = TcpListener::bind("127.0.0.1:0").unwrap();
        let storage = TcpListener::bind("127.0.0.1:0").unwrap();
        let state = Arc::new(State {
            cfg,
            main_port: main.local_addr().unwrap().port(),
            storage_port: storage.local_addr().unwrap().port(),
            blobs: Mutex::default(),
            manifests: Mutex::default(),
            uploads: Mutex::default(),
            problems: Mutex::default(),
            log: Mutex::default(),
            chunked: Mutex::default(),
            next: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let threads = [(main, 'm'), (storage, 's')]
            .into_iter()
            .map(|(l, which)| {
                l.set_nonblocking(true).unwrap();
                let (state, stop) = (state.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        match l.accept() {
                            Ok((c, _)) => {
                                let state = state.clone();
                                std::thread::spawn(move || serve(c, which, &state));
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(2)),
                        }
                    }
                })
            })
            .collect();
        FakeRegistry {
            state,
            stop,
            threads,
        }
    }

    /// The main host, `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.state.main_port)
    }

    /// The upload ("storage") host, `127.0.0.1:PORT`.
    pub fn storage_host(&self) -> String {
        format!("127.0.0.1:{}", self.state.storage_port)
    }

    pub fn problems(&self) -> Vec<String> {
        self.state.problems.lock().unwrap().clone()
    }

    /// Chunk sizes of every chunked upload committed, in commit order.
    pub fn chunked_uploads(&self) -> Vec<Vec<u64>> {
        self.state.chunked.lock().unwrap().clone()
    }

    /// `(host 'm'|'s', method, target, body length)` of every request.
    pub fn log(&self) -> Vec<(char, String, String, u64)> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn blob(&self, digest: &str) -> Option<Vec<u8>> {
        self.state.blobs.lock().unwrap().get(digest).cloned()
    }

    /// The manifest stored under `repo` and `reference` (tag or digest).
    pub fn manifest(&self, repo: &str, reference: &str) -> Option<Vec<u8>> {
        let m = self.state.manifests.lock().unwrap();
        m.get(&(repo.to_string(), reference.to_string()))
            .map(|(_, b)| b.clone())
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, which: char, state: &State) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut conn = conn;
    while let Some(head) = read_head(&mut reader) {
        let (method, target) = (head.method.clone(), head.target.clone());
        let mut body = Vec::new();
        if (&mut reader)
            .take(head.content_length())
            .read_to_end(&mut body)
            .is_err()
        {
            return;
        }
        let len = body.len() as u64;
        state
            .log
            .lock()
            .unwrap()
            .push((which, method.clone(), target.clone(), len));
        let r = if which == 'm' {
            main_route(state, &head, body)
        } else {
            storage_route(state, &head, body)
        };
        let mut out = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            r.status,
            r.body.len()
        );
        for (k, v) in &r.headers {
            out += &format!("{k}: {v}\r\n");
        }
        out += "\r\n";
        let mut bytes = out.into_bytes();
        if method != "HEAD" {
            bytes.extend_from_slice(&r.body);
        }
        if conn.write_all(&bytes).is_err() {
            return;
        }
    }
}

fn main_route(st: &State, head: &Head, body: Vec<u8>) -> Reply {
    let method = head.method.as_str();
    let (user, pass) = &st.cfg.user;
    let want = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let ping = head.path() == "/v2/" || head.path() == "/v2";
    if !(ping && st.cfg.anonymous_ping)
        && head.header("authorization") != Some(format!("Basic {want}").as_str())
    {
        return Reply::error(401, "UNAUTHORIZED")
            .header("WWW-Authenticate", r#"Basic realm="fake""#);
    }
    let Some(rest) = head.path().strip_prefix("/v2/") else {
        return Reply::error(404, "NOT_FOUND");
    };
    if rest.is_empty() {
        return reply(200);
    }
    if let Some(repo) = rest.strip_suffix("/blobs/uploads/") {
        if method != "POST" {
            return Reply::error(405, "UNSUPPORTED");
        }
        let id = format!("u{}", st.next.fetch_add(1, Ordering::SeqCst));
        st.uploads.lock().unwrap().insert(
            id.clone(),
            Upload {
                repo: repo.to_string(),
                ..Upload::default()
            },
        );
        let mut r = reply(202).header(
            "Location",
            format!("http://127.0.0.1:{}/upload/{id}?step=0", st.storage_port),
        );
        if let Some(min) = st.cfg.min_chunk {
            r = r.header("OCI-Chunk-Min-Length", min.to_string());
        }
        return r;
    }
    if let Some((repo, digest)) = rest.split_once("/blobs/") {
        let _ = repo;
        return match st.blobs.lock().unwrap().get(digest) {
            Some(b) => reply(200)
                .header("Docker-Content-Digest", digest)
                .body(b.clone()),
            None => Reply::error(404, "BLOB_UNKNOWN"),
        };
    }
    if let Some((repo, reference)) = rest.split_once("/manifests/") {
        let key = (repo.to_string(), reference.to_string());
        if method == "PUT" {
            let digest = sha256_digest(&body);
            let ct = head.header("content-type").unwrap_or_default().to_string();
            let mut m = st.manifests.lock().unwrap();
            m.insert(key, (ct.clone(), body.clone()));
            m.insert((repo.to_string(), digest.clone()), (ct, body));
            return reply(201)
                .header("Docker-Content-Digest", digest.clone())
                .header("Location", format!("/v2/{repo}/manifests/{digest}"));
        }
        return match st.manifests.lock().unwrap().get(&key) {
            Some((ct, b)) => reply(200)
                .header("Content-Type", ct.clone())
                .header("Docker-Content-Digest", sha256_digest(b))
                .body(b.clone()),
            None => Reply::error(404, "MANIFEST_UNKNOWN"),
        };
    }
    Reply::error(404, "NOT_FOUND")
}

fn storage_route(st: &State, head: &Head, body: Vec<u8>) -> Reply {
    let (method, target) = (head.method.as_str(), head.target.as_str());
    let problem = |p: String| st.problems.lock().unwrap().push(p);
    if head.header("authorization").is_some() {
        problem(format!(
            "credentials sent to the storage host: {method} {target}"
        ));
    }
    let Some(id) = head.path().strip_prefix("/upload/") else {
        return Reply::error(404, "NOT_FOUND");
    };
    let mut uploads = st.uploads.lock().unwrap();
    let Some(up) = uploads.get_mut(id) else {
        return Reply::error(404, "BLOB_UPLOAD_UNKNOWN");
    };
    let step_ok = head.query("step") == [up.step.to_string()];
    if !step_ok {
        problem(format!(
            "stale upload location {target} (step is {})",
            up.step
        ));
    }
    match method {
        "PATCH" => {
            let start = up.data.len() as u64;
            if body.is_empty() {
                problem(format!("empty PATCH {target}"));
                return Reply::error(400, "BLOB_UPLOAD_INVALID");
            }
            let range = head.header("content-range").unwrap_or_default().to_string();
            let expected = format!("{start}-{}", start + body.len() as u64 - 1);
            if range != expected {
                problem(format!(
                    "PATCH Content-Range {range:?}, expected {expected:?}"
                ));
                return Reply::error(416, "BLOB_UPLOAD_INVALID");
            }
            up.chunks.push(body.len() as u64);
            up.data.extend_from_slice(&body);
            up.step += 1;
            // A relative Location this time, different from the last one.
            reply(st.cfg.patch_status)
                .header("Location", format!("/upload/{id}?step={}", up.step))
                .header("Range", format!("0-{}", up.data.len() - 1))
        }
        "PUT" => {
            if !body.is_empty() && st.cfg.refuse_monolithic && up.data.is_empty() {
                return Reply::error(413, "SIZE_INVALID");
            }
            up.data.extend_from_slice(&body);
            let digest = head.query("digest").pop().unwrap_or_default();
            let actual = sha256_digest(&up.data);
            if digest != actual {
                problem(format!("commit with digest {digest}, content is {actual}"));
                return Reply::error(400, "DIGEST_INVALID");
            }
            if let (Some(min), Some((_, init))) = (st.cfg.min_chunk, up.chunks.split_last())
                && init.iter().any(|c| *c < min)
            {
                problem(format!("chunks {:?} below the minimum {min}", up.chunks));
            }
            if !up.chunks.is_empty() {
                st.chunked.lock().unwrap().push(up.chunks.clone());
            }
            let data = std::mem::take(&mut up.data);
            let repo = up.repo.clone();
            uploads.remove(id);
            st.blobs.lock().unwrap().insert(actual.clone(), data);
            reply(201)
                .header("Docker-Content-Digest", actual.clone())
                .header(
                    "Location",
                    format!("http://127.0.0.1:{}/v2/{repo}/blobs/{actual}", st.main_port),
                )
        }
        _ => Reply::error(405, "UNSUPPORTED"),
    }
}
