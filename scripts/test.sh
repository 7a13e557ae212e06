#!/usr/bin/env bash
# The project's test command (README: "run scripts/test.sh"; CI: .ci/run execs it).
#
# 1. Installs the external tools the integration tests drive, with apt, only when one is
#    missing: docker-registry (CNCF distribution), skopeo, umoci, buildah, openssl,
#    htpasswd (apache2-utils); setpriv (util-linux) is used by the unreadable-file test;
#    qemu-user-static and dpkg for the ARM run; make and git for the examples and provenance.
# 2. cargo fmt --check, cargo clippy --all-targets -D warnings, cargo test --all-targets.
#
# Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "${CI:-}" = "true" ]; then
    export CARGO_TERM_COLOR=never
fi

tools=(docker-registry skopeo umoci buildah openssl htpasswd setpriv qemu-aarch64-static qemu-arm-static dpkg-deb make git)
packages=(docker-registry skopeo umoci buildah openssl apache2-utils util-linux qemu-user-static dpkg make git)

missing=()
for t in "${tools[@]}"; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "scripts/test.sh: missing ${missing[*]}; installing ${packages[*]} with apt-get" >&2
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "scripts/test.sh: not root and no sudo; install as root: apt-get install -y ${packages[*]}" >&2
            exit 1
        fi
        sudo=(sudo)
    fi
    # The docker-registry package would start a system-wide registry on :5000; the tests start
    # their own. Where nothing says otherwise, tell invoke-rc.d not to start services.
    policy=/usr/sbin/policy-rc.d
    added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        added_policy=1
    fi
    status=0
    "${sudo[@]}" apt-get update || status=$?
    if [ "$status" -eq 0 ]; then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${packages[@]}" || status=$?
    fi
    if [ "$added_policy" -eq 1 ]; then
        "${sudo[@]}" rm -f "$policy"
    fi
    if [ "$status" -ne 0 ]; then
        echo "scripts/test.sh: apt-get failed (exit $status)" >&2
        exit "$status"
    fi
fi

still=()
for t in "${tools[@]}"; do
    command -v "$t" >/dev/null 2>&1 || still+=("$t")
done
if [ "${#still[@]}" -gt 0 ]; then
    echo "scripts/test.sh: FATAL: still missing after install: ${still[*]}" >&2
    exit 1
fi

# ARM busybox binaries for the end-to-end run under qemu (tests/qemu_run.rs): downloaded
# here, never committed. `apt-get update` may report an unrelated index failure (exit 100)
# while the packages are still fetchable, so success is judged by the files themselves.
debs="$PWD/target/test-debs"
export OCIBUILD_TEST_DEBS="$debs"
if ! ls "$debs"/busybox-static_*_arm64.deb "$debs"/busybox-static_*_armhf.deb >/dev/null 2>&1; then
    sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    mkdir -p "$debs"
    if ! dpkg --print-foreign-architectures | grep -qx arm64 || ! dpkg --print-foreign-architectures | grep -qx armhf; then
        "${sudo[@]}" dpkg --add-architecture arm64
        "${sudo[@]}" dpkg --add-architecture armhf
        "${sudo[@]}" apt-get update || echo "scripts/test.sh: apt-get update reported errors; trying the download anyway" >&2
    fi
    # _apt cannot write into a root-owned target dir; download from a world-writable temp dir.
    tmp=$(mktemp -d)
    chmod 777 "$tmp"
    (cd "$tmp" && apt-get download busybox-static:arm64 busybox-static:armhf)
    mv "$tmp"/*.deb "$debs"/
    rm -rf "$tmp"
fi
ls "$debs"/busybox-static_*_arm64.deb "$debs"/busybox-static_*_armhf.deb >/dev/null || {
    echo "scripts/test.sh: FATAL: busybox-static debs for arm64/armhf are missing in $debs" >&2
    exit 1
}

echo "==> cargo fmt --check" >&2
cargo fmt --check
echo "==> cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --all-targets -- -D warnings
echo "==> cargo test --all-targets --no-fail-fast" >&2
cargo test --all-targets --no-fail-fast
