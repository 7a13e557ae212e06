//! The `ocibuild` binary: parse arguments, call the library, print the error chain, exit.

mod cli;

use clap::Parser;

use cli::{Cli, Command, ExitCode};

// A build allocates and frees a small object per file of the context many times over
// (walks, recipes, stat index, tar headers); glibc's malloc spent a third of a no-op
// rebuild's CPU on that (bench/run.sh, perf), mimalloc a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = cli::with_default_subcommand(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            // clap prints help/version to stdout with code 0, and usage errors with code 2.
            let _ = e.print();
            std::process::exit(if e.use_stderr() {
                ExitCode::Usage as i32
            } else {
                0
            });
        }
    };
    let result = match &cli.command {
        Command::Build(args) => cli::build::run(args),
        Command::Login(args) => cli::login::run_login(args),
        Command::Logout(args) => cli::login::run_logout(args),
        Command::Completions(args) => cli::completions::run(args),
        Command::Man => cli::completions::man(),
    };
    if let Err(err) = result {
        // Errors can quote URLs (ADD sources, redirects): credentials in them are masked
        // like every other line we print.
        let redact = |s: String| ocibuild::progress::redact(&s).into_owned();
        eprintln!("error: {}", redact(err.to_string()));
        for cause in err.chain().skip(1) {
            eprintln!("  caused by: {}", redact(cause.to_string()));
        }
        std::process::exit(cli::exit::classify(&err) as i32);
    }
}
