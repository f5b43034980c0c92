"""Booting supervision.yaml: the DESIGN.md tree comes up in order and goes down in reverse."""

from __future__ import annotations

from pathlib import Path

import structlog

from conformance.children import WAIT_S
from runtime.supervision import ChildKind, ExitReason, Restart, boot, render_tree

SPEC = Path(__file__).resolve().parents[2] / "supervision.yaml"
TOP = ["store", "telemetry", "providers", "pipelines", "agent", "health", "optimizer", "socket"]


def test_supervision_yaml_boots_the_designed_tree_and_prints_its_snapshot() -> None:
    """Every child of DESIGN.md §3 runs, in order, with the kinds and restart types it names."""
    root = boot(SPEC)
    try:
        snap = root.tree()
        print(render_tree(snap))
        assert [child.id for child in snap.children] == TOP
        assert all(node.state == "running" for node in snap.walk())
        providers = snap.find("root/providers")
        assert [child.id for child in providers.children] == [
            "anthropic",
            "gemini",
            "openai",
            "mock",
        ]
        pipelines = snap.find("root/pipelines")
        assert pipelines.kind is ChildKind.DYNAMIC_SUPERVISOR and pipelines.max_children == 64
        assert snap.find("root/optimizer").restart is Restart.TRANSIENT
        mock_pool = snap.find("root/providers/mock")
        assert [w.id for w in mock_pool.children] == [f"w{i}" for i in range(8)]
        assert ("provider", "mock") in mock_pool.children[0].detail
        assert root.lookup("providers/mock/w0").call("ping", timeout=WAIT_S) == "pong"
        assert root.lookup("store").call("snapshot").role == "store"
    finally:
        with structlog.testing.capture_logs() as logs:
            exit_ = root.shutdown()
    assert exit_.reason is ExitReason.SHUTDOWN
    stopped = [
        e["child"] for e in logs if e["event"] == "child_exited" and e["supervisor"] == "root"
    ]
    assert stopped == list(reversed(TOP))
