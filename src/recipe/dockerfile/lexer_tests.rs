//! Tests of the Dockerfile lexer.

use super::*;

fn kw(l: &Lexed) -> Vec<(usize, &str, &str)> {
    l.instructions
        .iter()
        .map(|i| (i.line, i.keyword.as_str(), i.rest.as_str()))
        .collect()
}

#[test]
fn comments_continuations_and_lines() {
    let text = "# syntax=docker/dockerfile:1\n# escape=\\\n\n# a comment\nfrom  alpine AS b\n\
                ENV A=1 \\\n  # inside\n\n    B=2\nCOPY a \\\n b /c/\n  \n\tlabel x=y\nEXPOSE 80 \\";
    let l = lex(text).unwrap();
    assert_eq!(l.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(
        kw(&l),
        [
            (5, "from", "alpine AS b"),
            (6, "env", "A=1     B=2"),
            (10, "copy", "a  b /c/"),
            (13, "label", "x=y"),
            (14, "expose", "80"),
        ]
    );
}

#[test]
fn escape_directive() {
    let l = lex("# escape=`\nFROM x\nCOPY a `\n  b /\nRUN dir c:\\\n").unwrap();
    assert_eq!(l.directives.escape, '`');
    assert_eq!(kw(&l)[1], (3, "copy", "a   b /"));
    assert_eq!(kw(&l)[2], (5, "run", "dir c:\\"));
    // A directive after a comment or blank line is just a comment.
    let late = lex("# hello\n# escape=`\nFROM x\n").unwrap();
    assert_eq!(late.directives.escape, '\\');
    assert!(lex("# escape=x\nFROM x\n").is_err());
    assert!(lex("# escape=`\n# escape=\\\nFROM x\n").is_err());
}

#[test]
fn heredocs() {
    let text = "FROM x\nCOPY <<EOF <<-'TABS' /dst/\nhello $A\nEOF\n\tindented\n\tTABS\nENV X=1\nRUN <<EOF\nfoo\n";
    let err = lex(text).unwrap_err();
    assert_eq!(err.line, 8, "{}", err.message);
    let l = lex(&text.replace("RUN <<EOF\nfoo\n", "")).unwrap();
    let copy = &l.instructions[1];
    assert_eq!(copy.heredocs.len(), 2);
    assert_eq!(copy.heredocs[0].name, "EOF");
    assert_eq!(copy.heredocs[0].content, "hello $A\n");
    assert!(copy.heredocs[0].expand);
    assert_eq!(copy.heredocs[1].content, "indented\n");
    assert!(!copy.heredocs[1].expand);
    assert_eq!(kw(&l)[2], (7, "env", "X=1"));
    // Heredoc markers only count for COPY, ADD and RUN.
    let env = lex("FROM x\nENV A=<<EOF\n").unwrap();
    assert!(env.instructions[1].heredocs.is_empty());
}
