"""Provider pool benchmarks (issue 4).

1. 256 concurrent calls through the anthropic pool (64 workers, the real SDK)
   against the local fake API (in its own process, like a real remote API)
   answering after 100 ms: wall time against the ideal 256 / 64 * 0.1 s = 0.4 s
   (target: within 1.5x).
2. Mock pool throughput: calls per second through the same PoolGateway path
   (breaker, limiter, retry, bulkhead, worker actor) with a zero-latency mock
   (target: over 5,000 calls/s), and the bare mock call for comparison.

Run: ``.venv/bin/python bench/provider_bench.py`` (writes bench/results/provider.json).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import platform
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from runtime.config import Settings
from runtime.providers.base import LLMRequest
from runtime.providers.mock import MockProvider
from runtime.providers.pool import PoolGateway
from runtime.supervision import ChildSpec, SupervisionContext, SupervisorSpec, start_supervisor
from runtime.testing.fake_anthropic import AnthropicReply, FakeAnthropic

RESULTS = Path(__file__).resolve().parent / "results" / "provider.json"


def pools(spec: dict[str, tuple[str, int]]) -> SupervisorSpec:
    children = tuple(
        ChildSpec.model_validate(
            {
                "id": name,
                "pool": {
                    "size": size,
                    "actor": "actors.provider:ProviderWorker",
                    "args": {"provider": provider},
                },
            }
        )
        for name, (provider, size) in spec.items()
    )
    return SupervisorSpec(
        children=(ChildSpec(id="providers", supervisor=SupervisorSpec(children=children)),)
    )


def serve_fake(urls: Any, stop: Any) -> None:
    """The fake API in its own process, as the real one would be: it must not share our GIL."""
    with FakeAnthropic(default=AnthropicReply(text="ok", delay_s=0.1)) as fake:
        urls.put(fake.base_url)
        stop.wait(600)


def anthropic_pool(rounds: int = 5) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    urls, stop = context.Queue(), context.Event()
    server = context.Process(target=serve_fake, args=(urls, stop), daemon=True)
    server.start()
    try:
        os.environ["ANTHROPIC_API_KEY"] = "sk-bench"
        os.environ["ANTHROPIC_BASE_URL"] = urls.get(timeout=60)
        root = start_supervisor(
            pools({"anthropic": ("anthropic", 64)}), context=SupervisionContext()
        )
        gateway = PoolGateway.from_tree(root.supervisor("providers"), Settings.from_env())
        request = LLMRequest(prompt="hi", provider="anthropic", max_tokens=16, timeout_s=30)
        walls: list[float] = []
        try:
            with ThreadPoolExecutor(max_workers=256) as callers:
                list(callers.map(lambda _: gateway.complete(request), range(128)))  # warm-up
                for _ in range(rounds):
                    began = time.perf_counter()
                    answers = list(callers.map(lambda _: gateway.complete(request), range(256)))
                    walls.append(time.perf_counter() - began)
                    assert all(a.text == "ok" for a in answers)
        finally:
            gateway.close()
            root.shutdown()
    finally:
        stop.set()
        server.join(10)
    ideal = 256 / 64 * 0.1
    median = statistics.median(walls)
    return {
        "calls": 256,
        "pool_size": 64,
        "latency_s": 0.1,
        "ideal_s": ideal,
        "wall_median_s": median,
        "wall_min_s": min(walls),
        "wall_max_s": max(walls),
        "ratio_to_ideal": median / ideal,
        "rounds": rounds,
    }


def mock_pool(seconds: float = 3.0, callers: int = 8) -> dict[str, Any]:
    root = start_supervisor(pools({"mock": ("mock", 8)}), context=SupervisionContext())
    gateway = PoolGateway.from_tree(root.supervisor("providers"), Settings.from_env({}))
    request = LLMRequest(prompt="hello there", provider="mock")
    counts = [0] * callers
    stop = threading.Event()

    def loop(index: int) -> None:
        while not stop.is_set():
            gateway.complete(request)
            counts[index] += 1

    try:
        for _ in range(500):
            gateway.complete(request)
        threads = [threading.Thread(target=loop, args=(i,)) for i in range(callers)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        stop.wait(seconds)
        stop.set()
        for thread in threads:
            thread.join(10)
        elapsed = time.perf_counter() - began
    finally:
        gateway.close()
        root.shutdown()
    bare = MockProvider()
    began = time.perf_counter()
    for _ in range(20_000):
        bare.complete(request)
    bare_rate = 20_000 / (time.perf_counter() - began)
    rate = sum(counts) / elapsed
    return {
        "pool_size": 8,
        "callers": callers,
        "calls": sum(counts),
        "calls_per_s": rate,
        "bare_mock_calls_per_s": bare_rate,
        "pool_share_of_bare": rate / bare_rate,
    }


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print("anthropic pool: 256 calls, 64 workers, 100 ms fake latency ...", flush=True)
    anthropic = anthropic_pool()
    print("mock pool throughput ...", flush=True)
    mock = mock_pool()
    ok1 = anthropic["ratio_to_ideal"] <= 1.5
    ok2 = mock["calls_per_s"] > 5000
    print()
    print(f"{'figure':<52}{'measured':>14}{'target':>14}  result")
    print("-" * 88)
    print(
        f"{'256 calls / pool 64 / 100 ms, wall (median of 5)':<52}"
        f"{anthropic['wall_median_s']:>12.3f} s{'<= 0.60 s':>14}  {'PASS' if ok1 else 'FAIL'}"
    )
    print(f"{'  ratio to the ideal 0.4 s':<52}{anthropic['ratio_to_ideal']:>13.2f}x{'<= 1.5x':>14}")
    print(
        f"{'mock pool throughput (8 callers, 8 workers)':<52}"
        f"{mock['calls_per_s']:>8.0f} call/s{'> 5000/s':>14}  {'PASS' if ok2 else 'FAIL'}"
    )
    print(
        f"{'  bare mock call, same process':<52}{mock['bare_mock_calls_per_s']:>8.0f} call/s"
        f"{'':>14}  ratio {mock['pool_share_of_bare']:.3f}"
    )
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "anthropic_pool": anthropic,
        "mock_pool": mock,
    }
    if "--no-write" not in sys.argv:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
