#!/usr/bin/env python3
"""Turns bench/run.sh's runs.tsv into the results table (medians, targets, PASS/FAIL).

usage: report.py RUNS_TSV FLOOR_TXT INPUT_BYTES MODE BIG_GB QUICK SPLIT
"""

import os
import statistics
import sys

runs_tsv, floor_txt, input_bytes, mode, big_gb, quick, split = sys.argv[1:]
input_mb = int(input_bytes) / 1e6

rows = {}
for line in open(runs_tsv):
    case, run, wall, cpu, rss, up, recomp, digest = (line.rstrip("\n").split("\t") + [""] * 8)[:8]
    rows.setdefault(case, []).append(
        {
            "wall": float(wall),
            "cpu": float(cpu),
            "rss": int(rss) / 1024,
            "up": int(up) if up else None,
            "recomp": int(recomp) if recomp else None,
            "digest": digest,
        }
    )

floor = None
for line in open(floor_txt):
    if line.startswith("floor "):
        floor = float(line.split()[1])


def med(case, key):
    vals = [r[key] for r in rows.get(case, []) if r[key] is not None]
    return statistics.median(vals) if vals else None


def fmt_bytes(n):
    if n is None:
        return "n/a"
    for unit in ["B", "KB", "MB", "GB"]:
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


cold = med("cold", "wall")
table = []


def row(case, label, target, ok, note=""):
    wall, cpu, rss = med(case, "wall"), med(case, "cpu"), med(case, "rss")
    up = max((r["up"] for r in rows.get(case, []) if r["up"] is not None), default=None)
    verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
    table.append(
        [
            label,
            f"{wall:.2f} s" if wall is not None else "n/a",
            f"{cpu:.2f} s" if cpu is not None else "n/a",
            f"{rss:.0f} MB" if rss is not None else "n/a",
            fmt_bytes(up),
            f"{wall / floor:.1f}x" if wall is not None and floor else "n/a",
            target,
            verdict + (f" ({note})" if note else ""),
        ]
    )


table.append(["floor: deflate lvl 1, all cores, in memory", f"{floor:.2f} s", "", "", "", "1.0x", "", ""])

buildah = med("buildah", "wall")
speed = input_mb / cold
ok_cold = speed >= 150 and (buildah is None or buildah / cold >= 10)
note = f"{speed:.0f} MB/s" + (f", {buildah / cold:.1f}x buildah" if buildah else ", buildah skipped")
row("cold", "cold build + push", ">=10x buildah, >=150 MB/s", ok_cold, note)
row("buildah", "buildah bud + push (vfs)", "reference", None, "upload = registry growth")
upload = med("upload", "wall")
if upload is not None:
    row("upload", "registry floor: plain upload of the layer", "reference", None, f"{100 * upload / cold:.0f}% of cold")

walk = med("walk", "wall")
if walk is not None:
    row("walk", "no-op floor: find(1) stats every file", "reference", None, f"{100 * walk / cold:.1f}% of cold")

noop_recomp = max((r["recomp"] or 0 for r in rows["noop"]), default=0)
noop_up = max((r["up"] or 0 for r in rows["noop"]), default=0)
noop = med("noop", "wall")
row(
    "noop",
    "no-op rebuild",
    "<=5% of cold, 0 compressed, 0 uploaded",
    noop <= 0.05 * cold and noop_recomp == 0 and noop_up == 0,
    f"{100 * noop / cold:.1f}%, {noop_recomp} recompressed"
    + (f"; {noop / walk:.1f}x the stat floor" if walk else ""),
)

edit = med("edit", "wall")
edit_recomp = max((r["recomp"] or 0 for r in rows["edit"]), default=0)
row(
    "edit",
    "one 5 KB file edited",
    "<=25% of cold, <=2 members",
    edit <= 0.25 * cold and edit_recomp <= 2,
    f"{100 * edit / cold:.1f}%, {edit_recomp} recompressed"
    + (f"; upload floor alone {100 * upload / cold:.0f}%" if upload is not None else ""),
)

cold_split = med("coldsplit", "wall")
row(
    "coldsplit",
    f"cold, --split-layers {split}",
    "reference",
    None,
    f"{cold_split / cold:.2f}x cold",
)
noop_split = med("noopsplit", "wall")
row(
    "noopsplit",
    f"no-op rebuild, --split-layers {split}",
    "reference",
    None,
    f"{100 * noop_split / cold_split:.1f}% of cold split, {noop_split / noop:.2f}x no-op",
)
edit_split = med("editsplit", "wall")
split_recomp = max((r["recomp"] or 0 for r in rows["editsplit"]), default=0)
row(
    "editsplit",
    f"one 5 KB file edited, --split-layers {split}",
    "<=25% of cold, <=2 members",
    edit_split <= 0.25 * cold_split and split_recomp <= 2,
    f"{100 * edit_split / cold_split:.1f}% of cold split, {100 * edit_split / cold:.1f}% of cold"
    + f", {split_recomp} recompressed",
)

cold_digests = {r["digest"] for r in rows["cold"]}
fresh_digests = {r["digest"] for r in rows["fresh"]}
fresh_recomp = max((r["recomp"] or 0 for r in rows["fresh"]), default=0)
same = fresh_digests == cold_digests and len(cold_digests) == 1
row(
    "fresh",
    "fresh checkout (new mtimes)",
    "same digest, 0 compressed",
    same and fresh_recomp == 0,
    ("same digest" if same else "DIGEST DIFFERS") + f", {fresh_recomp} recompressed",
)

three = med("3plat", "wall")
row("3plat", "3 platforms (cold)", "<=1.2x of 1 platform", three <= 1.2 * cold, f"{three / cold:.2f}x")

big_rss = med("bigfile", "rss")
row("bigfile", f"single {big_gb} GB file (cold)", "peak RSS <=150 MB", big_rss <= 150, "")

head = ["case", "wall", "CPU", "peak RSS", "uploaded", "/floor", "target", "result"]
widths = [max(len(str(r[i])) for r in table + [head]) for i in range(len(head))]


def line(cells):
    return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"


print()
print(
    f"ocibuild bench: {input_mb:.0f} MB context, {os.cpu_count()} cores, {mode} mode, "
    f"median of {len(rows['cold'])} runs{' (BENCH_QUICK)' if quick == '1' else ''}, "
    f"load average at the end {os.getloadavg()[0]:.2f}"
)
print(line(head))
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for r in table:
    print(line(r))
