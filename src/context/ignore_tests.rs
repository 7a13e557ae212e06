//! Tests of the .dockerignore matcher.

use super::*;

fn ig(text: &str) -> Ignore {
    Ignore::parse(text).unwrap()
}

#[test]
fn docker_rules() {
    let i = ig("# comment\n*.md\n!README.md\n/build\n**/node_modules\ntemp?\n*/temp*\n");
    assert!(i.is_ignored("notes.md"));
    assert!(!i.is_ignored("README.md"));
    assert!(!i.is_ignored("docs/x.md"), "*.md only matches at the top");
    assert!(i.is_ignored("build"));
    assert!(
        i.is_ignored("build/out/a.o"),
        "everything under a matched dir"
    );
    assert!(!i.is_ignored("src/build"));
    assert!(i.is_ignored("node_modules/x/y.js"));
    assert!(i.is_ignored("a/b/node_modules"));
    assert!(i.is_ignored("tempa"));
    assert!(!i.is_ignored("tempab"));
    assert!(i.is_ignored("somedir/temporary.txt"));
    assert!(!i.is_ignored("a/b/temporary.txt"));
    assert!(!i.is_ignored("# comment"));
}

#[test]
fn order_matters_and_exceptions() {
    let i = ig("*\n!src\nsrc/secret\n");
    assert!(i.is_ignored("Dockerfile"));
    assert!(!i.is_ignored("src"));
    assert!(!i.is_ignored("src/a.rs"));
    assert!(i.is_ignored("src/secret"));
    assert!(i.is_ignored("src/secret/key"));
    let j = ig("src/secret\n*\n!src\n");
    assert!(!j.is_ignored("src/secret"), "the last match wins");
    let k = ig("**\n!**/*.py\n");
    assert!(!k.is_ignored("a/b/c.py"));
    assert!(k.is_ignored("a/b/c.txt"));
    let l = ig("**/*.log\n  #not a comment  \n");
    assert!(l.is_ignored("x.log") && l.is_ignored("a/b/x.log"));
    assert!(l.is_ignored("#not a comment"));
}

#[test]
fn cleaning_and_errors() {
    let i = ig("./a/../b/\n/c//d\n");
    assert_eq!(i.patterns(), ["b", "c/d"]);
    assert!(i.is_ignored("b/x") && i.is_ignored("c/d"));
    assert!(Ignore::parse("!\n").is_err());
    assert!(Ignore::parse("[\n").is_err());
    assert!(Ignore::parse("a\\").is_err());
    let e = ig("a\\*b\n[ab]c\n");
    assert!(e.is_ignored("a*b") && !e.is_ignored("axb"));
    assert!(e.is_ignored("bc"));
}

#[test]
fn hostile_patterns_are_fast() {
    let star = "*a".repeat(30) + "b";
    let path = "a".repeat(200);
    let t = std::time::Instant::now();
    let i = Ignore::new(&[star.as_str(), "**/**/**/**/**/**/x"]).unwrap();
    assert!(!i.is_ignored(&path));
    assert!(!i.is_ignored(&"a/".repeat(100)));
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn plain_names_match_themselves_and_what_is_below() {
    let i = ig("node_modules\ndist/app\n.git\n");
    for yes in [
        "node_modules",
        "node_modules/x/y.js",
        "dist/app",
        "dist/app/a/b",
        ".git/HEAD",
    ] {
        assert!(i.is_ignored(yes), "{yes}");
    }
    for no in [
        "node_modules2",
        "a/node_modules",
        "dist",
        "dist/apps",
        "dist/ap",
        ".gitignore",
    ] {
        assert!(!i.is_ignored(no), "{no}");
    }
    // The same answers as the general matcher gives a pattern with a wildcard in it.
    let j = ig("node_module?\ndist/ap[p]\n");
    for p in [
        "node_modules/x",
        "node_modules2",
        "dist/app/a",
        "dist/apps",
        "a/node_modules",
    ] {
        assert_eq!(i.is_ignored(p), j.is_ignored(p), "{p}");
    }
}

#[test]
fn the_literal_prefilter_keeps_every_answer() {
    let parts = |p: &str| compile(p).unwrap();
    assert_eq!(longest_literal(&parts("**/*.map")), ".map");
    assert_eq!(longest_literal(&parts("a*bcd?[xy]ef")), "bcd");
    assert_eq!(longest_literal(&parts("**/test/**/*.snap")), "test/");
    assert_eq!(longest_literal(&parts("*")), "");
    assert_eq!(longest_literal(&parts("\\*é*")), "*é");
    // The prefilter only skips rules the matcher would refuse: every answer is the
    // matcher's alone (parents included).
    let patterns = [
        "*.md",
        "**/*.map",
        "a*bcd?[xy]ef",
        "**/test/**/*.snap",
        "node_modules/.cache",
        "*",
        "**",
        "x/**",
        "[^a]*.js",
        "\\*é*",
        "dir/*/deep",
    ];
    let paths = [
        "README.md",
        "docs/a.md",
        "a.md/inner",
        "lib/x.js.map",
        "x.map/y",
        "abcdxef",
        "abcdyef/z",
        "src/test/u/v.snap",
        "test/s.snap",
        "node_modules/.cache/k",
        "b.js",
        "ab.js",
        "*é",
        "*éz/q",
        "dir/a/deep/b",
        "dir/a/b/deep",
        "plain",
    ];
    let mut hits = 0;
    for pattern in patterns {
        let rules = Ignore::new(&[pattern]).unwrap();
        let rule = &rules.rules[0];
        for path in paths {
            assert_eq!(
                rules.is_ignored(path),
                matches(&rule.parts, path),
                "{pattern} on {path}"
            );
            hits += usize::from(rules.is_ignored(path));
        }
    }
    // Both answers occur: `*.md` takes README.md and a.md/inner, `**/*.map` x.map/y, …
    assert!(
        (20..100).contains(&hits),
        "{hits} of {} ignored",
        patterns.len() * paths.len()
    );
}
