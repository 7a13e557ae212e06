//! Issue 6: the layer cache, end to end through the CLI against a real registry.
//!
//! * cached, uncached (`--no-cache`) and cold-cache builds give the same digest;
//! * an unchanged context is answered by the stat index (nothing read or compressed); a
//!   touched file or a fresh checkout (new mtimes) by the stat index's fingerprints (its
//!   files re-read, nothing compressed), or else by the member cache (same digest,
//!   nothing recompressed); checkouts built as `ocibuild .` keep a record each;
//! * an edit recompresses at most two members;
//! * a corrupted cache (a flipped byte in every cached blob and in a member record) is
//!   detected and rebuilt: the registry receives the right bytes.
//!
//! The `-v` line "layer … (x/y members reused)" is how the counts are observed.

mod common;

use std::path::{Path, PathBuf};

use common::fixture::{self, ImageSpec, MediaTypes, host_platform};
use common::fs::{touch_all, write_file};
use common::{Output, Registry, TestEnv, expect_dest_lines, push_fixture, sha256_digest};

struct Setup {
    env: TestEnv,
    reg: Registry,
    base: String,
    ctx: PathBuf,
}

fn push_base(env: &TestEnv, reg: &Registry) -> String {
    let layout = env.work().join("base-layout");
    if !layout.exists() {
        fixture::write_image(
            &layout,
            "base",
            &ImageSpec::base(&host_platform()),
            MediaTypes::Oci,
        );
    }
    let base = reg.reference("base:1");
    push_fixture(&layout, "base", &base);
    base
}

/// ~6 MB of text in 300 files (several members), plus a 3 MB incompressible file, with
/// old mtimes so the stat index trusts them.
fn write_context(root: &Path) {
    for i in 0..300u32 {
        let body: String = (0..(900 + i * 5))
            .map(|j| format!("{i}:{j} const value = {};\n", (i * 131 + j * 7) % 1013))
            .collect();
        write_file(root, &format!("src/d{:02}/f{i:03}.js", i % 13), body, 0o644);
    }
    let mut x = 88172645463325252u64;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as u8
        })
        .collect();
    write_file(root, "assets/noise.bin", noise, 0o644);
    touch_all(root, 1_600_000_000);
}

fn setup() -> Setup {
    let env = TestEnv::new();
    let reg = Registry::start();
    let base = push_base(&env, &reg);
    let ctx = env.work().join("ctx");
    write_context(&ctx);
    Setup {
        env,
        reg,
        base,
        ctx,
    }
}

impl Setup {
    fn build_in(&self, env: &TestEnv, ctx: &Path, dest: &str, extra: &[&str]) -> (String, Output) {
        let mut args = vec![
            ctx.to_str().unwrap(),
            "--from",
            &self.base,
            "--dest",
            "/app",
            "-v",
            "-t",
            dest,
        ];
        args.extend_from_slice(extra);
        let out = env.run(&args);
        let digest = expect_dest_lines(&out, &[dest]).remove(0);
        (digest, out)
    }

    fn build(&self, dest: &str, extra: &[&str]) -> (String, Output) {
        self.build_in(&self.env, &self.ctx, dest, extra)
    }

    /// A `cp -r` of the context (new inodes and mtimes) named `name` in the work dir.
    fn copy_of_context(&self, name: &str) -> PathBuf {
        let to = self.env.work().join(name);
        let cp = std::process::Command::new("cp")
            .arg("-r")
            .arg(&self.ctx)
            .arg(&to)
            .status()
            .unwrap();
        assert!(cp.success());
        to
    }

    fn cache(&self) -> PathBuf {
        self.env.cache_home().join("ocibuild")
    }
}

/// `(reused, total)` from the `-v` line "layer … (x/y members reused)".
fn members(out: &Output) -> (usize, usize) {
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains(" members reused"))
        .unwrap_or_else(|| panic!("no members line in:\n{}", out.stderr));
    let end = line.find(" members reused").unwrap();
    let start = line[..end].rfind(", ").unwrap() + 2;
    let (a, b) = line[start..end].split_once('/').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

/// How many files the `-v` layer line says were re-read for their fingerprints.
fn reread(out: &Output) -> usize {
    out.stderr
        .lines()
        .find_map(|l| {
            let end = l.find(" files re-read")?;
            let start = l[..end].rfind(", ")? + 2;
            l[start..end].parse().ok()
        })
        .unwrap_or(0)
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x55;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn cached_uncached_and_cold_builds_give_the_same_digest() {
    let s = setup();
    let dest = s.reg.reference("app:1");
    let (cold, out) = s.build(&dest, &[]);
    let (reused, total) = members(&out);
    assert!(total > 3, "a multi-member layer:\n{}", out.stderr);
    assert_eq!(reused, 0, "nothing to reuse in a cold cache");

    let (warm, out) = s.build(&dest, &[]);
    assert_eq!(warm, cold);
    assert_eq!(members(&out), (total, total));

    let (uncached, out) = s.build(&dest, &["--no-cache"]);
    assert_eq!(uncached, cold, "--no-cache gives the same digest");
    assert_eq!(
        members(&out),
        (0, total),
        "--no-cache recompresses everything"
    );

    let other = TestEnv::new();
    let (elsewhere, _) = s.build_in(&other, &s.ctx, &dest, &[]);
    assert_eq!(elsewhere, cold, "another cache, same digest");
}

#[test]
fn unchanged_contents_hit_the_stat_index_and_fresh_checkouts_the_member_cache_too() {
    let s = setup();
    let dest = s.reg.reference("app:1");
    let (first, out) = s.build(&dest, &[]);
    let (_, total) = members(&out);

    // A fresh checkout elsewhere (new paths, inodes and mtimes) without the stat index:
    // every member comes from the member cache.
    let fresh = s.copy_of_context("fresh");
    std::fs::remove_dir_all(s.cache().join("meta/stat")).unwrap();
    let (second, out) = s.build_in(&s.env, &fresh, &dest, &[]);
    assert_eq!(second, first, "a fresh checkout gives the same digest");
    assert_eq!(members(&out), (total, total), "{}", out.stderr);

    // Without the member cache, only the stat index can answer "all reused": back in the
    // first checkout every stat differs from the record (the fresh one's), and the files'
    // fingerprints say the bytes are the same.
    std::fs::remove_dir_all(s.cache().join("meta/members")).unwrap();
    let (third, out) = s.build(&dest, &[]);
    assert_eq!(third, first);
    assert_eq!(members(&out), (total, total), "{}", out.stderr);

    // Same bytes, new mtime: still the same layer, nothing compressed, one file re-read.
    let touched = s.ctx.join("src/d00/f000.js");
    std::fs::write(&touched, std::fs::read(&touched).unwrap()).unwrap();
    let (fourth, out) = s.build(&dest, &[]);
    assert_eq!(fourth, first);
    assert_eq!(members(&out), (total, total), "{}", out.stderr);
    assert_eq!(reread(&out), 1, "{}", out.stderr);

    // Other bytes of the same size: the fingerprint differs, the layer is rebuilt. Every
    // member is recompressed (the member cache is gone) but the first, which holds only
    // directories before the changed file: it is copied from the last build's blob.
    let mut body = std::fs::read(&touched).unwrap();
    body[0] ^= 1;
    std::fs::write(&touched, body).unwrap();
    let (fifth, out) = s.build(&dest, &[]);
    assert_ne!(fifth, first);
    assert_eq!(members(&out), (1, total), "{}", out.stderr);
    assert!(
        out.stderr.contains("kept from the last build"),
        "{}",
        out.stderr
    );
}

/// `ocibuild .` from two checkouts of the same tree: the first build of the second one
/// re-reads its files (same bytes, nothing compressed); after that each checkout has a
/// record of its own and is answered by stats alone, whichever was built last.
#[test]
fn checkouts_built_as_dot_keep_a_record_each() {
    let s = setup();
    let dest = s.reg.reference("app:1");
    let other = s.copy_of_context("other");
    // Not just written (racy files are re-read every time), and unlike the original's.
    touch_all(&other, 1_600_000_100);
    let build_dot = |dir: &Path| {
        let out = common::run(
            s.env
                .ocibuild()
                .current_dir(dir)
                .args([".", "--from", &s.base, "--dest", "/app", "-v", "-t", &dest]),
        );
        (expect_dest_lines(&out, &[&dest]).remove(0), out)
    };
    let (first, _) = build_dot(&s.ctx);
    let (second, out) = build_dot(&other);
    assert_eq!(second, first);
    let files = 301;
    assert_eq!(reread(&out), files, "{}", out.stderr);
    for dir in [&s.ctx, &other, &s.ctx] {
        let (again, out) = build_dot(dir);
        assert_eq!(again, first);
        assert_eq!(
            reread(&out),
            0,
            "a stat hit in {}:\n{}",
            dir.display(),
            out.stderr
        );
    }
}

#[test]
fn an_edit_recompresses_at_most_two_members() {
    let s = setup();
    let dest = s.reg.reference("app:1");
    let (first, out) = s.build(&dest, &[]);
    let (_, total) = members(&out);
    let edited = s.ctx.join("src/d05/f148.js");
    let mut body = std::fs::read(&edited).unwrap();
    body[100] ^= 1;
    body.extend_from_slice(b"// one more line\n");
    std::fs::write(&edited, body).unwrap();
    let (second, out) = s.build(&dest, &[]);
    assert_ne!(second, first);
    let (reused, total2) = members(&out);
    assert!(total2 >= total - 1, "{}", out.stderr);
    let recompressed = total2 - reused;
    assert!(
        (1..=2).contains(&recompressed),
        "{recompressed} members recompressed:\n{}",
        out.stderr
    );
}

#[test]
fn a_corrupted_cache_is_detected_and_rebuilt_never_pushed() {
    let s = setup();
    let (_, out) = s.build(&s.reg.reference("app:1"), &[]);
    let (_, total) = members(&out);
    let manifest = common::skopeo_inspect_raw(&s.reg.reference("app:1"));
    let layer = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let cached = s
        .cache()
        .join("blobs/sha256")
        .join(&layer["sha256:".len()..]);

    // Damage one member inside the layer blob, and (in the same build) the record of
    // another member. Without its stat index record the layer is streamed again and
    // every member comes from the member cache. (A damaged blob behind a stat-index hit
    // is re-hashed and rebuilt: tests/layer_stat_index.rs.)
    let blob_len = std::fs::metadata(&cached).unwrap().len();
    let damaged_at = blob_len / 2;
    flip_byte(&cached, damaged_at as usize);
    let records = files_in(&s.cache().join("meta/members"));
    assert_eq!(records.len(), total, "one record per member");
    // A record: magic, CRC-32, length, offset, blob digest.
    let span = |r: &Path| {
        let b = std::fs::read(r).unwrap();
        let len = u64::from_le_bytes(b[8..16].try_into().unwrap());
        let offset = u64::from_le_bytes(b[16..24].try_into().unwrap());
        offset..offset + len
    };
    let other = records
        .iter()
        .find(|r| !span(r).contains(&damaged_at))
        .unwrap();
    flip_byte(other, 20);
    let forget_stats = || std::fs::remove_dir_all(s.cache().join("meta/stat")).unwrap();
    forget_stats();

    // Push to a registry that has never seen the layer: it must get the right bytes.
    let reg2 = Registry::start();
    let base2 = push_base(&s.env, &reg2);
    let s2 = Setup {
        env: TestEnv::new(),
        reg: reg2,
        base: base2,
        ctx: s.ctx.clone(),
    };
    let check_pushed = |repo: &str| {
        let pushed = common::skopeo_inspect_raw(&s2.reg.reference(&format!("{repo}:1")));
        let pushed_layer = pushed["layers"].as_array().unwrap().last().unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(pushed_layer, layer);
        // GET it back: the bytes hash to the digest (Registry::blob asserts it).
        let body = s2.reg.blob(repo, &layer);
        assert_eq!(sha256_digest(&body), layer);
        // And the cache holds the good blob again.
        assert_eq!(sha256_digest(&std::fs::read(&cached).unwrap()), layer);
    };
    // s2's base, s's (damaged) cache.
    // (The manifest differs: its base-name annotation names the other registry.)
    let (_, out) = s2.build_in(&s.env, &s.ctx, &s2.reg.reference("app:1"), &[]);
    assert_eq!(
        members(&out),
        (total - 2, total),
        "exactly the two damaged members are recompressed:\n{}",
        out.stderr
    );
    check_pushed("app");

    // Every blob damaged at the same place: once more the member there is recompressed,
    // and the layer is uploaded to a repository that does not have it yet.
    for b in &files_in(&s.cache().join("blobs/sha256")) {
        flip_byte(b, damaged_at as usize);
    }
    forget_stats();
    let (_, out) = s2.build_in(&s.env, &s.ctx, &s2.reg.reference("other:1"), &[]);
    assert_eq!(members(&out), (total - 1, total), "{}", out.stderr);
    check_pushed("other");
}
