//! The `ocibuild` binary: parse arguments, call the library, print the error chain, exit.

mod cli;

use clap::Parser;

use cli::{Cli, Command, ExitCode};

// A build allocates and frees a small object per file of the context many times over
// (walks, recipes, stat index, tar headers); glibc's malloc spent a third of a no-op
// rebuild's CPU on that (bench/run.sh, perf), mimalloc a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the mimalloc v3 header bundled with libmimalloc-sys 0.1.49
/// (pinned in Cargo.toml; the crate does not name this option). Checked against its
/// neighbour, which the crate does name:
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const _: () = assert!(libmimalloc_sys::mi_option_use_numa_nodes == MI_OPTION_PURGE_DELAY + 1);

/// A build is a short process that allocates, frees and reallocates the same couple of
/// hundred MB. Two allocator defaults made the kernel redo work for it (bench/run.sh, side
/// by side with `MIMALLOC_ALLOW_THP=0 MIMALLOC_PURGE_DELAY=-1`: cold build −6 to −12 %
/// wall time, half the system time, peak RSS 187 → 155 MB; a no-op −30 % CPU):
/// * transparent huge pages, which mimalloc asks for: every first touch of a 2 MiB region
///   zeroes all of it, though a thread's heap uses a few of its 64 KiB pages (turned off
///   for this process and the programs it starts: git, credential helpers);
/// * purging freed memory after a delay (1 s in mimalloc v3): each purge is an madvise and
///   a TLB shootdown, and the next allocation faults the pages back in, zeroed.
fn tune_memory() {
    // SAFETY: prctl with integer arguments only changes how this process's (and its
    // children's) page faults are served; mi_option_set sets one integer that mimalloc
    // reads at each purge decision. Either failing leaves the defaults, only slower.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}

fn main() {
    tune_memory();
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
