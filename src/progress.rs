//! Progress reporting on stderr: bars on a TTY, timestamped plain lines otherwise, nothing
//! with `-q`. Never writes to stdout, which is reserved for `<dest>@sha256:…` lines.
//!
//! * TTY (stderr is a terminal and `TERM` is not `dumb`): one bar per blob transfer with
//!   bytes and rate, log lines printed above the bars, colour unless `NO_COLOR` is set.
//! * Plain (CI, pipes, files): `[   1.23s] message` lines, never an escape sequence.
//! * Every line goes through [`redact`], so a token that slips into a message is not shown.

use std::borrow::Cow;
use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Quiet,
    Plain,
    Tty,
}

/// Cheap to clone; shared by every task of a build.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    mode: Mode,
    verbosity: u8,
    /// ANSI colours allowed: a TTY and no `NO_COLOR` (<https://no-color.org>).
    color: bool,
    start: Instant,
    multi: Option<MultiProgress>,
}

const YELLOW: &str = "\x1b[33m";
const GREEN: &str = "\x1b[32m";
const RESET: &str = "\x1b[0m";

impl Progress {
    /// `quiet` silences everything but errors (which the CLI prints itself); `verbosity`
    /// 1 adds per-step detail, 2 adds per-request logs.
    pub fn new(quiet: bool, verbosity: u8) -> Progress {
        let term = std::env::var_os("TERM");
        let tty = std::io::stderr().is_terminal() && term.is_none_or(|t| t != "dumb");
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let mode = if quiet {
            Mode::Quiet
        } else if tty {
            Mode::Tty
        } else {
            Mode::Plain
        };
        let multi = (mode == Mode::Tty)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress {
            inner: Arc::new(Inner {
                mode,
                verbosity,
                color: mode == Mode::Tty && !no_color,
                start: Instant::now(),
                multi,
            }),
        }
    }

    /// A reporter that prints nothing (library use, tests).
    pub fn silent() -> Progress {
        Progress::new(true, 0)
    }

    /// Time since this reporter was made (the start of the build).
    pub fn elapsed(&self) -> Duration {
        self.inner.start.elapsed()
    }

    /// A step a user wants to see (e.g. "pushed layer sha256:ab12… (3.1 MB)").
    pub fn info(&self, msg: impl Display) {
        self.line(0, msg);
    }

    /// Detail shown with `-v`.
    pub fn debug(&self, msg: impl Display) {
        self.line(1, msg);
    }

    /// Request-level logs shown with `-vv`. Callers must never pass credentials (and
    /// [`redact`] masks the usual shapes of them in case one slips through).
    pub fn trace(&self, msg: impl Display) {
        self.line(2, msg);
    }

    /// A warning, shown unless `-q`.
    pub fn warn(&self, msg: impl Display) {
        let (on, off) = self.paint(YELLOW);
        self.line(0, format_args!("{on}warning:{off} {msg}"));
    }

    /// The one-line result at the end of a run, shown unless `-q`; on a TTY it is written
    /// after every bar has gone.
    pub fn summary(&self, msg: impl Display) {
        let (on, off) = self.paint(GREEN);
        self.line(0, format_args!("{on}done:{off} {msg}"));
    }

    fn paint(&self, color: &'static str) -> (&'static str, &'static str) {
        if self.inner.color {
            (color, RESET)
        } else {
            ("", "")
        }
    }

    fn line(&self, level: u8, msg: impl Display) {
        let i = &self.inner;
        if i.mode == Mode::Quiet || level > i.verbosity {
            return;
        }
        let msg = msg.to_string();
        let msg = redact(&msg);
        let text = match i.mode {
            Mode::Tty => msg.into_owned(),
            _ => format!("[{:>7.2}s] {msg}", i.start.elapsed().as_secs_f64()),
        };
        let write = || {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        };
        match &i.multi {
            // Bars are cleared, the line written with a real newline, the bars redrawn
            // below it (`println` would pad the line to the terminal width instead).
            Some(m) => m.suspend(write),
            None => write(),
        }
    }

    /// A byte counter for one blob transfer: a bar on a TTY (label, bytes, total, rate),
    /// nothing otherwise (the caller logs a line when it is done).
    pub fn transfer(&self, label: &str, total: u64) -> Transfer {
        let color = self.inner.color;
        let bar = self.inner.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(total));
            let template = if color {
                "{msg:>24} [{bar:30.cyan/blue}] {decimal_bytes:>9}/{decimal_total_bytes:<9} {decimal_bytes_per_sec:>11}"
            } else {
                "{msg:>24} [{bar:30}] {decimal_bytes:>9}/{decimal_total_bytes:<9} {decimal_bytes_per_sec:>11}"
            };
            let style = ProgressStyle::with_template(template)
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(label.to_string());
            bar
        });
        Transfer { bar }
    }
}

/// Progress of one transfer.
pub struct Transfer {
    bar: Option<ProgressBar>,
}

impl Transfer {
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Human-readable byte count for log lines.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Human-readable duration for the summary line: `850ms`, `1.2s`, `2m05s`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

const MASK: &str = "<redacted>";

/// Query parameters whose values are secrets (registry tokens, S3/Azure/GCS signed URLs
/// that blob downloads redirect to).
fn secret_param(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "sig"
        || ["token", "signature", "secret", "password", "credential"]
            .iter()
            .any(|s| k.contains(s))
}

/// Masks credentials in a log line: `Bearer …`/`Basic …` values, URL user info
/// (`https://user:pass@host` → `https://<redacted>@host`) and secret query parameters.
pub fn redact(line: &str) -> Cow<'_, str> {
    if !line.contains("://")
        && !line.contains('=')
        && !line.to_ascii_lowercase().contains("bearer ")
        && !line.to_ascii_lowercase().contains("basic ")
    {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut words = line.split_inclusive(char::is_whitespace).peekable();
    while let Some(w) = words.next() {
        let word = w.trim_end();
        let lower = word.to_ascii_lowercase();
        out.push_str(&redact_word(word));
        out.push_str(&w[word.len()..]);
        // The word after an auth scheme is the credential itself.
        if (lower.ends_with("bearer") || lower.ends_with("basic"))
            && let Some(next) = words.peek()
            && looks_like_credential(next.trim_end())
        {
            let next = next.trim_end().to_string();
            let tail = words.next().map(|n| n[next.len()..].to_string());
            out.push_str(MASK);
            out.push_str(&tail.unwrap_or_default());
        }
    }
    Cow::Owned(out)
}

/// Base64 / JWT / opaque token shapes, long enough not to be an ordinary word.
fn looks_like_credential(w: &str) -> bool {
    w.len() >= 8
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=._-~".contains(&b))
}

fn redact_word(word: &str) -> String {
    let mut w = word.to_string();
    if let Some(scheme_end) = w.find("://") {
        let auth_start = scheme_end + 3;
        let auth_end = w[auth_start..]
            .find(['/', '?', '#'])
            .map_or(w.len(), |i| auth_start + i);
        if let Some(at) = w[auth_start..auth_end].rfind('@') {
            w.replace_range(auth_start..auth_start + at, MASK);
        }
    }
    // key=value pairs in a query string or a `k=v` log field.
    let mut out = String::with_capacity(w.len());
    let mut rest = w.as_str();
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq]
            .rfind(['?', '&', ' ', ',', ';', '('])
            .map_or(0, |i| i + 1);
        let key = &rest[key_start..eq];
        let val_end = rest[eq + 1..]
            .find(['&', ',', ';', ')', '"', '\''])
            .map_or(rest.len(), |i| eq + 1 + i);
        out.push_str(&rest[..=eq]);
        if secret_param(key) && val_end > eq + 1 {
            out.push_str(MASK);
        } else {
            out.push_str(&rest[eq + 1..val_end]);
        }
        rest = &rest[val_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        let cases = [
            (
                "GET https://u:p@reg.example/v2/ 200",
                "GET https://<redacted>@reg.example/v2/ 200",
            ),
            (
                "Authorization: Bearer abc.def.ghi sent",
                "Authorization: Bearer <redacted> sent",
            ),
            ("auth basic dXNlcjpwYXNz", "auth basic <redacted>"),
            (
                "GET https://s3.example/blob?X-Amz-Signature=abc&X-Amz-Date=1 302",
                "GET https://s3.example/blob?X-Amz-Signature=<redacted>&X-Amz-Date=1 302",
            ),
            (
                "token request https://auth.example/token?service=reg&scope=repository:a:pull",
                "token request https://auth.example/token?service=reg&scope=repository:a:pull",
            ),
            (
                "POST /token grant_type=password&password=hunter2",
                "POST /token grant_type=password&password=<redacted>",
            ),
            (
                "pushed layer sha256:ab12 (3.1 MB)",
                "pushed layer sha256:ab12 (3.1 MB)",
            ),
            (
                "using basic auth for 127.0.0.1:5000",
                "using basic auth for 127.0.0.1:5000",
            ),
            ("access_token=xyz", "access_token=<redacted>"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }

    #[test]
    fn formats_durations() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(human_duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2m05s");
    }
}
