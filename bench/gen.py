#!/usr/bin/env python3
"""Deterministic inputs for bench/run.sh (standard library only).

  gen.py context DIR SCALE    a node_modules-like tree (~20,000 small text files at
                              SCALE=1, ~285 MB with the assets) plus 25-30 MB assets,
                              two of them incompressible. Same SCALE -> same bytes.
  gen.py base LAYOUT MB       an OCI layout, tag "base", an index of three platforms
                              (linux/amd64, linux/arm64, linux/arm/v7), each with its
                              own gzip layer of about MB megabytes.
  gen.py bigfile PATH BYTES   a sparse file of BYTES with 1 MiB of random data every
                              64 MiB (the data is real, the holes read as zeros).
"""

import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile

WORDS = (
    "const let var function return if else for while module exports require import "
    "from default class extends this new null undefined true false async await yield "
    "object array string number value options config result error callback promise "
    "resolve reject then catch length push map filter reduce keys prototype call apply "
    "bind arguments typeof instanceof throw try finally switch case break continue"
).split()


def line_pool(rng, n):
    """Lines of JS-like text: repeated keywords, random identifiers and literals."""
    pool = []
    for _ in range(n):
        depth = "  " * rng.randrange(0, 4)
        parts = []
        for _ in range(rng.randrange(3, 12)):
            r = rng.random()
            if r < 0.55:
                parts.append(rng.choice(WORDS))
            elif r < 0.85:
                parts.append("%s%x" % (rng.choice(WORDS)[:4], rng.getrandbits(24)))
            else:
                parts.append(str(rng.getrandbits(16)))
        pool.append(depth + " ".join(parts) + rng.choice([";", " {", "", ","]))
    return pool


def text_of(rng, pool, size):
    out, n = [], 0
    while n < size:
        chunk = "\n".join(rng.choices(pool, k=32)) + "\n"
        out.append(chunk)
        n += len(chunk)
    return "".join(out)[:size].encode()


def context(root, scale):
    rng = random.Random(20240611)
    pool = line_pool(rng, 12000)
    files = max(200, int(20000 * scale))
    # The small files total ~176 MB at scale 1 (log-normal sizes, median ~5 KB).
    budget = int(176e6 * scale)
    sizes = [max(64, int(rng.lognormvariate(8.6, 1.0))) for _ in range(files)]
    factor = budget / sum(sizes)
    sizes = [max(64, int(s * factor)) for s in sizes]
    written = 0
    per_pkg = 25
    for i, size in enumerate(sizes):
        pkg = "pkg-%04d" % (i // per_pkg)
        sub = ["", "lib/", "dist/", "src/util/"][i % 4]
        name = ["index.js", "package.json", "README.md", "helpers.js", "types.d.ts"][i % 5]
        path = os.path.join(root, "node_modules", pkg, sub, "%03d-%s" % (i % per_pkg, name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(text_of(rng, pool, size))
        written += size
    # The file the "edit" case changes: exactly 5 KB, in the middle of the tree.
    edit = os.path.join(root, "node_modules", "pkg-0400", "edit-target.js")
    os.makedirs(os.path.dirname(edit), exist_ok=True)
    with open(edit, "wb") as f:
        f.write(text_of(rng, pool, 5000))
    os.makedirs(os.path.join(root, "assets"), exist_ok=True)
    mb = 1 << 20
    assets = [
        ("assets/video.bin", int(28 * mb * scale), "random"),
        ("assets/fonts.pak", int(26 * mb * scale), "random"),
        ("assets/bundle.js", int(30 * mb * scale), "text"),
        ("assets/data.json", int(25 * mb * scale), "text"),
    ]
    for rel, size, kind in assets:
        with open(os.path.join(root, rel), "wb") as f:
            if kind == "random":
                f.write(rng.randbytes(size))
            else:
                f.write(text_of(rng, pool, size))
        written += size
    with open(os.path.join(root, "server.js"), "w") as f:
        f.write("require('http').createServer((q, r) => r.end('ok')).listen(8080);\n")
    print("context: %d files, %.1f MB" % (files + 6, written / 1e6))


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def base_layer(rng, pool, megabytes):
    """A distro-like layer: half binaries (incompressible), half text."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        def add(name, data, mode=0o644):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
        add("etc/os-release", b"ID=benchbase\n")
        add("bin/sh", b"#!fake shell\n", 0o755)
        half = megabytes * (1 << 20) // 2
        for i in range(16):
            add("usr/lib/lib%02d.so" % i, rng.randbytes(half // 16), 0o755)
        for i in range(64):
            add("usr/share/doc/doc%02d.txt" % i, text_of(rng, pool, half * 3 // 64))
    tar_bytes = raw.getvalue()
    gz = gzip.compress(tar_bytes, compresslevel=1, mtime=0)
    return tar_bytes, gz


def base(layout, megabytes):
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    rng = random.Random(7)
    pool = line_pool(rng, 5000)
    manifests = []
    for arch, variant in [("amd64", None), ("arm64", None), ("arm", "v7")]:
        tar_bytes, gz = base_layer(rng, pool, megabytes)
        layer = blob(layout, gz)
        layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
        platform = {"architecture": arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        config = dict(platform)
        config["config"] = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
        config["rootfs"] = {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]}
        config["history"] = [{"created_by": "bench base layer"}]
        cfg = blob(layout, json.dumps(config, sort_keys=True).encode())
        cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cfg,
            "layers": [layer],
        }
        m = blob(layout, json.dumps(manifest, sort_keys=True).encode())
        m["mediaType"] = manifest["mediaType"]
        m["platform"] = platform
        manifests.append(m)
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
    top = blob(layout, json.dumps(index, sort_keys=True).encode())
    top["mediaType"] = index["mediaType"]
    top["annotations"] = {"org.opencontainers.image.ref.name": "base"}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [top]}, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    print("base: 3 platforms, layers of %s MB" % ", ".join("%.1f" % (b["size"] / 1e6) for b in [json.load(open(os.path.join(layout, "blobs", "sha256", m["digest"][7:])))["layers"][0] for m in manifests]))


def bigfile(path, size):
    rng = random.Random(99)
    with open(path, "wb") as f:
        f.truncate(size)
        step = 64 << 20
        for off in range(0, size, step):
            f.seek(off)
            f.write(rng.randbytes(min(1 << 20, size - off)))


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "context":
        context(sys.argv[2], float(sys.argv[3]))
    elif what == "base":
        base(sys.argv[2], int(sys.argv[3]))
    elif what == "bigfile":
        bigfile(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
