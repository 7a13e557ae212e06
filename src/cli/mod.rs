//! Command-line interface: clap definitions and the wiring of subcommands. No logic here:
//! the library does the work; this parses, calls, and prints.

pub mod build;
pub mod completions;
pub mod exit;
pub mod login;
pub mod output;
pub mod platforms;
pub mod size;

use clap::{Parser, Subcommand};

pub use exit::ExitCode;

/// Build container images without a daemon and push them anywhere.
#[derive(Debug, Parser)]
#[command(
    name = "ocibuild",
    version,
    about = "Build OCI images from a directory or a RUN-free Dockerfile, for any platform, and push them to any registry — no daemon, no root, nothing executed.",
    after_help = build::EXAMPLES,
    subcommand_required = true,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build CONTEXT and write the image to every -t destination (the default command).
    Build(Box<build::BuildArgs>),
    /// Check credentials for REGISTRY and store them in $DOCKER_CONFIG/config.json.
    Login(login::LoginArgs),
    /// Remove the stored credentials for REGISTRY.
    Logout(login::LogoutArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish) on stdout.
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff) on stdout: `ocibuild man > ocibuild.1`.
    #[command(hide = true)]
    Man,
}

/// Names that select a subcommand; anything else is a build (`ocibuild . -t …`).
const SUBCOMMANDS: &[&str] = &["build", "help", "login", "logout", "completions", "man"];

/// Inserts the implicit `build` subcommand so `ocibuild [OPTIONS] <CONTEXT>` works.
pub fn with_default_subcommand(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let first = args.get(1).and_then(|a| a.to_str()).map(str::to_string);
    let explicit = match first.as_deref() {
        Some(a) => SUBCOMMANDS.contains(&a) || a == "--version" || a == "-V",
        None => false,
    };
    if !explicit {
        args.insert(1.min(args.len()), "build".into());
    }
    args
}
