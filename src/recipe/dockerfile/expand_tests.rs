//! Tests of variable expansion and word splitting.

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "A" => Some("apple".into()),
        "EMPTY" => Some(String::new()),
        "SP" => Some("x  y".into()),
        "P" => Some("/usr/local/bin/tool.tar.gz".into()),
        _ => None,
    }
}

fn w(s: &str) -> String {
    word(s, '\\', &env).unwrap()
}

#[test]
fn forms() {
    assert_eq!(w("$A"), "apple");
    assert_eq!(w("${A}s"), "apples");
    assert_eq!(w("$A-x"), "apple-x");
    assert_eq!(w("$UNSET."), ".");
    assert_eq!(w("${UNSET:-dflt}"), "dflt");
    assert_eq!(w("${EMPTY:-dflt}"), "dflt");
    assert_eq!(w("${EMPTY-dflt}"), "");
    assert_eq!(w("${UNSET-dflt}"), "dflt");
    assert_eq!(w("${A:-dflt}"), "apple");
    assert_eq!(w("${A:+alt}"), "alt");
    assert_eq!(w("${EMPTY:+alt}"), "");
    assert_eq!(w("${EMPTY+alt}"), "alt");
    assert_eq!(w("${UNSET+alt}"), "");
    assert_eq!(w("${UNSET:-${A}}"), "apple");
    assert_eq!(w("${UNSET:-a b}"), "a b");
    assert_eq!(w("${P##*/}"), "tool.tar.gz");
    assert_eq!(w("${P#*/}"), "usr/local/bin/tool.tar.gz");
    assert_eq!(w("${P%.*}"), "/usr/local/bin/tool.tar");
    assert_eq!(w("${P%%.*}"), "/usr/local/bin/tool");
    assert_eq!(w("${P%/*}"), "/usr/local/bin");
    assert!(
        word("${UNSET:?must be set}", '\\', &env)
            .unwrap_err()
            .contains("must be set")
    );
    assert!(word("${A", '\\', &env).is_err());
    assert!(word("${}", '\\', &env).is_err());
    assert!(word("${A/x/y}", '\\', &env).is_err());
    assert_eq!(w("$"), "$");
    assert_eq!(w("a$ b"), "a$ b");
    assert_eq!(w("100%"), "100%");
}

#[test]
fn quoting_and_escapes() {
    assert_eq!(w("'$A'"), "$A");
    assert_eq!(w("\"$A\""), "apple");
    assert_eq!(w("\\$A"), "$A");
    assert_eq!(w("\"a \\\" b\""), "a \" b");
    assert_eq!(w("\"a \\n b\""), "a \\n b");
    assert_eq!(w("a\\ b"), "a b");
    assert_eq!(w("\"\""), "");
    assert_eq!(word("`$A", '`', &env).unwrap(), "$A");
    assert_eq!(word("C:\\path", '`', &env).unwrap(), "C:\\path");
    assert!(word("'open", '\\', &env).is_err());
    assert!(word("\"open", '\\', &env).is_err());
}

#[test]
fn splitting() {
    let ws = |s: &str| words(s, '\\', &env).unwrap();
    assert_eq!(ws("a  b\tc"), ["a", "b", "c"]);
    assert_eq!(ws("$SP z"), ["x", "y", "z"]);
    assert_eq!(ws("\"$SP\" z"), ["x  y", "z"]);
    assert_eq!(ws("'' x"), ["", "x"]);
    assert_eq!(ws("a\\ b c"), ["a b", "c"]);
    assert!(ws("  ").is_empty());
}

#[test]
fn heredoc_bodies() {
    assert_eq!(
        heredoc("say \"$A\" '$A' \\$A \\n\n", &env).unwrap(),
        "say \"apple\" 'apple' $A \\n\n"
    );
}

#[test]
fn digit_names_and_nesting_bound() {
    // `$1x` is `$1` (unset) then `x`, as in BuildKit.
    assert_eq!(w("$1x"), "x");
    assert_eq!(w("${A:-$1b}"), "apple");
    // Reasonable nesting works; hostile nesting is an error, not a stack overflow.
    assert_eq!(w("${U1:-${U2:-${A}}}"), "apple");
    let deep = format!("{}x{}", "${U:-".repeat(20_000), "}".repeat(20_000));
    let err = word(&deep, '\\', &env).unwrap_err();
    assert!(err.contains("nested"), "{err}");
}
