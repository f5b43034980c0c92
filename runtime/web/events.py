"""A job's events as an async stream: what it did so far, then live, until it ends.

The job manager calls listeners on its own threads; each event crosses to the
gateway's event loop through ``call_soon_threadsafe`` into a bounded queue. A
client too slow to keep up loses the stream (it is told so), never the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.daemon import DaemonContext

FINAL = frozenset({"completed", "failed", "cancelled", "budget_exceeded"})
QUEUE_LIMIT = 4096
_STOP_CHECK_S = 1.0


async def job_events(context: DaemonContext, job_id: str) -> AsyncIterator[dict[str, Any]]:
    """Yield ``job_id``'s events; the last one is its final ``job`` event, or an ``end``
    event when the daemon stops or the client fell too far behind."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
    overflowed = False

    def put(event: dict[str, Any]) -> None:
        nonlocal overflowed
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            overflowed = True

    def listener(event: dict[str, Any]) -> None:
        if event.get("job") == job_id:
            with contextlib.suppress(RuntimeError):  # the loop closed: the client is gone
                loop.call_soon_threadsafe(put, event)

    remove = context.jobs.add_listener(listener, replay=[job_id])
    try:
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), _STOP_CHECK_S)
            except TimeoutError:
                if context.stopping.is_set():
                    yield {"type": "end", "job": job_id, "reason": "the daemon is stopping"}
                    return
                continue
            yield event
            if event.get("type") == "job" and event.get("status") in FINAL:
                return
            if overflowed:
                yield {"type": "end", "job": job_id, "reason": "the client fell behind"}
                return
    finally:
        remove()
