//! Issue 6: a large fresh layer is uploaded while it is still being compressed, and the
//! push only checks it off. What the registry serves must still be exactly the image
//! built (unpacked with skopeo + umoci, digests checked), the metadata file's byte counts
//! must stay honest, and a rebuild whose members all come from the cache is pushed the
//! ordinary way (HEAD first; an upload begun before that was known is cancelled), so
//! nothing is sent twice to a repository that has it; so is a rebuild with an empty cache
//! to a tag that exists (a CI job without a kept cache).

mod common;

use std::path::Path;

use common::{MediaTypes, Registry, TestEnv, expect_dest_lines, noise, push_host_base};
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// The run uploaded nothing while building (its layers went the ordinary way, if at all).
fn assert_not_sent_early(out: &common::Output) {
    assert!(
        !out.stderr.contains("(while it was built)"),
        "{}",
        out.stderr
    );
}

/// The run uploaded its layer while building it.
fn assert_sent_early(out: &common::Output) {
    assert!(
        out.stderr.contains("(while it was built)"),
        "the layer went up during the build:\n{}",
        out.stderr
    );
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn large_layer_is_uploaded_while_built_and_served_intact() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let (base_ref, _) = push_host_base(&env, &reg, MediaTypes::Oci);
    let ctx = env.work().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // ~45 MB, well past the size where uploading during the build starts: incompressible
    // files (stored members) and text (compressed ones).
    for i in 0..4u64 {
        std::fs::write(ctx.join(format!("noise-{i}.bin")), noise(8_000_000, i + 1)).unwrap();
    }
    let text: String = (0..200_000).map(|i| format!("line {i}\n")).collect();
    for i in 0..4 {
        std::fs::write(ctx.join(format!("text-{i}.txt")), &text).unwrap();
    }
    let meta = env.work().join("meta.json");
    let dest = reg.reference("early:v1");
    let args = |dest: &str| {
        vec![
            s(&ctx).to_string(),
            "--from".into(),
            base_ref.clone(),
            "-v".into(),
            "-t".into(),
            dest.to_string(),
            "--metadata-file".into(),
            s(&meta).to_string(),
        ]
    };
    let run = |dest: &str| {
        let a = args(dest);
        let out = env.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        out.assert_success();
        out
    };

    let out = run(&dest);
    assert_sent_early(&out);
    let digest = expect_dest_lines(&out, &[&dest]).remove(0);
    let manifest = common::skopeo_inspect_raw(&dest);
    let layers = manifest["layers"].as_array().unwrap();
    let own = layers.last().unwrap()["size"].as_u64().unwrap();
    let config = manifest["config"]["size"].as_u64().unwrap();
    let d = &read_json(&meta)["destinations"][0];
    assert_eq!(d["bytesUploaded"], own + config, "{d}");
    let unpacked = common::unpack(&dest);
    for i in 0..4u64 {
        let got = std::fs::read(unpacked.path(&format!("app/noise-{i}.bin"))).unwrap();
        assert!(got == noise(8_000_000, i + 1), "noise-{i}.bin differs");
        let got = std::fs::read_to_string(unpacked.path(&format!("app/text-{i}.txt"))).unwrap();
        assert!(got == text, "text-{i}.txt differs");
    }

    // The same content again, to another repository: every member is cached, nothing is
    // sent early, and the ordinary push uploads the layer once.
    let other = reg.reference("early2:v1");
    let out = run(&other);
    assert_not_sent_early(&out);
    assert_eq!(expect_dest_lines(&out, &[&other]).remove(0), digest);
    let d = &read_json(&meta)["destinations"][0];
    assert_eq!(d["bytesUploaded"], own + config, "{d}");

    // And to the first one: its tag is current, nothing is sent at all.
    let out = run(&dest);
    assert_eq!(expect_dest_lines(&out, &[&dest]).remove(0), digest);
    assert_eq!(read_json(&meta)["destinations"][0]["bytesUploaded"], 0);

    // A same-size edit (the stat index's record still fits, its fingerprint does not):
    // the layer is rebuilt with one fresh member and goes up while built, as it streams.
    let original = std::fs::read(ctx.join("text-1.txt")).unwrap();
    let mut edited = original.clone();
    edited[..4].copy_from_slice(b"LINE");
    std::fs::write(ctx.join("text-1.txt"), &edited).unwrap();
    let out = run(&dest);
    assert_sent_early(&out);
    let edit_digest = expect_dest_lines(&out, &[&dest]).remove(0);
    assert_ne!(edit_digest, digest);
    // Reverted: the layer is streamed again (the record now holds the edit's
    // fingerprint) and every member comes from the cache. An upload may have begun before
    // that was known; it is cancelled, and the ordinary push finds the layer there.
    std::fs::write(ctx.join("text-1.txt"), &original).unwrap();
    let out = run(&dest);
    assert_not_sent_early(&out);
    assert_eq!(expect_dest_lines(&out, &[&dest]).remove(0), digest);
    assert_eq!(read_json(&meta)["destinations"][0]["bytesUploaded"], 0);
    let uploads = reg
        .storage()
        .join("docker/registry/v2/repositories/early/_uploads");
    let kept: Vec<_> = std::fs::read_dir(&uploads)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("data").exists())
                .collect()
        })
        .unwrap_or_default();
    assert!(kept.is_empty(), "upload sessions left with data: {kept:?}");

    // A CI job without a kept cache: everything is compressed afresh, but the tag exists,
    // so nothing goes up early and the ordinary push finds every blob there.
    std::fs::remove_dir_all(env.cache_home().join("ocibuild")).unwrap();
    let out = run(&dest);
    assert_not_sent_early(&out);
    assert_eq!(expect_dest_lines(&out, &[&dest]).remove(0), digest);
    assert_eq!(read_json(&meta)["destinations"][0]["bytesUploaded"], 0);

    // `--no-cache` compresses everything afresh too: the same rule.
    let mut a = args(&dest);
    a.push("--no-cache".into());
    let out = env.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    out.assert_success();
    assert_not_sent_early(&out);
    assert_eq!(read_json(&meta)["destinations"][0]["bytesUploaded"], 0);
}
