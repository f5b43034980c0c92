"""Ray backend overhead per step (issue 10): the same job on the thread backend and on Ray.

A daemon runs in this process (``running_daemon``) with the mock provider at zero latency.
Each round runs a job of 1 step and a job of 101 steps on each backend; the per-step cost
is (T(101) - T(1)) / 100, so starting the worker (a thread, or a Ray actor process) cancels
out. On Ray every step calls home to the daemon for its checkpoint, its provider call and
its events, and that round trip is what this measures. The report gives medians and their ratio,
and how long the supervisor takes to see a ``ray.kill``-ed worker as a crash (target < 2 s).

Run: ``.venv/bin/python bench/ray_bench.py`` (writes bench/results/ray.json).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pipeline_bench  # the machine description

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cluster.conftest import ray_tree  # noqa: E402
from conformance.ray_cluster import start_local_ray  # noqa: E402

from runtime.testing.daemon_process import TREE  # noqa: E402
from runtime.testing.daemon_thread import running_daemon, settings_in  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ray.json"
ROUNDS = 7
LONG = 101


def chain(steps: int) -> str:
    lines = [
        f'    - {{name: s{i}, type: llm, provider: mock, prompt: "step {i}"}}' for i in range(steps)
    ]
    return "workflow:\n  name: chain\n  steps:\n" + "\n".join(lines) + "\n"


def job_seconds(context: Any, pipeline: Path) -> float:
    began = time.perf_counter()
    job = context.jobs.submit(str(pipeline), {}).id
    final = context.jobs.wait_future(job, 600).result(600)
    took = time.perf_counter() - began
    if final["status"] != "completed":
        raise SystemExit(f"the job ended {final['status']}: {final.get('error')}")
    return took


def per_step_us(context: Any, short: Path, long: Path) -> float:
    return (job_seconds(context, long) - job_seconds(context, short)) / (LONG - 1) * 1e6


def crash_seen_ms(ray: Any) -> list[float]:
    """``ray.kill`` a worker on Ray, ``ROUNDS`` times: how long until its supervisor knows."""
    from runtime.supervision import (
        ChildSpec,
        DynamicSupervisorSpec,
        SupervisorSpec,
        start_supervisor,
    )
    from runtime.supervision.child_spec import RaySpec

    pipelines = ChildSpec(
        id="pipelines",
        dynamic_supervisor=DynamicSupervisorSpec(intensity=ROUNDS + 1),
        backend="ray",
        ray=RaySpec(num_cpus=0),
    )
    root = start_supervisor(SupervisorSpec(children=(pipelines,)))
    try:
        handle = root.supervisor("pipelines").start_child(
            ChildSpec(id="w", actor="actors.placeholder:PlaceholderActor")
        )
        seen = []
        for generation in range(1, ROUNDS + 1):
            assert handle.wait_running(60, after_generation=generation - 1)
            actor = ray.get_actor(f"root/pipelines/w#{generation}", namespace="elexirion")
            began = time.perf_counter()
            ray.kill(actor)
            assert handle.wait_exited(generation, 60)
            seen.append((time.perf_counter() - began) * 1000)
        return seen
    finally:
        root.shutdown()


def main() -> None:
    ray = start_local_ray()
    crash_ms = crash_seen_ms(ray)
    with tempfile.TemporaryDirectory() as temp:
        base = Path(temp)
        short, long = base / "short.yaml", base / "long.yaml"
        short.write_text(chain(1))
        long.write_text(chain(LONG))
        samples: dict[str, list[float]] = {"thread": [], "ray": []}
        for backend, tree in (("thread", TREE), ("ray", ray_tree(base))):
            with running_daemon(settings_in(base / backend), tree) as context:
                per_step_us(context, short, long)  # warm up: imports, first actor
                for _ in range(ROUNDS):
                    samples[backend].append(per_step_us(context, short, long))
    thread = statistics.median(samples["thread"])
    ray = statistics.median(samples["ray"])
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": pipeline_bench.machine(),
        "rounds": ROUNDS,
        "steps": LONG,
        "per_step_us": {"thread": round(thread, 1), "ray": round(ray, 1)},
        "overhead_per_step_us": round(ray - thread, 1),
        "ratio": round(ray / thread, 2),
        "samples_us": {k: [round(v, 1) for v in vs] for k, vs in samples.items()},
        "crash_seen_ms": {
            "median": round(statistics.median(crash_ms), 1),
            "max": round(max(crash_ms), 1),
            "target_max": 2000,
        },
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(report["per_step_us"]),
        f"ratio {report['ratio']}x",
        f"crash seen after ray.kill: {json.dumps(report['crash_seen_ms'])} ms",
        sep="\n",
    )


if __name__ == "__main__":
    main()
