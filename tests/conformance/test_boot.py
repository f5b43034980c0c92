"""Booting supervision.yaml: the DESIGN.md tree comes up in order and goes down in reverse."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.children import WAIT_S
from runtime.client import Client
from runtime.supervision import ChildKind, Restart, render_tree
from runtime.testing.daemon_thread import running_daemon, settings_in

SPEC = Path(__file__).resolve().parents[2] / "supervision.yaml"
TOP = [
    "store",
    "telemetry",
    "providers",
    "pipelines",
    "agent",
    "health",
    "optimizer",
    "web",
    "socket",
]


def test_supervision_yaml_boots_the_designed_tree_and_prints_its_snapshot(tmp_path: Path) -> None:
    """Every child of DESIGN.md §3 runs, in order, with the kinds and restart types it names."""
    settings = settings_in(tmp_path, {})
    with running_daemon(settings, SPEC) as context:
        assert context.root is not None
        root = context.root
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
        assert ("schema", "5") in snap.find("root/store").detail
        with Client(settings.state_dir / "elx.sock", timeout=WAIT_S) as client:
            assert client.call("ping") == "pong"
    assert not (settings.state_dir / "elx.sock").exists()
    log = settings.state_dir / "logs" / "daemon.log"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    stopped = [
        e["child"] for e in events if e["event"] == "child_exited" and e.get("supervisor") == "root"
    ]
    assert stopped == list(reversed(TOP))
