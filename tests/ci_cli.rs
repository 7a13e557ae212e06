//! Issue 7: the command line as other tools see it — `--help` with examples, shell
//! completions generated from the clap definitions, and the man page.

mod common;

use std::path::Path;

use common::TestEnv;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn help_lists_examples_and_ci_flags() {
    let env = TestEnv::new();
    for args in [&["--help"][..], &["build", "--help"], &["-h"]] {
        let out = env.run(args);
        out.assert_success();
        for want in [
            "Examples:",
            "ocibuild ./dist",
            "--digest-file",
            "--metadata-file",
            "--no-provenance",
            "Exit codes:",
            "completions",
        ] {
            assert!(
                out.stdout.contains(want),
                "{args:?} lacks {want:?}:\n{}",
                out.stdout
            );
        }
    }
    let out = env.run(&["completions", "--help"]);
    out.assert_success();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        assert!(out.stdout.contains(shell), "{}", out.stdout);
    }
}

#[test]
fn completions_and_man_page() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = env.run(&["completions", shell]);
        out.assert_success();
        assert_eq!(out.stderr, "");
        // fish writes `-l platform`, the others `--platform`.
        for flag in ["platform", "metadata-file", "no-provenance", "completions"] {
            assert!(out.stdout.contains(flag), "{shell} script lacks {flag}");
        }
    }
    // bash really loads it and registers the function.
    let script = env.work().join("ocibuild.bash");
    std::fs::write(&script, env.run(&["completions", "bash"]).stdout).unwrap();
    let out = common::run(std::process::Command::new("bash").args([
        "-c",
        &format!("source {} && complete -p ocibuild", s(&script)),
    ]));
    out.assert_success();
    assert!(out.stdout.contains("ocibuild"), "{}", out.stdout);

    env.run(&["completions", "tcsh"])
        .assert_failure(2, &["tcsh"]);

    let out = env.run(&["man"]);
    out.assert_success();
    assert!(out.stdout.contains(".TH ocibuild 1"), "{}", out.stdout);
    for want in [
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        "\\-\\-metadata\\-file",
        "\\-\\-platform",
        "EXIT STATUS",
        "SOURCE_DATE_EPOCH",
        "Examples:",
    ] {
        assert!(out.stdout.contains(want), "man page lacks {want:?}");
    }
    // `man` is hidden: not offered in help.
    let help = env.run(&["help"]);
    assert!(!help.stdout.contains("man "), "{}", help.stdout);
}
