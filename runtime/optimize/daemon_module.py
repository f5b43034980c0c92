"""Elexirion inside your own DSPy program: a module whose forward asks a running daemon.

``ElexirionPipeline(state_dir)`` is a ``dspy.Module`` with the signature
``high_level_goal -> pipeline_result``: ``forward`` sends the goal to the
daemon's agent (the socket's ``ask``), which routes it to a pipeline, runs it
as a durable job and answers. Put it in a larger DSPy program and optimize
the high-level request like any other module; `elx ask --json "..."` is the
same call as a subprocess.

Importing this module imports DSPy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.client import Client
from runtime.optimize.language_model import load_dspy

dspy = load_dspy()


class ElexirionPipeline(dspy.Module):  # type: ignore[misc,name-defined]
    """``high_level_goal -> pipeline_result`` through the daemon's agent."""

    def __init__(
        self,
        state_dir: str | Path = ".elexirion",
        *,
        timeout_s: float = 300.0,
        session: str | None = None,
    ) -> None:
        super().__init__()
        self.client = Client(Path(state_dir) / "elx.sock", timeout=timeout_s + 30)
        self.timeout_s = timeout_s
        self.session = session

    def forward(self, high_level_goal: str) -> Any:
        params: dict[str, Any] = {"text": high_level_goal, "timeout": self.timeout_s}
        if self.session:
            params["session"] = self.session
        answer = self.client.call("ask", params)
        return dspy.Prediction(
            pipeline_result=answer["response"],
            status=answer["status"],
            pipeline_used=answer["pipeline_used"],
            job_id=answer["job_id"],
            fallback_used=answer["fallback_used"],
        )
