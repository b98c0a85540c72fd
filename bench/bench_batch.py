"""A lab's day on this CPU: 200 files, 5 of them bad, one `karyotype --metaphase` batch.

    python bench/bench_batch.py [--release ../shared/data/tseng2023] [--n 200] [--kill-at 100]

Three runs of the real CLI, each a subprocess (what a lab runs):
  1. straight through: wall time, exit code, rows, the 5 refusals named, peak RSS (the kernel's high-water
     mark of the child) and the RSS sampled as the batch goes, against the images done (flat or growing);
  2. the same batch killed with SIGKILL once cells.csv holds --kill-at rows, then run again with --resume:
     rows, each image once, and whether cells.csv is byte for byte run 1's.
The metaphases are the first N (all 195 at the default) of the detector's test cases, unseen in training,
read by path (symlinks).
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from PIL import Image

import chromosomenet
from chromosomenet.data.release import case_id_of
from chromosomenet.models import shipped

CLI = [sys.executable, "-m", "chromosomenet", "karyotype", "--metaphase"]


def day_folder(release: Path, n: int, folder: Path) -> list[str]:
    """N unseen metaphases (symlinks) and 5 bad files; the bad files' names."""
    split = shipped.default_model(shipped.DEFAULT_DETECTOR) / "split_cases.csv"
    with open(split, newline="") as f:
        test = {r["group"] for r in csv.DictReader(f) if r["split"] == "test"}
    images = sorted(p for p in (release / "24_chromosomes_object/JEPG").glob("*.jpg") if case_id_of(p.stem) in test)
    folder.mkdir(parents=True)
    for p in images[:n]:
        (folder / p.name).symlink_to(p.resolve())
    (folder / "notes.png").write_text("not an image")
    data = images[0].read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 3])
    Image.new("L", (40, 30), 120).save(folder / "tiny.png")
    Image.new("L", (800, 600), 235).save(folder / "blank.png")
    Image.new("L", (7400, 5500), 240).save(folder / "huge.png", compress_level=1)  # 40.7 megapixels
    return ["notes.png", "cut.jpg", "tiny.png", "blank.png", "huge.png"]


def rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run(folder: Path, out: Path, *extra: str, kill_at: int | None = None) -> dict:
    """One CLI run: exit code, wall seconds, stderr, RSS samples (images done, MB)."""
    start = time.perf_counter()
    err = open(out.with_suffix(".err"), "w")
    proc = subprocess.Popen(CLI + [str(folder), "--out", str(out), *extra], stdout=subprocess.DEVNULL, stderr=err)
    ps, samples, peak = psutil.Process(proc.pid), [], 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            break
        peak = max(peak, rss)
        done = len(rows(out / "cells.csv"))
        samples.append((done, rss))
        if kill_at is not None and done >= kill_at:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.25)
    code = proc.wait()
    err.close()
    return {"code": code, "seconds": time.perf_counter() - start, "samples": samples, "peak_sampled_mb": peak,
            "stderr": out.with_suffix(".err").read_text().splitlines()}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else ():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def rss_at(samples, done: int) -> float:
    """The RSS while the batch was at its last 10 images before ``done`` (median of those samples)."""
    near = sorted(mb for d, mb in samples if done - 10 < d <= done)
    return near[len(near) // 2] if near else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", default="../shared/data/tseng2023")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--kill-at", type=int, default=100)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        bad = day_folder(Path(a.release), a.n, work / "day")
        n_good = sum(1 for p in (work / "day").iterdir() if p.is_symlink())  # the test split has 195
        straight = run(work / "day", work / "straight")
        peak_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB on Linux
        table = rows(work / "straight" / "cells.csv")
        named = [b for b in bad if any(line.startswith(str(work / "day" / b) + ":") for line in straight["stderr"])]
        killed = run(work / "day", work / "resumed", kill_at=a.kill_at)
        at_kill = len(rows(work / "resumed" / "cells.csv"))
        resumed = run(work / "day", work / "resumed", "--resume")
        again = rows(work / "resumed" / "cells.csv")
        same = (work / "resumed" / "cells.csv").read_bytes() == (work / "straight" / "cells.csv").read_bytes()
        s = straight["samples"]
        print(f"chromosomenet {chromosomenet.__version__}, {cpu_name()}, {os.cpu_count()} cores\n")
        print("| measure | result | goal |\n|---|---|---|")
        print(f"| {n_good} unseen metaphases + 5 bad files ({n_good + 5} files), one batch | {len(table)} karyotyped, "
              f"{len(named)} of 5 named, "
              f"exit {straight['code']}, {straight['seconds']:.0f} s ({straight['seconds'] / max(len(table), 1):.2f} s "
              f"per metaphase) | {n_good} karyotyped, 5 named, exit non-zero |")
        print(f"| the summary line | {straight['stderr'][-1][:160]}… | – |")
        print(f"| peak RSS of the batch (kernel high-water mark) | {peak_child:.0f} MB | ≤ 2,048 MB |")
        marks = (10, 50, 100, 150, len(table))
        print(f"| RSS at {' / '.join(map(str, marks))} images | {' / '.join(f'{rss_at(s, m):.0f}' for m in marks)} MB "
              "| flat |")
        print(f"| kill -9 at {at_kill} rows, then --resume | exit {resumed['code']}, {len(again)} rows, "
              f"{len({r['cell'] for r in again})} distinct, identical to the straight run: {same} | "
              f"{n_good} rows each once, identical |")
        print(f"| the resumed run | {resumed['seconds']:.0f} s | – |")
        assert killed["code"] == -signal.SIGKILL
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
