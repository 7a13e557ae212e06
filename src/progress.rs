//! Progress reporting on stderr: bars on a TTY, timestamped plain lines otherwise, nothing
//! with `-q`. Never writes to stdout, which is reserved for `<dest>@sha256:…` lines.

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

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
    start: Instant,
    multi: Option<MultiProgress>,
}

impl Progress {
    /// `quiet` silences everything but errors (which the CLI prints itself); `verbosity`
    /// 1 adds per-step detail, 2 adds per-request logs.
    pub fn new(quiet: bool, verbosity: u8) -> Progress {
        let tty =
            std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
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
                start: Instant::now(),
                multi,
            }),
        }
    }

    /// A reporter that prints nothing (library use, tests).
    pub fn silent() -> Progress {
        Progress::new(true, 0)
    }

    /// A step a user wants to see (e.g. "pushed layer sha256:ab12… (3.1 MB)").
    pub fn info(&self, msg: impl Display) {
        self.line(0, msg);
    }

    /// Detail shown with `-v`.
    pub fn debug(&self, msg: impl Display) {
        self.line(1, msg);
    }

    /// Request-level logs shown with `-vv`. Callers must never pass credentials.
    pub fn trace(&self, msg: impl Display) {
        self.line(2, msg);
    }

    /// A warning, shown unless `-q`.
    pub fn warn(&self, msg: impl Display) {
        self.line(0, format_args!("warning: {msg}"));
    }

    fn line(&self, level: u8, msg: impl Display) {
        let i = &self.inner;
        if i.mode == Mode::Quiet || level > i.verbosity {
            return;
        }
        let text = match i.mode {
            Mode::Tty => format!("{msg}"),
            _ => format!("[{:>7.2}s] {msg}", i.start.elapsed().as_secs_f64()),
        };
        match &i.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }

    /// A byte counter for one blob transfer: a bar on a TTY, nothing otherwise (the
    /// caller logs a line when it is done).
    pub fn transfer(&self, label: &str, total: u64) -> Transfer {
        let bar = self.inner.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(total));
            let style = ProgressStyle::with_template(
                "{msg:>24} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}",
            )
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
