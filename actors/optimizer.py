"""The optimizer in the tree: compiles run as child processes off to the side.

The actor owns the ``CompileRunner`` (runtime/optimize/runner.py); requests do
not go through its mailbox, so a long compile never blocks anyone. If it is
stopped or crashes, pipelines keep their current prompts and the health
monitor reports the optimizer down (and switches to static prompts).
"""

from __future__ import annotations

import pykka

from runtime import WorkerStatus, daemon_context


class OptimizerActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def on_start(self) -> None:
        from runtime.optimize.runner import CompileRunner

        context = daemon_context()
        context.optimizer = CompileRunner(context.settings.state_dir, context.telemetry)

    def on_stop(self) -> None:
        context = daemon_context()
        if context.optimizer is not None:
            context.optimizer.close()
            context.optimizer = None

    def ping(self) -> str:
        return "pong"

    def supervision_status(self) -> WorkerStatus:
        runner = daemon_context().optimizer
        running = sum(1 for c in runner.list() if c["status"] == "running") if runner else 0
        return WorkerStatus(detail=(("compiling", str(running)),))
