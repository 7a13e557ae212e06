//! `ocibuild completions <shell>` and the hidden `ocibuild man`: shell completion scripts
//! and a roff man page, both generated from the clap definitions so they never drift.

use std::io::Write;

use anyhow::Context as _;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;
use super::build::BuildArgs;

pub const COMPLETIONS_HELP: &str = "\
Install:
  bash        ocibuild completions bash > ~/.local/share/bash-completion/completions/ocibuild
  zsh         ocibuild completions zsh > ~/.zfunc/_ocibuild     (fpath+=(~/.zfunc))
  fish        ocibuild completions fish > ~/.config/fish/completions/ocibuild.fish
  powershell  ocibuild completions powershell >> $PROFILE
  elvish      ocibuild completions elvish >> ~/.config/elvish/rc.elv";

#[derive(Debug, Args)]
#[command(after_help = COMPLETIONS_HELP)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// The whole command line as users type it: the build flags at the top level (the
/// implicit `build`), next to the subcommands. Completions offer `ocibuild --pla<TAB>` this
/// way, and the man page documents every build flag on the first page.
pub fn full_command() -> clap::Command {
    let cmd = BuildArgs::augment_args(Cli::command())
        .args_conflicts_with_subcommands(true)
        .subcommand_required(false)
        .override_usage(
            "ocibuild [OPTIONS] -t <DEST> <CONTEXT>\n       ocibuild build [OPTIONS] -t <DEST> <CONTEXT>\n       ocibuild <COMMAND>",
        );
    cmd.disable_help_subcommand(true)
}

/// Writes the completion script for `args.shell` to stdout.
pub fn run(args: &CompletionsArgs) -> anyhow::Result<()> {
    // Generated into memory first: the generators panic on a write error, and a closed
    // stdout (`| head`) is not worth a panic.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut full_command(), "ocibuild", &mut script);
    write_stdout(&script)
}

/// Writes the man page (roff) to stdout: `ocibuild man > ocibuild.1`.
pub fn man() -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(full_command())
        .manual("User Commands")
        .render(&mut page)
        .context("cannot render the man page")?;
    page.extend_from_slice(MAN_EXTRA.as_bytes());
    write_stdout(&page)
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

/// Sections clap does not know about, in plain roff.
const MAN_EXTRA: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
success
.TP
\fB1\fR
other failure (local I/O, internal error)
.TP
\fB2\fR
usage: bad flag, bad reference, bad platform
.TP
\fB3\fR
input: context missing or unreadable, forbidden file, base lacks the platform
.TP
\fB4\fR
registry or network: unreachable, timeout, 5xx, not found, protocol error
.TP
\fB5\fR
authentication refused or missing
.TP
\fB6\fR
TLS: untrusted or invalid certificate
.SH OUTPUT
stdout gets one line per destination, \fIdest\fR@sha256:\fIhex\fR, and nothing else.
Logs and progress go to stderr: progress bars on a terminal, timestamped plain lines
otherwise, nothing with \fB\-q\fR on success.
.SH ENVIRONMENT
.TP
\fBSOURCE_DATE_EPOCH\fR
mtime of every layer entry, the config's created time and the
org.opencontainers.image.created annotation (default 0, 1970\-01\-01T00:00:00Z).
.TP
\fBDOCKER_CONFIG\fR
directory of config.json with registry credentials (default ~/.docker).
.TP
\fBREGISTRY_AUTH_FILE\fR
podman\-style auth.json.
.TP
\fBXDG_CACHE_HOME\fR
cache root ($XDG_CACHE_HOME/ocibuild).
.TP
\fBNO_COLOR\fR
when set and not empty, no colours on a terminal.
"#;
