//! A fault-injecting HTTP/1.1 proxy in front of a registry, on a loopback port: plain
//! threads, at most [`MAX_CONNECTIONS`] at once. It reads each request head (and its
//! `Content-Length` body) to apply rules; responses are copied through as bytes.
//!
//! Faults: answer matching requests with `503` + `Retry-After` without asking upstream;
//! reset a matching request after part of its body (the registry is then "down" — every
//! connection reset — for a while or for good); delay the answer to matching requests;
//! slow every forwarded piece. Every request seen is recorded (method, target, body size).

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::http1::read_head;

pub const MAX_CONNECTIONS: usize = 64;

/// Which requests a rule applies to.
#[derive(Clone, Debug, Default)]
pub struct Match {
    pub method: Option<&'static str>,
    /// A substring of the request target (path and query).
    pub target: Option<&'static str>,
    /// Only requests whose body is at least this long.
    pub min_body: u64,
}

impl Match {
    pub fn any() -> Match {
        Match::default()
    }

    /// `method` requests with a body of at least `min_body` bytes.
    pub fn body(method: &'static str, min_body: u64) -> Match {
        Match {
            method: Some(method),
            target: None,
            min_body,
        }
    }

    fn hits(&self, r: &Seen) -> bool {
        self.method.is_none_or(|m| m == r.method)
            && self.target.is_none_or(|t| r.target.contains(t))
            && r.body_len >= self.min_body
    }
}

/// A request the proxy saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub body_len: u64,
}

#[derive(Default)]
struct Rules {
    /// (which, how many more, Retry-After seconds)
    unavailable: Option<(Match, usize, u64)>,
    /// (which, body bytes to forward first, then down for: None = for good)
    reset: Option<(Match, u64, Option<Duration>)>,
    /// (which, how many more, delay)
    delay: Option<(Match, usize, Duration)>,
    throttle: Option<Duration>,
    down_until: Option<Instant>,
    down_forever: bool,
}

impl Rules {
    fn down(&self) -> bool {
        self.down_forever || self.down_until.is_some_and(|t| Instant::now() < t)
    }
}

struct Conn {
    id: u64,
    client: TcpStream,
    upstream: TcpStream,
    killed: Arc<AtomicBool>,
}

struct Shared {
    upstream: u16,
    rules: Mutex<Rules>,
    seen: Mutex<Vec<Seen>>,
    conns: Mutex<Vec<Conn>>,
    active: AtomicUsize,
    next_id: AtomicU64,
}

pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy on a free loopback port forwarding to `127.0.0.1:<upstream>`.
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream,
            rules: Mutex::new(Rules::default()),
            seen: Mutex::new(Vec::new()),
            conns: Mutex::new(Vec::new()),
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::spawn(move || accept_loop(&listener, &shared, &stop))
        };
        Proxy {
            port,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The next `times` matching requests get `503` with `Retry-After: <secs>`.
    pub fn unavailable(&self, m: Match, times: usize, retry_after_secs: u64) {
        self.rules().unavailable = Some((m, times, retry_after_secs));
    }

    /// The next matching request is reset after `after` bytes of its body; then every
    /// connection is reset for `down_for` (None: for good).
    pub fn reset_mid_body(&self, m: Match, after: u64, down_for: Option<Duration>) {
        self.rules().reset = Some((m, after, down_for));
    }

    /// The answers to the next `times` matching requests are held back for `by`.
    pub fn delay_answers(&self, m: Match, times: usize, by: Duration) {
        self.rules().delay = Some((m, times, by));
    }

    /// Every piece forwarded (either way) waits `by` first.
    pub fn throttle(&self, by: Duration) {
        self.rules().throttle = Some(by);
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn clear_seen(&self) {
        self.shared.seen.lock().unwrap().clear();
    }

    fn rules(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.shared.rules.lock().unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        kill_all(&self.shared);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let Ok((client, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        let _ = client.set_nonblocking(false);
        let refuse = shared.rules.lock().unwrap().down()
            || shared.active.load(Ordering::SeqCst) >= MAX_CONNECTIONS;
        if refuse {
            reset(&client);
            continue;
        }
        let Ok(upstream) = TcpStream::connect(("127.0.0.1", shared.upstream)) else {
            reset(&client);
            continue;
        };
        shared.active.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        std::thread::spawn(move || {
            handle(client, upstream, &shared);
            shared.active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Closes `s` with a TCP reset (SO_LINGER 0) instead of a FIN.
fn reset(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn kill(c: &Conn) {
    c.killed.store(true, Ordering::SeqCst);
    reset(&c.client);
    let _ = c.client.shutdown(Shutdown::Read);
    let _ = c.upstream.shutdown(Shutdown::Both);
}

fn kill_all(shared: &Shared) {
    for c in shared.conns.lock().unwrap().drain(..) {
        kill(&c);
    }
}

fn handle(client: TcpStream, upstream: TcpStream, shared: &Arc<Shared>) {
    let killed = Arc::new(AtomicBool::new(false));
    let hold_ms = Arc::new(AtomicU64::new(0));
    let (Ok(c2), Ok(u2), Ok(c3), Ok(u3)) = (
        client.try_clone(),
        upstream.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
    ) else {
        return;
    };
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    shared.conns.lock().unwrap().push(Conn {
        id,
        client: c3,
        upstream: u3,
        killed: killed.clone(),
    });
    let back = {
        let (killed, hold_ms, shared) = (killed.clone(), hold_ms.clone(), shared.clone());
        std::thread::spawn(move || copy_back(u2, c2, &killed, &hold_ms, &shared))
    };
    forward(client, upstream, shared, &killed, &hold_ms);
    let _ = back.join();
    shared.conns.lock().unwrap().retain(|c| c.id != id);
}

/// Upstream → client, holding back an answer when asked to.
fn copy_back(
    mut upstream: TcpStream,
    mut client: TcpStream,
    killed: &AtomicBool,
    hold_ms: &AtomicU64,
    shared: &Shared,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match upstream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let hold = hold_ms.swap(0, Ordering::SeqCst);
        if hold > 0 {
            std::thread::sleep(Duration::from_millis(hold));
        }
        let throttle = shared.rules.lock().unwrap().throttle;
        if let Some(t) = throttle {
            std::thread::sleep(t);
        }
        if killed.load(Ordering::SeqCst) || client.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    if !killed.load(Ordering::SeqCst) {
        let _ = client.shutdown(Shutdown::Write);
    }
}

/// Client → upstream, one request at a time, applying the rules.
fn forward(
    client: TcpStream,
    mut upstream: TcpStream,
    shared: &Shared,
    killed: &AtomicBool,
    hold_ms: &AtomicU64,
) {
    let mut reader = BufReader::new(match client.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut client = client;
    while let Some(head) = read_head(&mut reader) {
        let seen = Seen {
            method: head.method.clone(),
            target: head.target.clone(),
            body_len: head.content_length(),
        };
        let chunked = head.chunked();
        shared.seen.lock().unwrap().push(seen.clone());
        let mut rules = shared.rules.lock().unwrap();
        if rules.down() || killed.load(Ordering::SeqCst) {
            drop(rules);
            kill_all(shared);
            return;
        }
        if let Some((m, left, secs)) = &mut rules.unavailable
            && *left > 0
            && m.hits(&seen)
        {
            *left -= 1;
            let secs = *secs;
            drop(rules);
            let _ = skip(&mut reader, seen.body_len);
            let body = r#"{"errors":[{"code":"UNAVAILABLE","message":"try again later"}]}"#;
            let _ = write!(
                client,
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {secs}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.shutdown(Shutdown::Write);
            let _ = upstream.shutdown(Shutdown::Both);
            return;
        }
        let mut cut = None;
        if let Some((m, after, down_for)) = &rules.reset
            && m.hits(&seen)
        {
            cut = Some((*after, *down_for));
            rules.reset = None;
        }
        if let Some((m, left, by)) = &mut rules.delay
            && *left > 0
            && m.hits(&seen)
        {
            *left -= 1;
            hold_ms.store(by.as_millis() as u64, Ordering::SeqCst);
        }
        let throttle = rules.throttle;
        drop(rules);
        if upstream.write_all(&head.raw).is_err() {
            return;
        }
        if let Some((after, down_for)) = cut {
            let _ = copy_n(
                &mut reader,
                &mut upstream,
                after.min(seen.body_len),
                throttle,
            );
            let mut rules = shared.rules.lock().unwrap();
            match down_for {
                Some(d) => rules.down_until = Some(Instant::now() + d),
                None => rules.down_forever = true,
            }
            drop(rules);
            kill_all(shared);
            return;
        }
        if chunked {
            // Not parsed: pass the rest of the connection through as it is.
            let _ = std::io::copy(&mut reader, &mut upstream);
            return;
        }
        if copy_n(&mut reader, &mut upstream, seen.body_len, throttle).is_err() {
            return;
        }
    }
    let _ = upstream.shutdown(Shutdown::Write);
}

fn copy_n(
    reader: &mut BufReader<TcpStream>,
    to: &mut TcpStream,
    mut n: u64,
    throttle: Option<Duration>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    while n > 0 {
        let want = (buf.len() as u64).min(n) as usize;
        let got = reader.read(&mut buf[..want])?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(t) = throttle {
            std::thread::sleep(t);
        }
        to.write_all(&buf[..got])?;
        n -= got as u64;
    }
    Ok(())
}

fn skip(reader: &mut BufReader<TcpStream>, n: u64) -> std::io::Result<u64> {
    std::io::copy(&mut reader.take(n), &mut std::io::sink())
}
