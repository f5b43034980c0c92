"""Run in a fresh interpreter: 10k dynamic children, or the 1k/10k timing figures.

``scale_run.py check`` (used by test_chaos) starts and stops 10,000 children
and prints what is left over. Without arguments it prints one JSON line of
seconds to start and stop N bare Pykka actors and N children of a dynamic
supervisor; bench/supervision_bench.py reports the ratio against its target.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

import pykka
import structlog

from runtime.supervision import (
    ChildSpec,
    DynamicSupervisorSpec,
    SupervisionContext,
    SupervisorSpec,
    start_supervisor,
)


class Idle(pykka.ThreadingActor):
    """The smallest child."""


class DaemonIdle(pykka.ThreadingActor):
    """The baseline: a bare Pykka actor on a daemon thread, like a supervised child."""

    use_daemon_thread = True


def supervised(count: int) -> float:
    began = time.perf_counter()
    spec = SupervisorSpec(
        children=(ChildSpec(id="dyn", dynamic_supervisor=DynamicSupervisorSpec()),)
    )
    root = start_supervisor(spec, context=SupervisionContext())
    dyn = root.supervisor("dyn")
    for index in range(count):
        dyn.start_child(ChildSpec(id=f"i{index}", actor=Idle))
    assert dyn.count_children().active == count
    root.shutdown(timeout=60)
    return time.perf_counter() - began


def bare(count: int) -> float:
    began = time.perf_counter()
    refs = [DaemonIdle.start() for _ in range(count)]
    for ref in refs:
        ref.stop(block=False)
    for ref in refs:
        assert ref.actor_stopped.wait(5)
    return time.perf_counter() - began


def main() -> None:
    # Info lines for 22,000 starts and exits would measure the console, not supervision.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if sys.argv[1:] == ["check"]:
        supervised(10_000)
        print(
            json.dumps(
                {
                    "children": 10_000,
                    "threads_left": threading.active_count(),
                    "registry_left": len(pykka.ActorRegistry.get_all()),
                }
            )
        )
        return
    supervised(200)  # warm imports, caches and the allocator
    figures = {
        "bare_1k_s": bare(1_000),
        "bare_10k_s": bare(10_000),
        "supervised_1k_s": supervised(1_000),
        "supervised_10k_s": supervised(10_000),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
