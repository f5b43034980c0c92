"""The store's owner in the tree: checks the database on start, closes it last on stop.

Writes are serialized by the single connection the daemon opened
(``runtime.store.Store`` holds one connection behind a lock), so there is one
writer per state directory; the daemon's lock file keeps it one per machine.
"""

from __future__ import annotations

import pykka

from runtime import WorkerStatus, daemon_context


class StoreActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, role: str = "store") -> None:
        super().__init__()
        self.role = role

    def on_start(self) -> None:
        daemon_context().store.check()

    def ping(self) -> str:
        daemon_context().store.check()
        return "pong"

    def supervision_status(self) -> WorkerStatus:
        store = daemon_context().store
        return WorkerStatus(detail=(("db", store.path.name), ("schema", str(store.schema_version))))
