"""`elx health`, `elx metrics`, `elx stats`, `elx top` and /metrics against a running daemon."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from runtime.testing.daemon_process import ROOT, DaemonProcess

DEMO = ROOT / "pipelines" / "examples" / "demo.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_operators_see_health_metrics_stats_and_the_dashboard(
    daemon_with: Callable[..., DaemonProcess],
) -> None:
    port = free_port()
    daemon = daemon_with(ELX_METRICS_PORT=str(port))
    assert daemon.elx("submit", str(DEMO), "--wait").returncode == 0
    assert daemon.elx("ask", "analyze runtime/").returncode == 0

    health = daemon.elx("health")
    assert health.returncode == 0, health.stdout + health.stderr
    assert health.stdout.startswith("healthy")
    checks = {c["name"]: c for c in daemon.elx_json("health")["checks"]}
    assert {"store", "queue", "optimizer", "breaker:mock", "disk", "rss"} <= set(checks)
    assert all(c["status"] == "ok" for c in checks.values())

    table = daemon.elx("metrics")
    assert table.returncode == 0 and "providers" in table.stdout and "mock" in table.stdout
    text = daemon.elx("metrics", "--prometheus").stdout
    families = {f.name: f for f in text_string_to_metric_families(text)}
    completed = [s for s in families["elx_jobs"].samples if s.labels.get("status") == "completed"]
    assert completed and completed[0].value == 2
    assert "elx_step_duration_seconds" in families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        served = response.read().decode()
    assert "elx_provider_calls_total" in served

    stats = daemon.elx_json("stats")
    by_pipeline = {p["pipeline"]: p for p in stats["pipelines"]}
    assert by_pipeline["demo"]["runs"] == 1 and by_pipeline["demo"]["success_rate"] == 1.0
    assert by_pipeline["analysis"]["runs"] == 1
    assert "analysis" in daemon.elx("stats", "analysis", "--since", "1h").stdout

    top = daemon.elx("top", "--once")
    assert top.returncode == 0, top.stderr
    assert "healthy" in top.stdout and "providers" in top.stdout
