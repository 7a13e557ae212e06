//! Build contexts on disk and assertions on unpacked root filesystems.
//!
//! Modes are compared as permission bits (`& 0o7777`); ownership is not compared, because
//! `umoci unpack --rootless` does not keep it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

/// Writes a file (creating parent dirs) and sets its exact mode, whatever the umask.
pub fn write_file(root: &Path, rel: &str, contents: impl AsRef<[u8]>, mode: u32) {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, contents).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Creates a directory (and parents) and sets its exact mode.
pub fn make_dir(root: &Path, rel: &str, mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Creates a symlink `rel` → `target` (the target is stored as given, not resolved).
pub fn make_symlink(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    symlink(target, &p).unwrap();
}

/// The standard application context used by the directory-mode tests:
///
/// ```text
/// bin/server              0755  "#!/bin/sh\necho server\n"
/// config/app.conf         0644  "listen = 8080\n"
/// config/nested/deep/data.txt 0600 "deep\n"
/// config/current          symlink → app.conf        (relative)
/// etc-link                symlink → /etc/os-release (absolute, dangling in the context)
/// empty/                  0755, no entries
/// private/                0700 containing secret.txt 0640
/// ```
pub fn write_app_context(root: &Path) {
    make_dir(root, "", 0o755);
    write_file(root, "bin/server", SERVER_SCRIPT, 0o755);
    write_file(root, "config/app.conf", "listen = 8080\n", 0o644);
    write_file(root, "config/nested/deep/data.txt", "deep\n", 0o600);
    make_symlink(root, "config/current", "app.conf");
    make_symlink(root, "etc-link", "/etc/os-release");
    make_dir(root, "empty", 0o755);
    write_file(root, "private/secret.txt", "s3cret\n", 0o640);
    for d in ["bin", "config", "config/nested", "config/nested/deep"] {
        make_dir(root, d, 0o755);
    }
    make_dir(root, "private", 0o700);
}

pub const SERVER_SCRIPT: &str = "#!/bin/sh\necho server\n";

/// Asserts what `write_app_context` put in the context is in the rootfs under `dest`.
#[track_caller]
pub fn assert_app_tree(rootfs: &Path, dest: &str) {
    let d = dest.trim_end_matches('/');
    assert_dir(rootfs, d, None);
    assert_file(rootfs, &format!("{d}/bin/server"), SERVER_SCRIPT, 0o755);
    assert_file(
        rootfs,
        &format!("{d}/config/app.conf"),
        "listen = 8080\n",
        0o644,
    );
    assert_file(
        rootfs,
        &format!("{d}/config/nested/deep/data.txt"),
        "deep\n",
        0o600,
    );
    assert_symlink(rootfs, &format!("{d}/config/current"), "app.conf");
    assert_symlink(rootfs, &format!("{d}/etc-link"), "/etc/os-release");
    assert_dir(rootfs, &format!("{d}/empty"), Some(0o755));
    assert_dir_entries(rootfs, &format!("{d}/empty"), &[]);
    assert_dir(rootfs, &format!("{d}/private"), Some(0o700));
    assert_file(
        rootfs,
        &format!("{d}/private/secret.txt"),
        "s3cret\n",
        0o640,
    );
    for sub in ["bin", "config", "config/nested", "config/nested/deep"] {
        assert_dir(rootfs, &format!("{d}/{sub}"), Some(0o755));
    }
    assert_dir_entries(
        rootfs,
        d,
        &["bin", "config", "empty", "etc-link", "private"],
    );
}

fn at(rootfs: &Path, path: &str) -> std::path::PathBuf {
    rootfs.join(path.trim_start_matches('/'))
}

/// A regular file with exactly these contents and permission bits.
#[track_caller]
pub fn assert_file(rootfs: &Path, path: &str, contents: impl AsRef<[u8]>, mode: u32) {
    let p = at(rootfs, path);
    let md =
        std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{path} missing in rootfs: {e}"));
    assert!(
        md.file_type().is_file(),
        "{path} should be a regular file, is {:?}",
        md.file_type()
    );
    assert_eq!(
        md.permissions().mode() & 0o7777,
        mode,
        "{path}: mode {:o}, expected {mode:o}",
        md.permissions().mode() & 0o7777
    );
    let got = std::fs::read(&p).unwrap();
    assert_eq!(
        got,
        contents.as_ref(),
        "{path}: contents {:?}",
        String::from_utf8_lossy(&got)
    );
}

/// A regular file with these contents (any mode).
#[track_caller]
pub fn assert_file_contents(rootfs: &Path, path: &str, contents: impl AsRef<[u8]>) {
    let p = at(rootfs, path);
    let got = std::fs::read(&p).unwrap_or_else(|e| panic!("{path} missing in rootfs: {e}"));
    assert_eq!(
        got,
        contents.as_ref(),
        "{path}: contents {:?}",
        String::from_utf8_lossy(&got)
    );
}

/// A directory (not a symlink to one), with these permission bits when `mode` is given.
#[track_caller]
pub fn assert_dir(rootfs: &Path, path: &str, mode: Option<u32>) {
    let md = std::fs::symlink_metadata(at(rootfs, path))
        .unwrap_or_else(|e| panic!("{path} missing in rootfs: {e}"));
    assert!(
        md.file_type().is_dir(),
        "{path} should be a directory, is {:?}",
        md.file_type()
    );
    if let Some(mode) = mode {
        assert_eq!(
            md.permissions().mode() & 0o7777,
            mode,
            "{path}: mode {:o}, expected {mode:o}",
            md.permissions().mode() & 0o7777
        );
    }
}

/// A symlink (kept as a link, not followed) with exactly this target.
#[track_caller]
pub fn assert_symlink(rootfs: &Path, path: &str, target: &str) {
    let p = at(rootfs, path);
    let md =
        std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{path} missing in rootfs: {e}"));
    assert!(
        md.file_type().is_symlink(),
        "{path} should be a symlink, is {:?}",
        md.file_type()
    );
    let got = std::fs::read_link(&p).unwrap();
    assert_eq!(got, Path::new(target), "{path}: symlink target");
}

/// Nothing at all at this path.
#[track_caller]
pub fn assert_missing(rootfs: &Path, path: &str) {
    assert!(
        std::fs::symlink_metadata(at(rootfs, path)).is_err(),
        "{path} should not exist in the rootfs"
    );
}

/// The directory's entries, sorted, are exactly `names`.
#[track_caller]
pub fn assert_dir_entries(rootfs: &Path, path: &str, names: &[&str]) {
    let mut got: Vec<String> = std::fs::read_dir(at(rootfs, path))
        .unwrap_or_else(|e| panic!("cannot list {path}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "entries of {path}");
}

/// Sets atime and mtime of every entry under `root` (including `root`, and symlinks
/// themselves, not their targets) to `secs` since the epoch.
pub fn touch_all(root: &Path, secs: i64) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        set_times_nofollow(&p, secs);
        let md = std::fs::symlink_metadata(&p).unwrap();
        if md.file_type().is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
}

fn set_times_nofollow(p: &Path, secs: i64) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        rc,
        0,
        "utimensat {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// The mtime of a path (not following symlinks), in seconds since the epoch.
pub fn mtime(p: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).unwrap().mtime()
}
