"""The one place that touches Pykka's global ActorRegistry and the process's threads."""

from __future__ import annotations

import threading
import time

import pykka


def live_actors() -> int:
    return len(pykka.ActorRegistry.get_all())


def stop_all_actors(timeout: float = 5.0) -> None:
    """Stop every registered actor, oldest first, never waiting on one forever.

    Oldest first stops root supervisors before their children, so nothing is
    restarted while the tree comes down.
    """
    seen: set[str] = set()
    while True:
        pending = [ref for ref in pykka.ActorRegistry.get_all() if ref.actor_urn not in seen]
        if not pending:
            return
        ref = pending[0]
        seen.add(ref.actor_urn)
        try:
            ref.stop(block=True, timeout=timeout)
        except (pykka.ActorDeadError, pykka.Timeout):
            pykka.ActorRegistry.unregister(ref)


def wait_threads_back(baseline: set[threading.Thread], timeout: float) -> list[threading.Thread]:
    """Join the threads started since ``baseline``; return the ones still alive at the deadline."""
    deadline = time.monotonic() + timeout
    extra = [t for t in threading.enumerate() if t not in baseline]
    for thread in extra:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in threading.enumerate() if t not in baseline and t.is_alive()]
