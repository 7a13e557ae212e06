//! Tests of the Dockerfile front end through the public entry points.

use std::fs;
use std::path::Path;

use super::super::{BaseInfo, DockerfileOptions, base_images, recipe, recipe_with};
use crate::image::config::ConfigEdit;
use crate::image::{Platform, Reference};
use crate::layer::EntryKind;
use crate::recipe::{Base, CopySource, Owner, Recipe, RecipeError, Step};

fn setup(dockerfile: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, DockerfileOptions) {
    let d = tempfile::tempdir().unwrap();
    for (f, c) in files {
        let p = d.path().join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, c).unwrap();
    }
    fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    let opts = DockerfileOptions {
        context: d.path().to_path_buf(),
        dockerfile: d.path().join("Dockerfile"),
        build_args: Vec::new(),
        target_stage: None,
        overrides: Default::default(),
    };
    (d, opts)
}

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

fn build(df: &str, files: &[(&str, &str)]) -> Result<Recipe, RecipeError> {
    let (_d, o) = setup(df, files);
    recipe(&o, &amd64())
}

fn edits(r: &Recipe) -> Vec<ConfigEdit> {
    r.stages
        .last()
        .unwrap()
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Config { edit, .. } => Some(edit.clone()),
            _ => None,
        })
        .collect()
}

fn layer_paths(s: &Step) -> Vec<String> {
    match s {
        Step::Layer(l) => l.entries.iter().map(|e| e.path.clone()).collect(),
        other => panic!("not a layer: {other:?}"),
    }
}

fn err_of(df: &str, files: &[(&str, &str)]) -> String {
    match build(df, files) {
        Err(e) => e.to_string(),
        Ok(r) => panic!("expected an error for {df:?}, got {r:?}"),
    }
}

#[test]
fn args_env_and_platform_args() {
    let df = "ARG BASE=scratch\nARG TAG\nFROM ${BASE}\nARG TARGETARCH\nARG V=1.0\nENV APP=/srv/$TARGETARCH VER=$V\n\
              ENV OLD=$APP APP=/changed\nLABEL version=\"$VER\" \"x y\"=z\nENV PATH=/opt/bin:$PATH\nARG NOTSET\nLABEL a=${NOTSET:-dflt} b=${TAG:-none}\n";
    let r = build(df, &[]).unwrap();
    assert_eq!(r.stages[0].base, Base::Scratch);
    let e = edits(&r);
    assert!(e.contains(&ConfigEdit::Env("APP".into(), "/srv/amd64".into())));
    assert!(e.contains(&ConfigEdit::Env("VER".into(), "1.0".into())));
    assert!(
        e.contains(&ConfigEdit::Env("OLD".into(), "/srv/amd64".into())),
        "expanded before the line"
    );
    assert!(e.contains(&ConfigEdit::Label("version".into(), "1.0".into())));
    assert!(e.contains(&ConfigEdit::Label("x y".into(), "z".into())));
    assert!(
        e.contains(&ConfigEdit::Env(
            "PATH".into(),
            format!("/opt/bin:{}", super::DEFAULT_PATH)
        )),
        "scratch stages get the default PATH"
    );
    assert!(e.contains(&ConfigEdit::Label("a".into(), "dflt".into())));
    assert!(
        e.contains(&ConfigEdit::Label("b".into(), "none".into())),
        "global ARG TAG without value"
    );
    // --build-arg wins over defaults, in both scopes; built-ins need ARG inside a stage.
    let (_d, mut o) = setup("ARG V=1\nFROM scratch\nARG V\nENV A=$V B=$TARGETOS\n", &[]);
    o.build_args = vec![("V".into(), "9".into())];
    let e = edits(&recipe(&o, &amd64()).unwrap());
    assert!(e.contains(&ConfigEdit::Env("A".into(), "9".into())));
    assert!(
        e.contains(&ConfigEdit::Env("B".into(), String::new())),
        "TARGETOS not declared in the stage"
    );
    let arm = recipe(&setup("FROM --platform=$BUILDPLATFORM scratch\nARG TARGETPLATFORM TARGETVARIANT\nENV P=$TARGETPLATFORM V=$TARGETVARIANT\n", &[]).1, &Platform::parse("linux/arm/v7").unwrap()).unwrap();
    let e = edits(&arm);
    assert!(e.contains(&ConfigEdit::Env("P".into(), "linux/arm/v7".into())));
    assert!(e.contains(&ConfigEdit::Env("V".into(), "v7".into())));
    assert_eq!(arm.stages[0].platform, Some(Platform::host()));
}

#[test]
fn base_config_feeds_expansion_workdir_and_onbuild() {
    struct Info;
    impl BaseInfo for Info {
        fn config(&self, image: &Reference, _p: &Platform) -> Option<serde_json::Value> {
            (image.repository() == "library/node").then(|| {
                serde_json::json!({"config": {
                "Env": ["PATH=/usr/bin:/bin", "HOME=/root"], "WorkingDir": "/home/node",
                "User": "1000", "OnBuild": ["COPY f.txt /onbuild/"]}})
            })
        }
    }
    let (_d, o) = setup(
        "FROM node\nENV PATH=/app/bin:$PATH\nWORKDIR app\nCOPY f.txt .\n",
        &[("f.txt", "x")],
    );
    let r = recipe_with(&o, &amd64(), &Info).unwrap();
    let steps = &r.stages[0].steps;
    assert!(
        matches!(
            &steps[0],
            Step::Config {
                edit: ConfigEdit::ClearOnBuild,
                ..
            }
        ),
        "the triggers are not passed on: {:?}",
        steps[0]
    );
    assert_eq!(
        layer_paths(&steps[1]),
        ["onbuild/f.txt"],
        "base ONBUILD runs first"
    );
    let e = edits(&r);
    assert!(e.contains(&ConfigEdit::Env(
        "PATH".into(),
        "/app/bin:/usr/bin:/bin".into()
    )));
    assert!(e.contains(&ConfigEdit::WorkingDir("/home/node/app".into())));
    // WORKDIR creates the directory owned by USER; /home exists in every base.
    match &steps[3] {
        Step::Layer(l) => {
            let owners: Vec<(String, u64)> =
                l.entries.iter().map(|e| (e.path.clone(), e.uid)).collect();
            assert_eq!(
                owners,
                [
                    ("home/node".to_string(), 1000),
                    ("home/node/app".to_string(), 1000)
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        layer_paths(&steps[5]),
        ["home/node/app/f.txt"],
        "`.` is the WORKDIR, a directory"
    );
    assert_eq!(base_images(&o, &amd64()).unwrap().len(), 1);
}

#[test]
fn add_url_is_deferred_with_its_checksum() {
    let sum = format!("sha256:{}", "a".repeat(64));
    let r = build(
        &format!("FROM scratch\nWORKDIR /opt\nADD --checksum={sum} --chmod=644 https://example.com/d/a.tgz x/\n"),
        &[],
    )
    .unwrap();
    let copy = r.stages[0]
        .steps
        .iter()
        .find_map(|s| match s {
            Step::Copy(c) => Some(c.clone()),
            _ => None,
        })
        .expect("a deferred step");
    assert_eq!(
        copy.source,
        CopySource::Url {
            checksum: Some(crate::image::Digest::parse(&sum).unwrap())
        }
    );
    assert_eq!(copy.sources, ["https://example.com/d/a.tgz"]);
    assert_eq!(copy.dest, "/opt/x/");
    assert_eq!(copy.chmod, Some(0o644));
}

#[test]
fn stages_copy_from_and_target() {
    let df = "FROM alpine:3.19 AS build\nCOPY f.txt /out/\nFROM build AS mid\nFROM scratch\nCOPY --from=build /out/f.txt /f\n\
              COPY --from=0 /out /o\nCOPY --from=busybox:1.36 /bin/busybox /bin/\nCOPY --chown=app:staff f.txt /g\nCOPY --chown=7 f.txt /h\n";
    let (_d, o) = setup(df, &[("f.txt", "x")]);
    let r = recipe(&o, &amd64()).unwrap();
    assert_eq!(r.stages.len(), 3);
    assert!(matches!(r.stages[0].base, Base::Image(_)));
    // `mid` is not needed by the result: an empty placeholder keeps the indices.
    assert_eq!(r.stages[1].base, Base::Scratch);
    assert!(r.stages[1].steps.is_empty());
    let steps: Vec<&Step> = r.stages[2]
        .steps
        .iter()
        .filter(|s| !matches!(s, Step::Config { .. }))
        .collect();
    let copy = |i: usize| match &steps[i] {
        Step::Copy(c) => c.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(copy(0).source, CopySource::Stage(0));
    assert_eq!(copy(0).dest, "/f");
    assert_eq!(copy(1).source, CopySource::Stage(0));
    assert!(matches!(copy(2).source, CopySource::Image(_)));
    assert_eq!(
        copy(3).owner,
        Some(Owner::Names {
            user: "app".into(),
            group: Some("staff".into())
        })
    );
    match &steps[4] {
        Step::Layer(l) => assert_eq!((l.entries[0].uid, l.entries[0].gid), (7, 7)),
        other => panic!("{other:?}"),
    }
    let mut t = o.clone();
    t.target_stage = Some("MID".into());
    assert_eq!(recipe(&t, &amd64()).unwrap().stages.len(), 2);
    t.target_stage = Some("nope".into());
    assert!(
        recipe(&t, &amd64())
            .unwrap_err()
            .to_string()
            .contains("no stage named")
    );
}

#[test]
fn commands_shell_healthcheck_and_overrides() {
    let df = "FROM scratch\nCMD echo hi\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\nENTRYPOINT run $X\n\
              HEALTHCHECK --interval=1m CMD [\"/check\"]\nSTOPSIGNAL SIGINT\nEXPOSE 80 53/udp\nVOLUME /data\nUSER app:app\nMAINTAINER me\nONBUILD COPY . /x\n";
    let (_d, mut o) = setup(df, &[]);
    o.overrides.env = vec!["Z=1".into()];
    let r = recipe(&o, &amd64()).unwrap();
    let e = edits(&r)[1..].to_vec();
    assert_eq!(
        e[0],
        ConfigEdit::Cmd(Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()]))
    );
    assert_eq!(
        e[2],
        ConfigEdit::Entrypoint(Some(vec![
            "/bin/bash".into(),
            "-o".into(),
            "pipefail".into(),
            "-c".into(),
            "run $X".into()
        ]))
    );
    assert_eq!(
        e[3],
        ConfigEdit::Healthcheck(
            serde_json::json!({"Test": ["CMD", "/check"], "Interval": 60_000_000_000u64})
        )
    );
    assert!(e.contains(&ConfigEdit::Expose("53/udp".into())));
    assert!(e.contains(&ConfigEdit::Author("me".into())));
    assert!(e.contains(&ConfigEdit::OnBuild("COPY . /x".into())));
    assert_eq!(
        e.last(),
        Some(&ConfigEdit::Env("Z".into(), "1".into())),
        "overrides come last"
    );
    let history: Vec<Option<String>> = r.stages[0]
        .steps
        .iter()
        .map(|s| match s {
            Step::Config { history, .. } => history.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(
        history[0], None,
        "the default PATH of scratch has no history entry"
    );
    assert_eq!(history[1].as_deref(), Some("CMD echo hi"));
    assert_eq!(
        history
            .iter()
            .filter(|h| h.as_deref() == Some("EXPOSE 80 53/udp"))
            .count(),
        1
    );
}

#[test]
fn heredocs_and_escape_directive() {
    let df = "# escape=`\nFROM scratch\nARG NAME=world\nCOPY <<EOF <<'RAW' `\n/etc/greet/\nhello $NAME\nEOF\nkeep $NAME\nRAW\nCOPY --chmod=755 <<-EOF /bin/run\n\t#!/bin/sh\n\techo hi\n\tEOF\n";
    let r = build(df, &[]).unwrap();
    let entries: Vec<(String, Option<Vec<u8>>, u32)> = r.stages[0]
        .steps
        .iter()
        .flat_map(|s| match s {
            Step::Layer(l) => l.entries.to_vec(),
            _ => Vec::new(),
        })
        .map(|e| match e.kind {
            EntryKind::Inline(b) => (e.path, Some(b), e.mode),
            _ => (e.path, None, e.mode),
        })
        .collect();
    assert!(
        entries.contains(&(
            "etc/greet/EOF".into(),
            Some(b"hello world\n".to_vec()),
            0o644
        )),
        "{entries:?}"
    );
    assert!(entries.contains(&(
        "etc/greet/RAW".into(),
        Some(b"keep $NAME\n".to_vec()),
        0o644
    )));
    assert!(entries.contains(&(
        "bin/run".into(),
        Some(b"#!/bin/sh\necho hi\n".to_vec()),
        0o755
    )));
}

#[test]
fn refusals_carry_file_and_line() {
    let cases: &[(&str, &str)] = &[
        ("", ":1: no FROM"),
        ("# just a comment\n", ":1: no FROM"),
        ("ENV A=1\nFROM scratch\n", ":1: ENV must come after FROM"),
        ("FROM scratch\n\nRUN make\n", ":3: RUN is not supported"),
        ("FROM scratch\nFRUM x\n", ":2: unknown instruction: FRUM"),
        (
            "FROM scratch\nCOPY ../etc/passwd /x\n",
            ":2: COPY: source \"../etc/passwd\" is outside",
        ),
        (
            "FROM scratch\nCOPY missing.txt /x\n",
            ":2: COPY: source \"missing.txt\" not found",
        ),
        (
            "FROM scratch AS first\nCOPY --from=later /a /b\nFROM first AS later\n",
            ":2: --from=later",
        ),
        ("FROM scratch\nCOPY --from=3 /a /b\n", ":2: --from=3"),
        ("FROM later\nFROM scratch AS later\n", ":1: FROM later"),
        ("FROM scratch\nCMD [\"a\",]\n", ":2: malformed JSON"),
        (
            "FROM scratch\nADD https://example.com/a.tgz f.txt /x/\n",
            ":2: ADD mixes URLs with local sources",
        ),
        (
            "FROM scratch\nADD --unpack=false f.txt /x\n",
            ":2: ADD --unpack is not supported",
        ),
        (
            "FROM scratch\nADD https://github.com/o/r.git /src\n",
            ":2: ADD https://github.com/o/r.git: git sources",
        ),
        (
            "FROM scratch\nADD --checksum=sha256:00 https://example.com/a /x\n",
            ":2: ADD --checksum=sha256:00",
        ),
        (
            "FROM scratch\nADD --checksum=sha256:00 f.txt /x\n",
            ":2: ADD --checksum only applies",
        ),
        (
            "FROM scratch\nADD https://example.com/a https://example.com/b /x\n",
            ":2: ADD with several URLs",
        ),
        (
            "FROM scratch\nCOPY --chmod=abc f.txt /x\n",
            ":2: --chmod=abc",
        ),
        ("FROM scratch\nSTOPSIGNAL SIGNOPE\n", ":2: invalid signal"),
        ("FROM scratch\nEXPOSE http\n", ":2: EXPOSE http"),
        ("FROM scratch\nCOPY f.txt g.txt /x\n", "end with a /"),
        ("FROM ${EMPTY}\n", ":1: base name"),
        (
            "FROM scratch AS a\nFROM scratch AS a\n",
            ":2: duplicate stage name",
        ),
        ("FROM scratch\nENV A=${B:?needB}\n", ":2: B: needB"),
    ];
    for (df, want) in cases {
        let e = err_of(df, &[("f.txt", "x"), ("g.txt", "y")]);
        assert!(e.contains("Dockerfile") && e.contains(want), "{df:?}: {e}");
    }
    // RUN in a stage the target does not need is fine (BuildKit skips it).
    let ok = build(
        "FROM scratch AS test\nRUN go test\nFROM scratch\nCOPY f.txt /\n",
        &[("f.txt", "x")],
    );
    assert!(ok.is_ok(), "{ok:?}");
    let missing = recipe(
        &DockerfileOptions {
            dockerfile: Path::new("/nonexistent/Dockerfile").to_path_buf(),
            ..setup("", &[]).1
        },
        &amd64(),
    );
    assert!(matches!(missing, Err(RecipeError::DockerfileRead { .. })));
}

#[test]
fn stages_the_target_does_not_need_are_not_dispatched() {
    // A missing source in a stage after --target, and in an unused earlier stage: BuildKit
    // never looks at either.
    let df = "FROM scratch AS unused\nCOPY missing.txt /\nFROM scratch AS a\nCOPY f.txt /\n\
              FROM scratch AS b\nCOPY also-missing.txt /\n";
    let (_d, mut o) = setup(df, &[("f.txt", "x")]);
    o.target_stage = Some("a".into());
    let r = recipe(&o, &amd64()).unwrap();
    assert_eq!(r.stages.len(), 2);
    assert!(r.stages[0].steps.is_empty());
    assert_eq!(layer_paths(r.stages[1].steps.last().unwrap()), ["f.txt"]);
    // A stage named by COPY --from is needed, even through a variable of the global scope.
    let df = "ARG SRC=unused\nFROM scratch AS unused\nCOPY f.txt /g\nFROM scratch\nARG SRC\nCOPY --from=${SRC} /g /h\n";
    let (_d, o) = setup(df, &[("f.txt", "x")]);
    let r = recipe(&o, &amd64()).unwrap();
    assert!(!r.stages[0].steps.is_empty(), "{:?}", r.stages[0]);
    assert_eq!(
        base_images(&o, &amd64()).unwrap().len(),
        0,
        "scratch stages only"
    );
}

#[test]
fn base_env_is_only_needed_once_bases_are_known() {
    // `WORKDIR ${APP_DIR}` needs the base's ENV: the early check passes without it.
    let (_d, o) = setup("FROM node\nWORKDIR ${APP_DIR}\n", &[]);
    super::super::check(&o, &amd64()).unwrap();
    let (root, platform, line) = super::super::root_base(&o, &amd64()).unwrap();
    assert_eq!(root.unwrap().repository(), "library/node");
    assert_eq!((platform, line), (None, 1));
    struct Info;
    impl BaseInfo for Info {
        fn config(&self, _: &Reference, _: &Platform) -> Option<serde_json::Value> {
            Some(serde_json::json!({"config": {"Env": ["APP_DIR=/srv/app"]}}))
        }
    }
    let r = recipe_with(&o, &amd64(), &Info).unwrap();
    assert!(edits(&r).contains(&ConfigEdit::WorkingDir("/srv/app".into())));
}
