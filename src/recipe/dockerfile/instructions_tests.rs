//! Tests of instruction typing.

use super::*;
use crate::recipe::dockerfile::lexer::lex;

fn one(text: &str) -> Result<Instruction, DfError> {
    let l = lex(text).unwrap();
    parse(&l.instructions[0], '\\').map(|l| l.inst)
}

#[test]
fn typed_forms() {
    assert_eq!(
        one("from --platform=$BUILDPLATFORM golang:1.22 As Build").unwrap(),
        Instruction::From {
            image: "golang:1.22".into(),
            alias: Some("build".into()),
            platform: Some("$BUILDPLATFORM".into())
        }
    );
    assert_eq!(
        one("ENV A=1 B=\"two words\"").unwrap(),
        Instruction::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "\"two words\"".into())
        ])
    );
    assert_eq!(
        one("ENV LEGACY value with  spaces").unwrap(),
        Instruction::Env(vec![("LEGACY".into(), "value with  spaces".into())])
    );
    assert_eq!(
        one("ARG A B=2").unwrap(),
        Instruction::Arg(vec![("A".into(), None), ("B".into(), Some("2".into()))])
    );
    assert_eq!(
        one("CMD [\"a\", \"b\"]").unwrap(),
        Instruction::Cmd(Command::Exec(vec!["a".into(), "b".into()]))
    );
    assert_eq!(
        one("ENTRYPOINT run --it").unwrap(),
        Instruction::Entrypoint(Command::Shell("run --it".into()))
    );
    assert_eq!(
        one("VOLUME [\"/a\", \"/b\"]").unwrap(),
        Instruction::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        one("VOLUME /a /b").unwrap(),
        Instruction::Volume(vec!["/a".into(), "/b".into()])
    );
    match one("COPY --from=build --chown=1:2 --chmod=755 --link --exclude=*.md --exclude=x a b /c/")
        .unwrap()
    {
        Instruction::Copy(c) => {
            assert_eq!(c.from.as_deref(), Some("build"));
            assert_eq!(c.chown.as_deref(), Some("1:2"));
            assert_eq!(c.chmod.as_deref(), Some("755"));
            assert_eq!(c.exclude, ["*.md", "x"]);
            assert_eq!(c.args, ["a", "b", "/c/"]);
        }
        other => panic!("{other:?}"),
    }
    match one("HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/").unwrap() {
        Instruction::Healthcheck(h) => {
            assert_eq!(h.interval.as_deref(), Some("5s"));
            assert_eq!(h.test, Some(Command::Shell("curl -f http://x/".into())));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        one("HEALTHCHECK NONE").unwrap(),
        Instruction::Healthcheck(Health::default())
    );
    assert_eq!(
        one("onbuild copy . /app").unwrap(),
        Instruction::OnBuild("copy . /app".into())
    );
    assert_eq!(one("RUN make").unwrap(), Instruction::Run);
    assert_eq!(
        one("USER --weird").unwrap(),
        Instruction::User("--weird".into())
    );
}

#[test]
fn refusals() {
    for (text, want) in [
        ("FROM", "requires one image"),
        ("FROM a b", "requires one image"),
        ("FRUM x", "unknown instruction: FRUM"),
        ("COPY --form=x a /b", "unknown flag --form"),
        ("COPY --from a /b", "missing a value"),
        ("COPY onlyone", "at least one source"),
        ("ADD --from=x a /b", "unknown flag --from"),
        ("CMD [\"unterminated\"", ""),
        ("CMD [\"a\",]", "malformed JSON"),
        ("ENTRYPOINT ['single']", "malformed JSON"),
        ("SHELL /bin/bash -c", "JSON form"),
        ("ENV", "at least one argument"),
        ("ENV A=1 B", "can't find ="),
        ("ENV ONLYKEY", "two arguments"),
        ("HEALTHCHECK CMD", "missing command"),
        ("HEALTHCHECK NONE x", "no other arguments"),
        ("HEALTHCHECK echo", "CMD <command> or NONE"),
        ("ONBUILD ONBUILD COPY a b", "chaining"),
        ("ONBUILD FROM x", "isn't allowed"),
        ("COPY --parents=maybe a /b", "true or false"),
        ("WORKDIR", "exactly one argument"),
    ] {
        match one(text) {
            Ok(i) if want.is_empty() => {
                assert!(matches!(i, Instruction::Cmd(Command::Shell(_))), "{text}")
            }
            Ok(i) => panic!("{text}: expected an error, got {i:?}"),
            Err(e) => {
                assert!(e.message.contains(want), "{text}: {}", e.message);
                assert_eq!(e.line, 1);
            }
        }
    }
}
