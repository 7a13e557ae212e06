//! Issue 4, faults: the real registry behind the fault-injecting proxy of
//! `common::proxy` — a connection reset in the middle of a blob, 503 with Retry-After,
//! slow answers, a commit whose answer is lost, a registry away for a second, one that
//! stays away — and the no-op rebuild (one HEAD, nothing uploaded).
//!
//! The base image is on the registry directly; the destination is the same registry
//! through the proxy (another host for ocibuild), so base layers are streamed through the
//! faults too. Retry delays are shortened with `OCIBUILD_RETRY_BASE_MS` where the test
//! is not about the real timing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::fixture::MediaTypes;
use common::fs::write_app_context;
use common::proxy::{Match, Proxy};
use common::{
    Output, Registry, TestEnv, assert_absent, expect_dest_lines, run, sha256_digest,
    skopeo_inspect_raw, skopeo_inspect_raw_bytes,
};

/// Size of the incompressible file in the context: the layer is about this big.
const BIG: usize = 2_500_000;
const MIB: u64 = 1 << 20;

struct Setup {
    env: TestEnv,
    reg: Registry,
    proxy: Proxy,
    ctx: PathBuf,
    base_ref: String,
}

fn setup() -> Setup {
    let env = TestEnv::new();
    let reg = Registry::start();
    let (base_ref, _) = common::push_host_base(&env, &reg, MediaTypes::Oci);
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    std::fs::write(
        ctx.join("big.bin"),
        common::noise(BIG, 0x9e37_79b9_7f4a_7c15),
    )
    .unwrap();
    let proxy = Proxy::start(reg.port());
    Setup {
        env,
        reg,
        proxy,
        ctx,
        base_ref,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

impl Setup {
    /// `<proxy>/app:v1`
    fn dest(&self) -> String {
        format!("{}/app:v1", self.proxy.host())
    }

    fn build(&self, env: &[(&str, &str)]) -> Output {
        let mut cmd: Command = self.env.ocibuild();
        cmd.envs(env.iter().copied()).arg(s(&self.ctx)).args([
            "--from",
            &self.base_ref,
            "-t",
            &self.dest(),
            "-v",
        ]);
        run(&mut cmd)
    }

    /// The push is complete: the tag (read on the registry directly) is the printed
    /// digest and every layer is there, byte for byte.
    #[track_caller]
    fn assert_complete(&self, out: &Output) -> String {
        let digest = expect_dest_lines(out, &[&self.dest()])[0].clone();
        let direct = self.reg.reference("app:v1");
        assert_eq!(sha256_digest(&skopeo_inspect_raw_bytes(&direct)), digest);
        let manifest = skopeo_inspect_raw(&direct);
        for layer in manifest["layers"].as_array().unwrap() {
            self.reg.blob("app", layer["digest"].as_str().unwrap());
        }
        digest
    }

    /// The big layer uploads through the proxy (method PUT, body at least 1 MiB).
    fn big_puts(&self) -> usize {
        self.proxy
            .seen()
            .iter()
            .filter(|r| r.method == "PUT" && r.body_len >= MIB)
            .count()
    }
}

const FAST: (&str, &str) = ("OCIBUILD_RETRY_BASE_MS", "50");

#[test]
fn connection_reset_mid_blob_is_retried_from_a_fresh_session() {
    let st = setup();
    st.proxy
        .reset_mid_body(Match::body("PUT", MIB), 256 * 1024, Some(Duration::ZERO));
    let out = st.build(&[FAST]);
    st.assert_complete(&out);
    assert!(out.stderr.contains("retrying"), "{}", out.stderr);
    assert_eq!(st.big_puts(), 2, "{:?}", st.proxy.seen());
}

#[test]
fn unavailable_with_retry_after_is_waited_out() {
    let st = setup();
    st.proxy.unavailable(Match::any(), 2, 1);
    let started = Instant::now();
    let out = st.build(&[("OCIBUILD_RETRY_BASE_MS", "10")]);
    let took = started.elapsed();
    st.assert_complete(&out);
    assert!(out.stderr.contains("answered 503"), "{}", out.stderr);
    // Retry-After (1 s) wins over the 10 ms backoff, twice.
    assert!(out.stderr.contains("retrying in 1.0s"), "{}", out.stderr);
    assert!(took >= Duration::from_secs(2), "{took:?}");
}

#[test]
fn slow_answers_are_not_failures() {
    let st = setup();
    st.proxy.throttle(Duration::from_millis(15));
    let out = st.build(&[]);
    st.assert_complete(&out);
    assert!(!out.stderr.contains("retrying"), "{}", out.stderr);
}

#[test]
fn commit_that_timed_out_is_checked_with_head_not_uploaded_again() {
    let st = setup();
    // The registry stores the blob, but its answer comes after the client gave up.
    st.proxy
        .delay_answers(Match::body("PUT", MIB), 1, Duration::from_secs(3));
    let out = st.build(&[FAST, ("OCIBUILD_READ_TIMEOUT_SECS", "1")]);
    st.assert_complete(&out);
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    assert_eq!(st.big_puts(), 1, "uploaded again: {:?}", st.proxy.seen());
    let seen = st.proxy.seen();
    let put = seen
        .iter()
        .position(|r| r.method == "PUT" && r.body_len >= MIB)
        .unwrap();
    assert!(
        seen[put..]
            .iter()
            .any(|r| r.method == "HEAD" && r.target.contains("/blobs/sha256:")),
        "no HEAD after the timed-out commit: {seen:?}"
    );
}

#[test]
fn registry_away_for_a_second_mid_push_recovers_in_the_same_run() {
    let st = setup();
    st.proxy.reset_mid_body(
        Match::body("PUT", MIB),
        256 * 1024,
        Some(Duration::from_secs(1)),
    );
    // Real (default) retry delays.
    let out = st.build(&[]);
    st.assert_complete(&out);
    assert!(out.stderr.contains("retrying"), "{}", out.stderr);
}

#[test]
fn registry_that_stays_away_fails_within_a_minute() {
    let st = setup();
    st.proxy
        .reset_mid_body(Match::body("PUT", MIB), 256 * 1024, None);
    let started = Instant::now();
    let out = st.build(&[]);
    let took = started.elapsed();
    out.assert_failure(4, &[&format!("cannot reach registry {}", st.proxy.host())]);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert_absent(&st.reg.reference("app:v1"));
}

#[test]
fn no_op_rebuild_sends_one_head_and_uploads_nothing() {
    let st = setup();
    let first = st.assert_complete(&st.build(&[]));
    st.proxy.clear_seen();
    let out = st.build(&[]);
    let second = st.assert_complete(&out);
    assert_eq!(first, second);
    let seen: Vec<(String, String)> = st
        .proxy
        .seen()
        .into_iter()
        .map(|r| (r.method, r.target))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("GET".to_string(), "/v2/".to_string()),
            ("HEAD".to_string(), "/v2/app/manifests/v1".to_string())
        ]
    );
    assert!(out.stderr.contains("nothing to push"), "{}", out.stderr);
}
