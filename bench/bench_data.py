"""Data-pipeline numbers for bench/RESULTS.md (a benchmark, not a test).

    python bench/bench_data.py [--src ../shared/data/tseng2023] [--work /tmp/cnet-bench] [--workers N]

1. import throughput: the full Tseng release → paper layout (instances/s, and per core);
2. build throughput (``on_error="skip"``: the release annotates a few boxes twice with two
   labels, and the build drops such conflicting pairs): that tree → Parquet + card, with 1 process (= per core) and with all cores;
   beside a plain reference measured in the same run: a loop that only reads + fully decodes each
   PNG with Pillow (what any validating build must at least do);
3. peak memory (max RSS) of a one-process build at ~5k vs all ~47k instances: must stay flat.
Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image
from subset import link_rows, read_rows

ROOT = Path(__file__).resolve().parents[1]

_BUILD_CHILD = """
import resource, sys, time
from pathlib import Path
from chromosomenet.data.build import BuildConfig, build_dataset
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
r = build_dataset(BuildConfig(raw=Path(sys.argv[1]), out=Path(sys.argv[2]), workers=int(sys.argv[3]),
                              progress=False, overwrite=True, on_error="skip"))
print(len(r.skipped), file=sys.stderr)
print(r.total, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, base)
"""


def build_in_child(raw: Path, out: Path, workers: int) -> tuple[int, float, float, float]:
    """(images, seconds, peak RSS MiB, RSS MiB after imports) of one build in a fresh interpreter."""
    res = subprocess.run([sys.executable, "-c", _BUILD_CHILD, str(raw), str(out), str(workers)],
                         check=True, capture_output=True, text=True)
    n, secs, rss_kib, base_kib = res.stdout.split()
    print(f"  build of {raw.name}: {res.stderr.strip().splitlines()[-1]} file(s) skipped", file=sys.stderr)
    return int(n), float(secs), int(rss_kib) / 1024, int(base_kib) / 1024


def plain_decode(raw: Path) -> tuple[int, float]:
    files = sorted(p for p in raw.glob("*/*.png"))
    t = time.perf_counter()
    for p in files:
        with open(p, "rb") as f:
            f.read()
        with Image.open(p) as im:
            im.load()
    return len(files), time.perf_counter() - t


def subset_tree(raw: Path, dst: Path, n_target: int) -> Path:
    """Whole cells (in cell order) until ~n_target instances: a smaller tree of the same kind."""
    rows = read_rows(raw)
    keep, cells = [], sorted({r["cell_id"] for r in rows})
    for c in cells:
        if len(keep) >= n_target:
            break
        keep += [r for r in rows if r["cell_id"] == c]
    return link_rows(raw, keep, dst)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "tseng2023"))
    ap.add_argument("--work", default="/tmp/cnet-bench")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    from chromosomenet.importers.tseng import import_tseng

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "raw"
    t = time.perf_counter()
    imp = import_tseng(a.src, raw, workers=a.workers, overwrite=True, progress=False)
    imp_s = time.perf_counter() - t
    rows = [("import (Tseng → paper layout)", a.workers, imp.n_instances, imp_s)]

    n_ref, ref_s = plain_decode(raw)
    rows.append(("reference: read + Pillow decode only", 1, n_ref, ref_s))
    n1, s1, rss_full, base_full = build_in_child(raw, work / "ds1", 1)
    rows.append(("build (scan + split + Parquet + card)", 1, n1, s1))
    nw, sw, _, _ = build_in_child(raw, work / "dsw", a.workers)
    rows.append(("build (scan + split + Parquet + card)", a.workers, nw, sw))
    small = subset_tree(raw, work / "raw5k", 5000)
    n5, _, rss_small, base_small = build_in_child(small, work / "ds5k", 1)

    print(f"CPU: {os.cpu_count()} cores ({a.workers} workers); python {sys.version.split()[0]}\n")
    print("| stage | processes | items | seconds | items/s | items/s per core |")
    print("|---|---|---|---|---|---|")
    for name, procs, n, s in rows:
        print(f"| {name} | {procs} | {n} | {s:.1f} | {n / s:,.0f} | {n / s / procs:,.0f} |")
    print(f"\nbuild vs plain decode, one core: {(n1 / s1) / (n_ref / ref_s):.2f}x")
    print(f"import quality flags: {dict(imp.quality)}; scaled to fit: {imp.n_scaled}")
    print("\n| build, 1 process | instances | RSS after imports (MiB) | peak RSS (MiB) | build's own (MiB) |")
    print("|---|---|---|---|---|")
    print(f"| subset | {n5} | {base_small:.0f} | {rss_small:.0f} | {rss_small - base_small:.0f} |")
    print(f"| full | {n1} | {base_full:.0f} | {rss_full:.0f} | {rss_full - base_full:.0f} |")
    print(f"\npeak memory ratio full/subset: {rss_full / rss_small:.2f}x (build's own "
          f"{(rss_full - base_full) / max(rss_small - base_small, 1):.2f}x) for {n1 / n5:.1f}x the instances")


if __name__ == "__main__":
    main()
