"""Load and scale: random crashes under concurrent calls, 1,000 restarts, 10k vs 1k children."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pykka

from conformance.children import WAIT_S, Boom, Crash, Journal, probe
from runtime.errors import CallTimeout, ChildNotRunning
from runtime.supervision import (
    ChildHandle,
    Reply,
    SupervisionContext,
    SupervisorSpec,
    start_supervisor,
)
from runtime.supervision.registry import live_actors, wait_threads_back

CHAOS_S = 2.0


def drain(handle: ChildHandle) -> None:
    """Return once every message told to ``handle`` before now has been handled or dropped."""
    for _ in range(50):
        generation = handle.generation
        try:
            assert handle.ask("ping", timeout=WAIT_S) == "pong"
            return
        except ChildNotRunning:
            handle.wait_running(WAIT_S, after_generation=generation)
    raise AssertionError(f"{handle.path} never settled")


def test_random_crashes_under_concurrent_calls_leave_nothing_hung_or_leaked(
    journal: Journal,
) -> None:
    """Callers never hang, every future resolves, restart counts match crashes, nothing leaks."""
    baseline_threads = set(threading.enumerate())
    baseline_actors = live_actors()
    names = [f"c{i}" for i in range(4)]
    spec = SupervisorSpec(
        children=tuple(probe(name, journal) for name in names), intensity=1_000_000, period_s=1
    )
    root = start_supervisor(spec, context=SupervisionContext())
    handles = [root.child(name) for name in names]
    stop = threading.Event()
    replies: list[list[Reply]] = [[] for _ in range(4)]
    hung: list[BaseException] = []
    answered = [0] * 4

    def caller(index: int) -> None:
        rng = random.Random(index)
        while not stop.is_set():
            reply = rng.choice(handles).ask_async("ping")
            replies[index].append(reply)
            try:
                assert reply.get(WAIT_S) == "pong"
                answered[index] += 1
            except ChildNotRunning:
                pass
            except CallTimeout as exc:
                hung.append(exc)

    def crasher() -> None:
        rng = random.Random(99)
        while not stop.is_set():
            with contextlib.suppress(ChildNotRunning):
                rng.choice(handles).tell(Crash(Boom()))
            stop.wait(0.002)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    threads.append(threading.Thread(target=crasher))
    for thread in threads:
        thread.start()
    stop.wait(CHAOS_S)
    stop.set()
    for thread in threads:
        thread.join(WAIT_S)
    assert not any(thread.is_alive() for thread in threads)
    assert hung == []
    assert all(reply.done() for batch in replies for reply in batch)
    assert sum(answered) > 100
    for handle in handles:
        drain(handle)
    root.wait_processed()
    crashes = {name: journal.count(name, "crashing") for name in names}
    assert sum(crashes.values()) > 20
    snap = root.tree()
    for name, handle in zip(names, handles, strict=True):
        assert snap.find(f"root/{name}").restart_count == crashes[name]
        assert handle.generation == crashes[name] + 1
    root.shutdown()
    assert wait_threads_back(baseline_threads, WAIT_S) == []
    assert live_actors() == baseline_actors


def test_a_thousand_restarts_leak_no_thread_or_registry_entry(journal: Journal) -> None:
    """After 1,000 crash/restart cycles the thread count and registry are back to baseline."""
    baseline_threads = set(threading.enumerate())
    spec = SupervisorSpec(children=(probe("c", journal),), intensity=10_000, period_s=1)
    root = start_supervisor(spec, context=SupervisionContext())
    handle = root.child("c")
    actors_running = live_actors()
    for generation in range(1, 1001):
        handle.tell(Crash(Boom()))
        assert handle.wait_running(WAIT_S, after_generation=generation)
    root.wait_processed()
    assert live_actors() == actors_running
    assert len(threading.enumerate()) <= len(baseline_threads) + actors_running + 1
    assert root.tree().find("root/c").restart_count == 1000
    root.shutdown()
    assert wait_threads_back(baseline_threads, WAIT_S) == []
    assert pykka.ActorRegistry.get_all() == []


def test_ten_thousand_dynamic_children_start_and_stop_without_leaks() -> None:
    """10k children all start under one dynamic supervisor and all go away on shutdown.

    Runs in a fresh interpreter so the count of threads left is exact. The time
    ratio against 1k children is a performance figure, reported by
    bench/supervision_bench.py rather than asserted here.
    """
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")])}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("scale_run.py")), "check"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures == {"children": 10_000, "threads_left": 1, "registry_left": 0}
