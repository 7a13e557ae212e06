#!/usr/bin/env python3
"""The registry's own floor: one monolithic upload (POST, then PUT with the digest) of
SIZE random bytes, as fast as a plain HTTP client sends them. Prints the seconds.

usage: upload_floor.py HOST:PORT SIZE

Edits inside a big COPY layer change the layer's digest, so the whole blob is uploaded
again; how fast the registry takes it bounds the edit case from below.
"""

import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.parse

host, size = sys.argv[1], int(sys.argv[2])
with tempfile.TemporaryFile() as f:
    h = hashlib.sha256()
    left = size
    while left:
        chunk = os.urandom(min(left, 1 << 20))
        h.update(chunk)
        f.write(chunk)
        left -= len(chunk)
    digest = "sha256:" + h.hexdigest()
    f.seek(0)
    start = time.monotonic()
    conn = http.client.HTTPConnection(host, blocksize=1 << 20)
    conn.request("POST", "/v2/upload-floor/blobs/uploads/")
    r = conn.getresponse()
    r.read()
    if r.status != 202:
        sys.exit(f"POST: {r.status}")
    loc = urllib.parse.urlsplit(r.getheader("Location"))
    query = (loc.query + "&" if loc.query else "") + "digest=" + digest
    conn.request(
        "PUT",
        loc.path + "?" + query,
        body=f,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
    )
    r = conn.getresponse()
    r.read()
    if r.status != 201:
        sys.exit(f"PUT: {r.status}")
    print(f"{time.monotonic() - start:.3f}")
