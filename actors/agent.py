"""The agent in the tree: routing, sessions, jobs and fallbacks (``runtime.agent.Agent``).

Requests do not pass through this actor's mailbox: ``ask`` returns a future
and its work runs on the agent's own small pool, so a thousand concurrent
requests never queue behind one thread. The actor shows the agent's load in
`elx tree` and is where the agent lives in the supervision tree.
"""

from __future__ import annotations

import pykka

from runtime import WorkerStatus, daemon_context


class AgentActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def ping(self) -> str:
        return "pong"

    def supervision_status(self) -> WorkerStatus:
        agent = daemon_context().agent
        if agent is None:
            return WorkerStatus(detail=(("agent", "starting"),))
        load = agent.status()
        return WorkerStatus(
            detail=(("in_flight", str(load["in_flight"])), ("answered", str(load["answered"])))
        )
