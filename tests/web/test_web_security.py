"""The gateway's settings, token file and front door, without a daemon."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from runtime.errors import ConfigError
from runtime.redaction import forget_secrets, redact
from runtime.web.config import DEFAULT_PORT, web_config
from runtime.web.guard import Guard
from runtime.web.token import TokenFile


def test_the_gateway_is_off_and_on_loopback_by_default() -> None:
    config = web_config({}, {})
    assert (config.enabled, config.host, config.port) == (False, "127.0.0.1", DEFAULT_PORT)
    assert config.cors_origins == ()


def test_the_environment_turns_it_on_and_moves_it() -> None:
    config = web_config({"port": 9000}, {"ELX_WEB": "1", "ELX_WEB_PORT": "9100"})
    assert config.enabled and config.port == 9100
    assert not web_config({"enabled": True}, {"ELX_WEB": "0"}).enabled


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        ({"port": 70000}, {}, "port"),
        ({"port": "eighty"}, {}, "port"),
        ({"max_body_bytes": 10}, {}, "max_body_bytes"),
        ({"colour": "blue"}, {}, "colour"),
        ({}, {"ELX_WEB": "maybe"}, "ELX_WEB"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(
    args: dict[str, object], env: dict[str, str], names: str
) -> None:
    with pytest.raises(ConfigError, match=names):
        web_config(args, env)


def test_a_host_that_is_not_loopback_needs_allow_remote() -> None:
    with pytest.raises(ConfigError, match="allow_remote"):
        web_config({"enabled": True, "host": "0.0.0.0"}, {})
    assert web_config({"enabled": True, "host": "0.0.0.0", "allow_remote": True}, {}).host
    assert web_config({"enabled": True, "host": "::1"}, {}).loopback


def test_host_names_are_the_loopback_names_with_and_without_the_port() -> None:
    names = web_config({"allowed_hosts": ["elx.internal"]}, {}).host_names(8765)
    assert {"127.0.0.1:8765", "localhost", "[::1]:8765", "elx.internal:8765"} <= names
    assert "evil.example" not in names


def test_the_token_file_is_made_once_private_and_rotates(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "state")
    first = tokens.ensure()
    assert len(first) >= 32
    assert oct(tokens.path.stat().st_mode & 0o777) == "0o600"
    assert tokens.ensure() == first
    assert tokens.matches(first) and not tokens.matches(first[:-1] + "x")
    second = tokens.rotate()
    assert second != first
    assert tokens.matches(second) and not tokens.matches(first)
    assert oct(tokens.path.stat().st_mode & 0o777) == "0o600"
    assert list(tokens.path.parent.iterdir()) == [tokens.path]  # no temporary file left


def test_two_first_starts_at_once_agree_on_one_token(tmp_path: Path) -> None:
    tokens = [TokenFile(tmp_path) for _ in range(8)]
    seen: list[str] = []
    barrier = threading.Barrier(len(tokens))

    def make(token_file: TokenFile) -> None:
        barrier.wait(timeout=10)
        seen.append(token_file.ensure())

    threads = [threading.Thread(target=make, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(seen) == 8 and len(set(seen)) == 1


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path)
    token = tokens.ensure()
    tokens.path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        tokens.read()
    assert not tokens.matches(token)


def test_the_token_is_redacted_once_read(tmp_path: Path) -> None:
    forget_secrets()
    try:
        token = TokenFile(tmp_path).ensure()
        assert redact(f"Authorization: Bearer {token}") == "Authorization: Bearer [redacted]"
    finally:
        forget_secrets()


def guarded(max_body: int = 1024) -> TestClient:
    async def echo(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", echo), Route("/api/x", echo, methods=["GET", "POST"])])
    guard = Guard(
        app,
        hosts=lambda: frozenset({"127.0.0.1:8765", "localhost:8765"}),
        token_matches=lambda presented: presented == "secret-token",
        max_body_bytes=max_body,
    )
    return TestClient(guard, base_url="http://127.0.0.1:8765")


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/", {}, 200),
        ("/api/x", {}, 401),
        ("/api/x", {"Authorization": "Bearer wrong"}, 401),
        ("/api/x", {"Authorization": "Basic secret-token"}, 401),
        ("/api/x", {"Authorization": "Bearer secret-token"}, 200),
        ("/api/x", {"Authorization": "bearer secret-token"}, 200),
        ("/", {"Host": "evil.example"}, 403),
        ("/api/x", {"Host": "evil.example", "Authorization": "Bearer secret-token"}, 403),
        ("/api/x", {"Host": "localhost:8765", "Authorization": "Bearer secret-token"}, 200),
    ],
)
def test_the_guard_checks_host_then_token(path: str, headers: dict[str, str], status: int) -> None:
    with guarded() as client:
        answer = client.get(path, headers=headers)
    assert answer.status_code == status
    assert answer.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in answer.headers["content-security-policy"]


def test_the_guard_refuses_a_declared_body_over_the_limit_before_the_token() -> None:
    with guarded(max_body=1024) as client:
        answer = client.post("/api/x", content=b"x" * 2048)
    assert answer.status_code == 413
    assert answer.json()["code"] == "too_large"
    assert "limit is 1024" in answer.json()["error"]


def test_cors_is_off_by_default_and_a_listed_origin_passes_its_preflight() -> None:
    from runtime.web.app import create_app
    from runtime.web.config import WebConfig

    def no_daemon() -> object:
        raise AssertionError("a preflight never reaches the daemon")

    def client(config: WebConfig) -> TestClient:
        app = create_app(no_daemon, config, token_matches=lambda _: False, port=lambda: 8765)
        return TestClient(app, base_url="http://127.0.0.1:8765")

    preflight = {
        "Origin": "http://dash.local",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    with client(WebConfig()) as plain:
        answer = plain.options("/api/tree", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers
    with client(WebConfig(cors_origins=("http://dash.local",))) as open_to_one:
        answer = open_to_one.options("/api/tree", headers=preflight)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "http://dash.local"
        other = open_to_one.options("/api/tree", headers={**preflight, "Origin": "http://x"})
        assert "access-control-allow-origin" not in other.headers
