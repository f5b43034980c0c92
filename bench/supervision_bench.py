"""Supervision benchmarks: restart latency, dynamic-children scale, leaks across restarts.

Run: .venv/bin/python bench/supervision_bench.py   (about a minute on 2 cores)
Prints the figures and writes bench/results/supervision.json. Ratios are taken
against a baseline measured in the same process (bare Pykka actors).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pykka
import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.supervision import (  # noqa: E402
    ChildSpec,
    DynamicSupervisorSpec,
    SupervisionContext,
    SupervisorSpec,
    start_supervisor,
)

RESULTS = ROOT / "bench" / "results" / "supervision.json"
PAGE = os.sysconf("SC_PAGE_SIZE")


class Crashy(pykka.ThreadingActor):
    """Answers ping; a tell of "crash" raises (an exit with reason crash)."""

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash on command")
        return "pong"


class Idle(pykka.ThreadingActor):
    """An idle dynamic child."""


class DaemonIdle(pykka.ThreadingActor):
    use_daemon_thread = True


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def restart_latency(rounds: int = 2_000) -> dict[str, float]:
    """Crash on command, then time until the same handle gets an answer from the new child."""
    spec = SupervisorSpec(
        children=(ChildSpec(id="c", actor=Crashy),), intensity=rounds + 10, period_s=1
    )
    root = start_supervisor(spec, context=SupervisionContext())
    handle = root.child("c")
    samples = []
    for _ in range(rounds):
        generation = handle.generation
        began = time.perf_counter()
        handle.tell("crash")
        if not handle.wait_running(5, after_generation=generation):
            raise RuntimeError("child was not restarted within 5 s")
        handle.ask("ping", timeout=5)
        samples.append((time.perf_counter() - began) * 1e3)
    root.shutdown()
    return {
        "rounds": rounds,
        "p50_ms": statistics.median(samples),
        "p99_ms": percentile(samples, 0.99),
        "max_ms": max(samples),
    }


def supervised_children(count: int) -> tuple[float, float, int]:
    """Seconds to start ``count`` dynamic children, seconds to stop them, RSS they added."""
    spec = SupervisorSpec(
        children=(ChildSpec(id="dyn", dynamic_supervisor=DynamicSupervisorSpec()),)
    )
    root = start_supervisor(spec, context=SupervisionContext())
    dyn = root.supervisor("dyn")
    specs = [ChildSpec(id=f"i{index}", actor=Idle) for index in range(count)]
    rss_before = rss_bytes()
    began = time.perf_counter()
    for child in specs:
        dyn.start_child(child)
    started = time.perf_counter()
    rss_added = rss_bytes() - rss_before
    root.shutdown(timeout=120)
    return started - began, time.perf_counter() - started, rss_added


def bare_actors(count: int) -> float:
    began = time.perf_counter()
    refs = [DaemonIdle.start() for _ in range(count)]
    for ref in refs:
        ref.stop(block=False)
    for ref in refs:
        ref.actor_stopped.wait(30)
    return time.perf_counter() - began


def scale() -> dict[str, float]:
    supervised_children(200)
    bare_1k, bare_10k = bare_actors(1_000), bare_actors(10_000)
    start_1k, stop_1k, _ = supervised_children(1_000)
    start_10k, stop_10k, rss_10k = supervised_children(10_000)
    total_1k, total_10k = start_1k + stop_1k, start_10k + stop_10k
    return {
        "supervised_1k_s": total_1k,
        "supervised_10k_s": total_10k,
        "supervised_10k_start_s": start_10k,
        "supervised_10k_stop_s": stop_10k,
        "ratio_10k_over_1k": total_10k / total_1k,
        "bare_pykka_1k_s": bare_1k,
        "bare_pykka_10k_s": bare_10k,
        "bare_ratio_10k_over_1k": bare_10k / bare_1k,
        "rss_per_idle_child_kib": rss_10k / 10_000 / 1024,
    }


def leaks(restarts: int = 1_000) -> dict[str, int]:
    baseline_threads = threading.active_count()
    baseline_registry = len(pykka.ActorRegistry.get_all())
    rss_before = rss_bytes()
    spec = SupervisorSpec(
        children=(ChildSpec(id="c", actor=Crashy),), intensity=restarts + 10, period_s=1
    )
    root = start_supervisor(spec, context=SupervisionContext())
    handle = root.child("c")
    during_threads = threading.active_count()
    for _ in range(restarts):
        generation = handle.generation
        handle.tell("crash")
        handle.wait_running(5, after_generation=generation)
    root.wait_processed()
    after_threads = threading.active_count()
    after_registry = len(pykka.ActorRegistry.get_all())
    root.shutdown()
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and thread.daemon:
            thread.join(5)
    return {
        "restarts": restarts,
        "threads_before": baseline_threads,
        "threads_running_tree_before_restarts": during_threads,
        "threads_running_tree_after_restarts": after_threads,
        "threads_after_shutdown": threading.active_count(),
        "registry_before": baseline_registry,
        "registry_running_tree_after_restarts": after_registry,
        "registry_after_shutdown": len(pykka.ActorRegistry.get_all()),
        "rss_before_kib": rss_before // 1024,
        "rss_after_kib": rss_bytes() // 1024,
    }


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    results = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "restart_latency": restart_latency(),
        "scale": scale(),
        "leaks_after_restarts": leaks(),
    }
    lat, sc, lk = results["restart_latency"], results["scale"], results["leaks_after_restarts"]
    print(
        f"crash -> restarted child answers: p50 {lat['p50_ms']:.3f} ms, "
        f"p99 {lat['p99_ms']:.3f} ms (target < 1 ms), max {lat['max_ms']:.2f} ms"
    )
    print(
        f"dynamic children start+stop: 1k {sc['supervised_1k_s']:.2f} s, "
        f"10k {sc['supervised_10k_s']:.2f} s, ratio x{sc['ratio_10k_over_1k']:.1f} "
        f"(target <= 12; bare Pykka in this process x{sc['bare_ratio_10k_over_1k']:.1f})"
    )
    print(f"memory per idle child: {sc['rss_per_idle_child_kib']:.1f} KiB RSS")
    print(
        f"1,000 restarts: threads {lk['threads_running_tree_before_restarts']} -> "
        f"{lk['threads_running_tree_after_restarts']} "
        f"(after shutdown {lk['threads_after_shutdown']},"
        f" baseline {lk['threads_before']}); registry {lk['registry_running_tree_after_restarts']}"
        f" (after shutdown {lk['registry_after_shutdown']}); RSS {lk['rss_before_kib']} -> "
        f"{lk['rss_after_kib']} KiB"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
