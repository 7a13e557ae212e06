//! Tests of COPY/ADD resolution against a context on disk.

use super::*;
use crate::context::destfs::EmptyFs;
use crate::layer::LayerEntry;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

fn spec(sources: &[&str], dest: &str) -> CopySpec {
    CopySpec {
        source: CopySource::Context,
        sources: sources.iter().map(|s| s.to_string()).collect(),
        dest: dest.to_string(),
        owner: None,
        chmod: None,
        exclude: Vec::new(),
        parents: false,
        add: false,
        created_by: "COPY".into(),
    }
}

fn context() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    for (f, mode) in [
        ("f.txt", 0o644),
        ("run.sh", 0o755),
        ("a1.txt", 0o644),
        ("a2.txt", 0o600),
        ("dir/x.txt", 0o644),
        ("dir/sub/y.log", 0o640),
        ("src/app/main.rs", 0o644),
        ("src/lib/util.rs", 0o644),
    ] {
        fs::create_dir_all(r.join(f).parent().unwrap()).unwrap();
        fs::write(r.join(f), f).unwrap();
        fs::set_permissions(r.join(f), fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::set_permissions(r.join("dir"), fs::Permissions::from_mode(0o750)).unwrap();
    symlink("f.txt", r.join("link")).unwrap();
    symlink("x.txt", r.join("dir/inner-link")).unwrap();
    symlink("/etc/passwd", r.join("abs-link")).unwrap();
    d
}

fn run(
    ctx: &Path,
    s: &CopySpec,
    owner: Option<(u64, u64)>,
) -> Result<Vec<LayerEntry>, ContextError> {
    let env = CopyEnv {
        root: ctx,
        rootfs: false,
        ignore: None,
        dest: &EmptyFs,
    };
    resolve_with(&env, s, owner).map(|l| l.entries.to_vec())
}

fn summary(e: &[LayerEntry]) -> Vec<String> {
    e.iter()
        .map(|e| {
            let k = match &e.kind {
                EntryKind::Dir => "d".to_string(),
                EntryKind::File { .. } => "f".to_string(),
                EntryKind::Symlink { target } => format!("l:{target}"),
                other => format!("{other:?}"),
            };
            format!("{} {k} {:o} {}:{}", e.path, e.mode, e.uid, e.gid)
        })
        .collect()
}

#[test]
fn files_dirs_and_trailing_slash() {
    let c = context();
    let r = c.path();
    assert_eq!(
        summary(&run(r, &spec(&["f.txt"], "/app/f"), None).unwrap()),
        ["app d 755 0:0", "app/f f 644 0:0"]
    );
    assert_eq!(
        summary(&run(r, &spec(&["f.txt"], "/app/"), Some((5, 6))).unwrap()),
        ["app d 755 5:6", "app/f.txt f 644 5:6"]
    );
    // A directory copies its contents; the destination is created 0755, not with the
    // source's mode; links inside are kept.
    assert_eq!(
        summary(&run(r, &spec(&["dir"], "/x"), None).unwrap()),
        [
            "x d 755 0:0",
            "x/inner-link l:x.txt 777 0:0",
            "x/sub d 755 0:0",
            "x/sub/y.log f 640 0:0",
            "x/x.txt f 644 0:0",
        ]
    );
    // A top-level symlink is followed, keeping the name written.
    assert_eq!(
        summary(&run(r, &spec(&["link"], "/l/"), None).unwrap()),
        ["l d 755 0:0", "l/link f 644 0:0"]
    );
    // `.` is the whole context.
    assert!(run(r, &spec(&["."], "/all/"), None).unwrap().len() > 10);
}

#[test]
fn globs_multiple_sources_and_chmod() {
    let c = context();
    let r = c.path();
    let mut s = spec(&["a*.txt", "run.sh"], "/m/");
    s.chmod = Some(0o700);
    assert_eq!(
        summary(&run(r, &s, None).unwrap()),
        [
            "m d 755 0:0",
            "m/a1.txt f 700 0:0",
            "m/a2.txt f 700 0:0",
            "m/run.sh f 700 0:0"
        ]
    );
    let err = run(r, &spec(&["a*.txt"], "/m"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("end with a /"), "{err}");
    let err = run(r, &spec(&["f.txt", "run.sh"], "/m"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("end with a /"), "{err}");
    // --chmod applies to sub-directories too, not to the created destination.
    let mut d = spec(&["dir"], "/d/");
    d.chmod = Some(0o600);
    let got = summary(&run(r, &d, None).unwrap());
    assert!(got.contains(&"d d 755 0:0".to_string()), "{got:?}");
    assert!(got.contains(&"d/sub d 600 0:0".to_string()), "{got:?}");
}

#[test]
fn exclude_parents_and_refusals() {
    let c = context();
    let r = c.path();
    let mut s = spec(&["dir"], "/e/");
    s.exclude = vec!["*.txt".into()];
    let got = summary(&run(r, &s, None).unwrap());
    assert!(!got.iter().any(|l| l.starts_with("e/x.txt")), "{got:?}");
    assert!(
        got.iter().any(|l| l.starts_with("e/sub/y.log")),
        "*.txt is not recursive"
    );
    let mut p = spec(&["src/*/main.rs"], "/p/");
    p.parents = true;
    assert_eq!(
        summary(&run(r, &p, None).unwrap()),
        [
            "p d 755 0:0",
            "p/src d 755 0:0",
            "p/src/app d 755 0:0",
            "p/src/app/main.rs f 644 0:0"
        ]
    );
    let mut pivot = spec(&["src/./app/main.rs"], "/q/");
    pivot.parents = true;
    let got = summary(&run(r, &pivot, None).unwrap());
    assert!(
        got.contains(&"q/app/main.rs f 644 0:0".to_string()),
        "{got:?}"
    );
    for (src, want) in [
        ("../x", "outside"),
        ("a/../../x", "outside"),
        ("abs-link", "outside"),
        ("nope.txt", "not found"),
        ("nope*", "not found"),
    ] {
        let err = run(r, &spec(&[src], "/z/"), None).unwrap_err().to_string();
        assert!(err.contains(want), "{src}: {err}");
    }
    // Absolute sources are relative to the context root.
    assert_eq!(run(r, &spec(&["/f.txt"], "/z/"), None).unwrap().len(), 2);
    let mut add = spec(&["https://example.com/x.tgz"], "/z/");
    add.add = true;
    assert!(
        run(r, &add, None)
            .unwrap_err()
            .to_string()
            .contains("remote ADD")
    );
}

#[test]
fn dockerignore_and_existing_destinations() {
    let c = context();
    let r = c.path();
    fs::write(r.join(".dockerignore"), "**/*.log\na2.txt\n").unwrap();
    let got = summary(
        &resolve(r, None, &spec(&["."], "/app/"), None)
            .unwrap()
            .entries,
    );
    assert!(
        !got.iter()
            .any(|l| l.contains("y.log") || l.contains("a2.txt")),
        "{got:?}"
    );
    assert!(
        resolve(r, None, &spec(&["a2.txt"], "/x"), None).is_err(),
        "ignored means missing"
    );
    // With unknown base contents, standard directories are taken to exist: the file goes
    // inside and no entry resets their metadata.
    let got = summary(
        &resolve(r, None, &spec(&["run.sh"], "/usr/local/bin"), None)
            .unwrap()
            .entries,
    );
    assert_eq!(got, ["usr/local/bin/run.sh f 755 0:0"]);
    let got = summary(
        &resolve(r, None, &spec(&["f.txt"], "/tmp/a/b"), None)
            .unwrap()
            .entries,
    );
    // `/tmp/a` may exist in the base with other metadata: no entry, the extractor keeps
    // it or creates it root 0755 as Docker would.
    assert_eq!(got, ["tmp/a/b f 644 0:0"]);
    // A --chown owner is what Docker gives missing parents: they are written.
    let got = summary(
        &resolve(r, None, &spec(&["f.txt"], "/tmp/a/b"), Some((7, 8)))
            .unwrap()
            .entries,
    );
    assert_eq!(got, ["tmp/a d 755 7:8", "tmp/a/b f 644 7:8"]);
    // A directory with nothing below it (WORKDIR) must be there: it is written.
    let got = summary(
        &resolve(r, None, &spec(&[], "/srv/data/"), None)
            .unwrap()
            .entries,
    );
    assert_eq!(got, ["srv/data d 755 0:0"]);
}
