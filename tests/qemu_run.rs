//! Issue 5, for real: an image built on an x86 host for linux/arm64 and linux/arm/v7 runs.
//! The bases are Debian's `busybox-static` for arm64 and armhf (downloaded by
//! `scripts/test.sh` into `$OCIBUILD_TEST_DEBS`, never committed); ocibuild adds an app layer
//! for both platforms in one run; each platform is unpacked with umoci and its CMD is
//! executed with `qemu-aarch64-static` / `qemu-arm-static` in a chroot of the rootfs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixture::{self, Entry, ImageSpec, MediaTypes};
use common::fs::write_file;
use common::skopeo::unpack_platform;
use common::{Registry, TestEnv, expect_dest_lines, push_fixture, require_tool, run};
use serde_json::json;

/// The busybox binary out of the `busybox-static` deb for `deb_arch`.
fn busybox(deb_arch: &str, into: &Path) -> Vec<u8> {
    let dir = std::env::var_os("OCIBUILD_TEST_DEBS").map(PathBuf::from).unwrap_or_else(|| {
        panic!("OCIBUILD_TEST_DEBS is not set: run the tests with scripts/test.sh, which downloads busybox-static for arm64 and armhf")
    });
    let deb = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/test.sh)", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(&format!("_{deb_arch}.deb")))
        .unwrap_or_else(|| panic!("no busybox-static_*_{deb_arch}.deb in {}", dir.display()));
    require_tool("dpkg-deb");
    let out_dir = into.join(deb_arch);
    let out = run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&out_dir));
    assert_eq!(out.code, 0, "dpkg-deb -x: {}", out.stderr);
    std::fs::read(out_dir.join("bin/busybox")).unwrap()
}

fn busybox_base(platform: &str, binary: Vec<u8>) -> ImageSpec {
    let mut spec = ImageSpec::base(platform);
    let entries: Vec<Entry> = vec![
        fixture::dir("bin", 0o755),
        fixture::file("bin/busybox", binary, 0o755),
        fixture::symlink("bin/sh", "busybox"),
        fixture::symlink("bin/cat", "busybox"),
    ];
    spec.layers = vec![entries];
    spec.cmd = vec!["/bin/sh".into()];
    spec.extra_config = json!({});
    spec
}

fn run_platform(reference: &str, arch: &str, variant: Option<&str>, qemu: &str) -> String {
    let unpacked = unpack_platform(reference, arch, variant);
    let rootfs = unpacked.rootfs();
    // The runtime spec umoci generated carries the image's Entrypoint + Cmd.
    let args: Vec<String> = unpacked.runtime_config()["process"]["args"]
        .as_array()
        .expect("process.args")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    // The static emulator goes inside the chroot, as binfmt_misc would provide it.
    std::fs::copy(PathBuf::from("/usr/bin").join(qemu), rootfs.join(qemu)).unwrap();
    let out = run(Command::new("chroot")
        .arg(&rootfs)
        .arg(format!("/{qemu}"))
        .args(&args));
    assert_eq!(
        out.code, 0,
        "{qemu} {args:?} in the chroot failed:\n{}",
        out.stderr
    );
    out.stdout
}

#[test]
fn arm_images_built_on_any_host_really_run() {
    for tool in [
        "qemu-aarch64-static",
        "qemu-arm-static",
        "umoci",
        "skopeo",
        "chroot",
    ] {
        require_tool(tool);
    }
    // chroot needs root; CI runs as root. Fail loudly rather than skip elsewhere.
    assert_eq!(
        unsafe_geteuid(),
        0,
        "this test chroots into the unpacked image and must run as root"
    );
    let env = TestEnv::new();
    let reg = Registry::start();
    let work = env.work();
    let layout = work.join("base");
    fixture::write_index(
        &layout,
        "busybox",
        &[
            busybox_base("linux/arm64/v8", busybox("arm64", &work)),
            busybox_base("linux/arm/v7", busybox("armhf", &work)),
        ],
        MediaTypes::Oci,
    );
    let base = reg.reference("busybox:1");
    push_fixture(&layout, "busybox", &base);
    let ctx = work.join("ctx");
    write_file(&ctx, "message.txt", "hello from the app layer\n", 0o644);
    let dest = reg.reference("app:arm");
    let out = run(env
        .ocibuild()
        .arg(&ctx)
        .args(["--from", &base, "--platform", "linux/arm64,linux/arm/v7"])
        .args(["--cmd", r#"["/bin/cat", "/app/message.txt"]"#, "-t", &dest]));
    expect_dest_lines(&out, &[&dest]);
    assert_eq!(
        run_platform(&dest, "arm64", None, "qemu-aarch64-static"),
        "hello from the app layer\n"
    );
    assert_eq!(
        run_platform(&dest, "arm", Some("v7"), "qemu-arm-static"),
        "hello from the app layer\n"
    );
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
