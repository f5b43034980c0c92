"""The web gateway of a real daemon, over HTTP: the agent, jobs, the tree, health, security."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.conftest import WebGateway, start_web_gateway
from runtime.cli_web import openapi_text
from runtime.testing.daemon_process import ROOT, DaemonProcess

pytestmark = pytest.mark.e2e
TIMEOUT_S = 60.0


@pytest.fixture
def http(web_gateway: WebGateway) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=web_gateway.url, headers=web_gateway.auth, timeout=TIMEOUT_S
    ) as client:
        yield client


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, object]]]:
    """(event name, JSON data) of a text/event-stream answer."""
    name, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data += line.partition(":")[2].strip()
        elif not line and data:
            yield name, json.loads(data)
            name, data = "message", ""


def test_the_chat_answers_with_the_pipeline_it_used_and_how_long_it_took(
    http: httpx.Client,
) -> None:
    answer = http.post("/api/agent/chat", json={"message": "analyze runtime/ for problems"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "completed"
    assert body["pipeline_used"] == "analysis"
    assert body["response"].startswith("# Analysis")
    assert body["execution_time"] > 0.2  # four mock calls of 200 ms each, at least one
    assert body["execution_time"] == pytest.approx(body["execution_time_ms"] / 1000, abs=0.002)
    assert body["fallback_used"] is None and body["error"] is None
    assert http.get(f"/api/jobs/{body['job_id']}").json()["status"] == "completed"


def test_a_session_carries_the_conversation_from_one_message_to_the_next(
    http: httpx.Client, web_gateway: WebGateway
) -> None:
    first = http.post("/api/agent/chat", json={"message": "write a haiku about queues"}).json()
    session = first["session_id"]
    assert session
    second = http.post(
        "/api/agent/chat", json={"message": "and one about stacks", "session_id": session}
    ).json()
    assert second["session_id"] == session
    shown = web_gateway.daemon.elx("session", "show", session, "--json")
    turns = json.loads(shown.stdout)["turns"]
    assert [t["content"] for t in turns if t["role"] == "user"] == [
        "write a haiku about queues",
        "and one about stacks",
    ]


def test_a_submitted_job_streams_its_events_until_it_ends_and_reports_its_progress(
    http: httpx.Client,
) -> None:
    job = http.post("/api/jobs", json={"pipeline": "general", "inputs": {"request": "hello"}})
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    seen: list[tuple[str, dict[str, object]]] = []
    progress: list[int] = []
    with http.stream("GET", f"/api/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for name, event in sse_events(response):
            seen.append((name, event))
            if name == "step" and event["event"] == "step_finished":
                progress.append(http.get(f"/api/jobs/{job_id}").json().get("steps_done", -1))
    assert seen[0] == ("job", {"type": "job", "job": job_id, "status": "accepted"})
    assert seen[-1][0] == "job" and seen[-1][1]["status"] == "completed"
    finished = [e["step"] for n, e in seen if n == "step" and e["event"] == "step_finished"]
    assert finished and len(finished) == len(set(finished))
    assert progress and progress[0] >= 1 and progress == sorted(progress)
    # Late: the stream replays what the job did and ends at once.
    with http.stream("GET", f"/api/jobs/{job_id}/events") as response:
        assert list(sse_events(response)) == seen


def test_cancel_ends_a_running_job_and_jobs_can_be_listed_by_state(http: httpx.Client) -> None:
    job_id = http.post("/api/jobs", json={"pipeline": "analysis", "inputs": {"request": "x"}})
    job_id = job_id.json()["id"]
    with http.stream("GET", f"/api/jobs/{job_id}/events") as response:
        for name, event in sse_events(response):
            if name == "step" and event["event"] == "step_started":
                break  # it is running a step now
    cancelled = http.post(f"/api/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    listed = http.get("/api/jobs", params={"state": "cancelled"}).json()["jobs"]
    assert job_id in [j["id"] for j in listed]
    assert all(j["status"] == "cancelled" for j in listed)
    again = http.post(f"/api/jobs/{job_id}/cancel").json()
    assert again["status"] == "cancelled"


def test_the_tree_health_and_metrics_show_the_live_daemon(http: httpx.Client) -> None:
    tree = http.get("/api/tree").json()
    children = {c["id"]: c for c in tree["children"]}
    assert children["web"]["state"] == "running"
    assert dict(children["web"]["detail"])["url"].startswith("http://127.0.0.1:")
    assert {"store", "providers", "pipelines", "agent", "socket"} <= set(children)
    health = http.get("/api/health").json()
    assert health["status"] in ("healthy", "degraded") and health["ready"] is True
    assert any(c["name"] == "store" for c in health["checks"])
    metrics = http.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "elx_jobs_total" in metrics.text


def test_bad_requests_get_a_clear_error_that_names_the_field(http: httpx.Client) -> None:
    missing = http.post("/api/agent/chat", json={})
    assert missing.status_code == 422
    assert missing.json() == {
        "status": "error",
        "error": "body.message: Field required",
        "code": "invalid_params",
        "fallback_used": None,
        "retry_after_s": None,
    }
    unknown = http.post("/api/jobs", json={"pipeline": "no_such_pipeline"})
    assert unknown.status_code == 404
    assert "no pipeline named 'no_such_pipeline'" in unknown.json()["error"]
    for path in ("/etc/passwd", "../pipelines/analysis", "pipelines/analysis.yaml"):
        refused = http.post("/api/jobs", json={"pipeline": path})
        assert refused.status_code == 422, path  # names only: no file is ever read
        assert "root:" not in refused.text
    assert http.get("/api/jobs/nope").status_code == 404
    assert http.get("/api/jobs", params={"state": "sleeping"}).status_code == 422
    not_json = http.post(
        "/api/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422 and not_json.json()["code"] == "invalid_params"


def test_requests_without_the_token_are_refused_with_401_and_the_page_is_public(
    web_gateway: WebGateway,
) -> None:
    with httpx.Client(base_url=web_gateway.url, timeout=TIMEOUT_S) as anonymous:
        for path in ("/api/tree", "/api/health", "/metrics", "/api/openapi.json"):
            answer = anonymous.get(path)
            assert answer.status_code == 401, path
            assert answer.headers["www-authenticate"] == "Bearer"
            assert "elx web token" in answer.json()["error"]
        wrong = anonymous.get("/api/tree", headers={"Authorization": "Bearer " + "x" * 43})
        assert wrong.status_code == 401
        page = anonymous.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "access-control-allow-origin" not in page.headers
        assert anonymous.get("/static/app.js").status_code == 200


def test_a_host_that_is_not_this_gateway_is_refused_with_403(web_gateway: WebGateway) -> None:
    with httpx.Client(base_url=web_gateway.url, headers=web_gateway.auth) as client:
        for host in ("evil.example", "evil.example:80", "127.0.0.1.nip.io"):
            answer = client.get("/api/tree", headers={"Host": host})
            assert answer.status_code == 403, host
            assert answer.json()["code"] == "forbidden"
        assert client.get("/", headers={"Host": "attacker.test"}).status_code == 403
        port = web_gateway.url.rsplit(":", 1)[1]
        assert client.get("/api/tree", headers={"Host": f"localhost:{port}"}).status_code == 200


def test_a_body_over_the_limit_is_refused_with_413_declared_or_streamed(
    web_gateway: WebGateway,
) -> None:
    big = json.dumps({"message": "x" * 70_000}).encode()
    with httpx.Client(base_url=web_gateway.url, headers=web_gateway.auth) as client:
        declared = client.post(
            "/api/agent/chat", content=big, headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413
        assert "limit is 65536" in declared.json()["error"]

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(big), 8192):
                yield big[start : start + 8192]

        streamed = client.post(
            "/api/agent/chat", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert client.get("/api/health").status_code == 200  # and the gateway carries on


def test_the_published_openapi_document_is_the_one_the_gateway_serves(
    http: httpx.Client,
) -> None:
    published = (ROOT / "docs" / "reference" / "openapi.json").read_text()
    assert published == openapi_text(), "run `elx web openapi -o docs/reference/openapi.json`"
    served = http.get("/api/openapi.json").json()
    assert served == json.loads(published)


def test_a_rotated_token_works_at_once_and_the_old_one_stops(web_gateway: WebGateway) -> None:
    old = web_gateway.auth
    rotated = web_gateway.daemon.elx("web", "token", "--rotate")
    assert rotated.returncode == 0
    new = {"Authorization": f"Bearer {rotated.stdout.strip()}"}
    try:
        with httpx.Client(base_url=web_gateway.url) as client:
            assert client.get("/api/tree", headers=old).status_code == 401
            assert client.get("/api/tree", headers=new).status_code == 200
    finally:  # later tests of the module use the first token
        token_file = web_gateway.daemon.state_dir / "web.token"
        token_file.write_text(web_gateway.token + "\n")
    token_file.chmod(0o600)
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"


def test_killing_the_gateway_restarts_it_and_it_serves_again(tmp_path: Path) -> None:
    gateway = start_web_gateway(tmp_path)
    try:
        daemon = gateway.daemon
        assert daemon.elx("kill", "web").returncode == 0
        node = web_node(daemon.elx_json("tree"))
        assert node["restart_count"] >= 1 and node["state"] == "running"
        url = json.loads(daemon.elx("web", "url", "--json").stdout)["url"].rstrip("/")
        with httpx.Client(base_url=url, headers=gateway.auth, timeout=TIMEOUT_S) as client:
            assert client.get("/api/health").status_code == 200
    finally:
        gateway.daemon.kill()


def test_the_gateway_is_off_unless_enabled_and_says_how_to_turn_it_on(
    daemon: DaemonProcess,
) -> None:
    daemon.start()
    done = daemon.elx("web", "url")
    assert done.returncode == 3
    assert "elx daemon --web" in done.stderr
    assert "chat page" not in daemon.ready_line


def test_bad_gateway_settings_leave_the_daemon_serving_and_health_says_why(
    daemon_with: Callable[..., DaemonProcess],
) -> None:
    daemon = daemon_with(ELX_WEB="1", ELX_WEB_PORT="eighty")
    done = daemon.elx("web", "url")
    assert done.returncode == 3 and "port" in done.stderr
    health = daemon.elx_json("health")
    assert health["status"] == "degraded" and "root/web" in health["down"]


def test_a_taken_port_leaves_the_daemon_serving_and_says_why(
    daemon_with: Callable[..., DaemonProcess],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        daemon = daemon_with(ELX_WEB="1", ELX_WEB_PORT=str(port))
        done = daemon.elx("web", "url")
        assert done.returncode == 3
        assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
        assert web_node(daemon.elx_json("tree"))["state"] == "running"
        with daemon.client() as client:
            assert client.call("ping") == "pong"


def web_node(tree: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = next(c for c in tree["children"] if c["id"] == "web")
    return node
