"""The Space under load on this CPU: N concurrent clients send bare metaphases for M seconds.

    python bench/bench_space_load.py [--clients 8] [--seconds 120]

The app (`chromosomenet serve`, the shipped classifier and detector) runs as its own process on a free
127.0.0.1 port: nothing leaves the machine. Each client is a `gradio_client.Client` in its own thread,
sending the embedded sample's metaphases one after another (each waits for its answer: a person at the
page). Every answer's ISCN is checked against the same pipeline called in this process beforehand.
Reported: answers, errors, wrong answers, latency p50 / p95 / max (upload + queue + work + download),
throughput, and the server's RSS at rest and at its peak (sampled every 0.2 s, with its children).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from gradio_client import Client, handle_file

import chromosomenet
from chromosomenet.apps.engine import Engine, karyotype_metaphase
from chromosomenet.apps.serve import CONCURRENCY, QUEUE_SIZE, default_model_spec

STEMS = ("103181", "1051261", "1032292", "1050161")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(p: psutil.Process) -> float:
    total = 0
    for q in [p] + p.children(recursive=True):
        try:
            total += q.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=120)
    a = ap.parse_args()
    images = [chromosomenet.sample_metaphases_dir() / f"{s}.jpg" for s in STEMS]
    engine = Engine(default_model_spec())
    with tempfile.TemporaryDirectory() as tmp:
        want = {str(p): karyotype_metaphase(engine, p, None, Path(tmp) / p.stem).call.iscn or "no karyotype called"
                for p in images}
    del engine
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "chromosomenet", "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            try:
                Client(url, verbose=False)
                break
            except Exception:
                time.sleep(0.5)
        proc = psutil.Process(server.pid)
        rest = rss_mb(proc)
        peak, stop = [rest], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak.append(rss_mb(proc))
                time.sleep(0.2)

        results: list[tuple[float, str]] = []  # (seconds, "ok" | "wrong" | error text)
        lock = threading.Lock()
        end = time.monotonic() + a.seconds

        def client(k: int) -> None:
            c = Client(url, verbose=False)
            j = k
            while time.monotonic() < end:
                path = images[j % len(images)]
                j += 1
                start = time.perf_counter()
                try:
                    out = c.predict(handle_file(str(path)), None, api_name="/karyotype_metaphase")
                    status = "ok" if out[2] == want[str(path)] else f"wrong: {out[2]} for {path.name}"
                except Exception as e:  # counted, never hidden
                    status = f"error: {type(e).__name__}: {e}"
                with lock:
                    results.append((time.perf_counter() - start, status))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
        watcher = threading.Thread(target=sample)
        watcher.start()
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        stop.set()
        watcher.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    lat = sorted(s for s, _ in results)
    bad = [st for _, st in results if st != "ok"]
    q = statistics.quantiles(lat, n=20) if len(lat) >= 2 else lat * 19
    print(f"{a.clients} clients, {a.seconds:.0f} s, {os.cpu_count()} cores; the app: concurrency {CONCURRENCY}, "
          f"queue {QUEUE_SIZE}\n")
    print("| measure | result |\n|---|---|")
    print(f"| answers (bare metaphase → karyogram, ISCN, table, downloads) | {len(results)} in {wall:.0f} s "
          f"({60 * len(results) / wall:.0f} per minute) |")
    print(f"| errors / wrong answers | {sum(b.startswith('error') for b in bad)} / {sum(b.startswith('wrong') for b in bad)} |")
    print(f"| latency p50 / p95 / max | {statistics.median(lat):.1f} / {q[18]:.1f} / {lat[-1]:.1f} s |")
    print(f"| server RSS at rest / peak | {rest:.0f} / {max(peak):.0f} MB |")
    for b in sorted(set(bad))[:5]:
        print(f"\n{b}")


if __name__ == "__main__":
    main()
