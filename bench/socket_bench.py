"""Socket benchmark: ping latency with 100 concurrent clients, and the client pool.

Run: .venv/bin/python bench/socket_bench.py   (about 20 s on 2 cores)
Prints the figures and writes bench/results/socket.json (``--no-write`` skips it).

The server runs in this process with a handler that answers ``ping`` at once;
the 100 clients are threads (one ``Client``, hence one connection, each) spread
over 4 subprocesses, so the server does not share a GIL with them. Figures:

1. ``paced``: every client pings 20 times a second (2,000 requests/s in all)
   for 6 s; median and p99 round trip after a 1 s warm-up. Target p99 < 2 ms.
2. ``saturated``: every client pings back to back for 4 s; throughput and the
   latency that queueing adds (no target: it shows the ceiling).
3. ``client_pool``: 50 threads sharing one ``Client`` (a pool of connections)
   against the same 50 threads serialised on one connection behind a lock.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.client import Client  # noqa: E402
from runtime.protocol import Request  # noqa: E402
from runtime.socket_server import Connection, SocketServer  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "socket.json"
CLIENTS = 100
PROCESSES = 4
TARGET_P99_MS = 2.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 4),
        "p90_ms": round(percentile(ms, 0.90), 4),
        "p99_ms": round(percentile(ms, 0.99), 4),
        "max_ms": round(max(ms), 4),
    }


def handler(request: Request, connection: Connection) -> Any:
    return "pong" if request.method == "ping" else dict(request.params)


# -- the client subprocesses --------------------------------------------------------------


def worker(path: str, threads: int, start_at: float, seconds: float, rate_hz: float) -> None:
    """Run ``threads`` clients; print their latencies (seconds) as JSON on stdout."""
    samples: list[list[float]] = [[] for _ in range(threads)]
    warmup_end = start_at + 1.0
    stop_at = start_at + seconds

    def run(index: int) -> None:
        client = Client(path, timeout=10, max_idle=1)
        client.call("ping")  # connect before the clock starts
        period = 1.0 / rate_hz if rate_hz > 0 else 0.0
        # Stagger the paced clients so they do not all fire in the same instant.
        next_at = start_at + (index / threads) * period
        mine = samples[index]
        while True:
            if period:
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_at += period
            began = time.monotonic()
            if began >= stop_at:
                break
            client.call("ping")
            if began >= warmup_end:
                mine.append(time.monotonic() - began)
        client.close()

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    json.dump([s for per_thread in samples for s in per_thread], sys.stdout)


def load(path: Path, seconds: float, rate_hz: float) -> dict[str, Any]:
    start_at = time.monotonic() + 1.5  # time for the subprocesses to import and connect
    per_process = CLIENTS // PROCESSES
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                str(path),
                str(per_process),
                repr(start_at),
                repr(seconds),
                repr(rate_hz),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    samples: list[float] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"a client process failed with status {proc.returncode}")
        samples.extend(json.loads(out))
    measured_s = seconds - 1.0
    result: dict[str, Any] = summary(samples)
    result["requests_per_s"] = round(len(samples) / measured_s)
    result["clients"] = CLIENTS
    result["rate_hz_per_client"] = rate_hz or "unpaced"
    return result


# -- the client pool versus one locked connection ----------------------------------------


class LockedClient:
    """The alternative design: one connection, callers take turns."""

    def __init__(self, path: Path) -> None:
        self.client = Client(path, timeout=10, max_idle=1)
        self.lock = threading.Lock()

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        with self.lock:
            return self.client.call(method, params)


def pool_versus_lock(path: Path, threads: int = 50, calls: int = 200) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, make in (
        ("pool", lambda: Client(path, timeout=10)),
        ("one_connection_locked", lambda: LockedClient(path)),
    ):
        client = make()
        client.call("ping")
        latencies: list[float] = []
        lock = threading.Lock()

        def run(
            _: int,
            client: Any = client,
            lock: threading.Lock = lock,
            latencies: list[float] = latencies,
        ) -> None:
            mine = []
            for _ in range(calls):
                began = time.perf_counter()
                client.call("ping")
                mine.append(time.perf_counter() - began)
            with lock:
                latencies.extend(mine)

        began = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, range(threads)))
        elapsed = time.perf_counter() - began
        entry: dict[str, Any] = summary(latencies)
        entry["calls_per_s"] = round(threads * calls / elapsed)
        results[name] = entry
        inner = client.client if isinstance(client, LockedClient) else client
        inner.close()
    results["threads"] = threads
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--worker", nargs=5, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        path, threads, start_at, seconds, rate = args.worker
        worker(path, int(threads), float(start_at), float(seconds), float(rate))
        return
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="elx-bench-", dir="/tmp") as tmp:
        path = Path(tmp) / "run" / "elx.sock"
        server = SocketServer(path, handler, max_connections=1024)
        server.start()
        try:
            paced = load(path, seconds=7.0, rate_hz=20.0)
            saturated = load(path, seconds=5.0, rate_hz=0.0)
            pool = pool_versus_lock(path)
        finally:
            server.stop(5)
    results = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d"),
        "target_p99_ms": TARGET_P99_MS,
        "paced": paced,
        "saturated": saturated,
        "client_pool": pool,
    }
    verdict = "PASS" if paced["p99_ms"] < TARGET_P99_MS else "FAIL  <<<"
    print(
        f"ping, {CLIENTS} clients at 20 Hz ({paced['requests_per_s']} req/s): "
        f"median {paced['median_ms']:.3f} ms, p99 {paced['p99_ms']:.3f} ms "
        f"(target < {TARGET_P99_MS} ms) {verdict}"
    )
    print(
        f"ping, {CLIENTS} clients back to back: {saturated['requests_per_s']} req/s, "
        f"median {saturated['median_ms']:.3f} ms, p99 {saturated['p99_ms']:.3f} ms"
    )
    for name in ("pool", "one_connection_locked"):
        entry = pool[name]
        print(
            f"one Client, 50 threads, {name}: {entry['calls_per_s']} calls/s, "
            f"median {entry['median_ms']:.3f} ms, p99 {entry['p99_ms']:.3f} ms"
        )
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
