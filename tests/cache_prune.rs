//! The blob cache stays under `--cache-max-size`: after a build the least recently used
//! blobs go, never the build's own nor while another build holds the cache; a removed blob
//! only makes a later build slower, never different.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{TestEnv, expect_dest_lines};

/// The cache's blob names.
fn blobs(env: &TestEnv) -> BTreeSet<String> {
    std::fs::read_dir(env.cache_home().join("ocibuild/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// Makes everything in the cache look last used two hours ago (as if another build, long
/// finished, had written it).
fn age_cache(env: &TestEnv) {
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    for sub in ["blobs/sha256", "meta/used"] {
        let dir = env.cache_home().join("ocibuild").join(sub);
        for e in std::fs::read_dir(dir).unwrap() {
            std::fs::File::options()
                .write(true)
                .open(e.unwrap().path())
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
        }
    }
}

/// A context of one incompressible file, so its layer blob is about `len` bytes.
fn write_context(dir: &Path, seed: u64, len: usize) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("data.bin"), common::noise(len, seed)).unwrap();
}

/// Builds `ctx` into an OCI layout; returns the image digest and the log.
fn build(env: &TestEnv, ctx: &Path, out: &str, extra: &[&str]) -> (String, String) {
    let dest = format!("oci:{}", env.work().join(out).display());
    let mut args = vec![ctx.to_str().unwrap(), "-t", &dest, "-v"];
    args.extend_from_slice(extra);
    let run = env.run(&args);
    run.assert_success();
    let lines = expect_dest_lines(&run, &[&dest]);
    (lines[0].clone(), run.stderr.clone())
}

#[test]
fn least_recently_used_blobs_go_and_a_removed_one_is_rebuilt_the_same() {
    let env = TestEnv::new();
    let ctx = env.work().join("ctx");
    write_context(&ctx, 1, 3 << 20);
    let (first, _) = build(&env, &ctx, "one", &[]);
    let after_first = blobs(&env);
    assert!(!after_first.is_empty());

    // Under the default limit nothing goes, however old.
    age_cache(&env);
    write_context(&ctx, 2, 3 << 20);
    let (_, log) = build(&env, &ctx, "two", &[]);
    assert!(!log.contains("cache: removed"), "{log}");
    let after_second = blobs(&env);
    assert!(after_second.is_superset(&after_first));
    let second_only: BTreeSet<_> = after_second.difference(&after_first).cloned().collect();
    assert!(!second_only.is_empty());

    // A limit below one layer: the old blobs go, this build's stay (it used the second's
    // layer, unchanged, through the stat index).
    age_cache(&env);
    let (_, log) = build(&env, &ctx, "three", &["--cache-max-size", "1M"]);
    assert!(log.contains("cache: removed"), "{log}");
    let after_third = blobs(&env);
    assert!(after_third.is_disjoint(&after_first), "{after_third:?}");
    assert!(after_third.is_superset(&second_only), "{after_third:?}");

    // The first context again: its layer is rebuilt, to the same image.
    write_context(&ctx, 1, 3 << 20);
    let (again, _) = build(&env, &ctx, "four", &[]);
    assert_eq!(again, first);

    // While another build holds the cache, nothing is pruned, whatever the limit.
    write_context(&ctx, 4, 3 << 20);
    let before = blobs(&env);
    let other_build = std::fs::File::open(env.cache_home().join("ocibuild")).unwrap();
    other_build.lock_shared().unwrap();
    let (_, log) = build(&env, &ctx, "five", &["--cache-max-size", "0"]);
    assert!(
        log.contains("not pruned, another build is using it"),
        "{log}"
    );
    let after_fifth = blobs(&env);
    assert!(after_fifth.is_superset(&before));
    drop(other_build);

    // Alone, `0` keeps only what the build used: the layer it built just now.
    let (_, log) = build(&env, &ctx, "six", &["--cache-max-size", "0"]);
    assert!(log.contains("cache: removed"), "{log}");
    let fifth_only: BTreeSet<_> = after_fifth.difference(&before).cloned().collect();
    assert_eq!(
        blobs(&env),
        fifth_only,
        "before {before:?} fifth {after_fifth:?}"
    );
}

#[test]
fn a_bad_cache_size_is_a_usage_error() {
    let env = TestEnv::new();
    let ctx = env.work().join("ctx");
    write_context(&ctx, 1, 1000);
    let dest = format!("oci:{}", env.work().join("out").display());
    env.run(&[
        ctx.to_str().unwrap(),
        "-t",
        &dest,
        "--cache-max-size",
        "lots",
    ])
    .assert_failure(2, &["--cache-max-size", "\"lots\"", "20G"]);
    let mut cmd = env.ocibuild();
    cmd.args([ctx.to_str().unwrap(), "-t", &dest])
        .env("OCIBUILD_CACHE_MAX_SIZE", "1.5G");
    common::run(&mut cmd).assert_failure(2, &["OCIBUILD_CACHE_MAX_SIZE", "\"1.5G\""]);
    assert!(
        !env.work().join("out").exists(),
        "nothing written on a usage error"
    );
}
