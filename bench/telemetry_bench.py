"""Telemetry overhead (issue 7): per-step cost of a run with telemetry on vs off.

The chain of bench/pipeline_bench.py (200 ``claude`` steps on a zero-latency
mock, checkpointed to a real SQLite store) runs alternately

* **off**: the daemon without telemetry: each step event becomes the dict the
  job manager keeps for subscribers, and nothing more;
* **on**: every step event goes through the daemon's path (the job event dict
  → ``from_job_event`` → ``Telemetry.emit``), every provider call emits a
  ``ProviderCall``, and the consumer thread applies them to the metrics and
  writes the per-step performance record to the same store. The timed region
  ends after ``drain()``, so the consumer's work is counted too.

Two baselines: the bare executor with the in-process gateway (the harshest: a
step costs ~100 µs there), and the daemon's own path, where each call goes
through the provider pool (PoolGateway → a ProviderWorker actor), as in
`elx daemon`; there "on" means the PoolGateway emits its own ProviderCall.

Target: "on" adds under 10 % per step. Medians of 15 runs each, interleaved.
Run: ``.venv/bin/python bench/telemetry_bench.py`` (writes bench/results/telemetry.json).
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import tempfile
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pipeline_bench  # the chain, the harness and the machine description

from runtime.pipeline.events import RunEvent
from runtime.pipeline.executor import run_pipeline
from runtime.providers.base import LLMRequest, LLMResponse
from runtime.providers.pool import PoolGateway
from runtime.state_dir import open_state
from runtime.supervision import boot
from runtime.telemetry import ProviderCall, Telemetry, from_job_event

RESULTS = Path(__file__).resolve().parent / "results" / "telemetry.json"
RUNS = 15
TARGET = 0.10


class EmittingGateway:
    """The gateway the chain uses, emitting a ProviderCall per call as PoolGateway does."""

    def __init__(self, inner: Any, telemetry: Telemetry) -> None:
        self.inner = inner
        self.telemetry = telemetry

    def complete(self, request: LLMRequest) -> LLMResponse:
        started = time.monotonic()
        response: LLMResponse = self.inner.complete(request)
        self.telemetry.emit(
            ProviderCall(
                response.provider,
                time.monotonic() - started,
                "ok",
                response.model,
                response.usage.input_tokens,
                response.usage.output_tokens,
                response.cost_usd,
            )
        )
        return response


TREE = """
version: 1
name: root
root:
  strategy: one_for_one
  children:
    - id: providers
      supervisor:
        children:
          - id: mock
            pool: {size: 4, actor: "actors.provider:ProviderWorker", args: {provider: mock}}
"""


def one_run(h: Any, store: Any, telemetry: Telemetry | None, gateway: Any = None) -> float:
    steps = pipeline_bench.EXECUTOR_STEPS
    if gateway is None:
        gateway = h.gateway if telemetry is None else EmittingGateway(h.gateway, telemetry)
    history: deque[dict[str, Any]] = deque(maxlen=2000)

    def events(event: RunEvent) -> None:
        # What runtime/jobs.py does for every event with or without telemetry: a dict
        # for subscribers and the job's history. Telemetry adds the conversion and emit.
        data = {
            "type": "step",
            "job": "bench",
            "event": event.kind.value,
            "step": event.path,
            "step_type": event.step_type,
            "duration_ms": round(event.duration_ms, 3),
            "message": event.message,
            "pipeline": "bench-chain",
            **event.meta,
        }
        history.append(data)
        if telemetry is not None:
            typed = from_job_event(data)
            if typed is not None:
                telemetry.emit(typed)

    gc.collect()
    started = time.perf_counter()
    result = run_pipeline(
        h.loaded, {}, gateway=gateway, settings=h.settings, store=store, events=events
    )
    if telemetry is not None and not telemetry.drain(60):
        raise SystemExit("telemetry did not drain within 60 s")
    elapsed = time.perf_counter() - started
    if not result.ok or len(result.steps) != steps:
        raise SystemExit(f"the chain did not complete: {result.status} {result.error}")
    return elapsed / steps * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        h = pipeline_bench._harness(Path(tmp))
        store = open_state(h.settings)
        telemetry = Telemetry(store=store)
        telemetry.start()
        tree_file = Path(tmp) / "tree.yaml"
        tree_file.write_text(TREE)
        root = boot(tree_file)
        try:
            pool_off = PoolGateway.from_tree(root.supervisor("providers"), h.settings)
            pool_on = PoolGateway.from_tree(
                root.supervisor("providers"), h.settings, telemetry=telemetry.emit
            )
            for _ in range(2):  # warm-up of every path
                one_run(h, store, None)
                one_run(h, store, telemetry)
                one_run(h, store, None, pool_off)
                one_run(h, store, telemetry, pool_on)
            off, on, daemon_off, daemon_on = [], [], [], []
            for _ in range(RUNS):
                off.append(one_run(h, store, None))
                on.append(one_run(h, store, telemetry))
                daemon_off.append(one_run(h, store, None, pool_off))
                daemon_on.append(one_run(h, store, telemetry, pool_on))
            counts = telemetry.counts()
        finally:
            root.shutdown()
            telemetry.stop()
            store.close()
    off_us, on_us = statistics.median(off), statistics.median(on)
    added = on_us / off_us - 1
    d_off, d_on = statistics.median(daemon_off), statistics.median(daemon_on)
    d_added = d_on / d_off - 1
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": pipeline_bench.machine(),
        "steps_per_run": pipeline_bench.EXECUTOR_STEPS,
        "runs": RUNS,
        "off_step_us": round(off_us, 1),
        "on_step_us": round(on_us, 1),
        "added": round(added, 4),
        "off_each_us": [round(v, 1) for v in off],
        "on_each_us": [round(v, 1) for v in on],
        "daemon_path_off_step_us": round(d_off, 1),
        "daemon_path_on_step_us": round(d_on, 1),
        "daemon_path_added": round(d_added, 4),
        "events_applied": counts["applied"],
        "events_dropped": counts["dropped"],
    }
    for name, a, b, extra in (
        ("bare executor", off_us, on_us, added),
        ("daemon path (provider pool)", d_off, d_on, d_added),
    ):
        verdict = "PASS" if extra < TARGET else "FAIL"
        print(
            f"{name:<30} per step: off {a:7.1f} µs, on {b:7.1f} µs → {extra * 100:+5.1f} % "
            f"(target < {TARGET * 100:.0f} %)  {verdict}"
        )
    print(f"events applied {counts['applied']}, dropped {counts['dropped']}")
    if "--no-write" not in sys.argv:
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
