"""The gateway's front door, one ASGI middleware in front of every route.

In order: the ``Host`` header must name this gateway (a page on another site
that rebinds its DNS name to 127.0.0.1 is refused with 403); a declared body
over the limit is refused with 413 before it is read (FastAPI's own limit
stops a chunked one); every path but the page and its static files needs
``Authorization: Bearer <token>`` (401). Every answer carries headers that
keep the page out of frames and caches and a strict Content-Security-Policy.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PUBLIC_PATHS = frozenset({"/", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


def error_json(code: str, message: str, **extra: object) -> bytes:
    """The gateway's error body, the same for every route."""
    body = {
        "status": "error",
        "error": message,
        "code": code,
        "fallback_used": None,
        "retry_after_s": None,
        **extra,
    }
    return json.dumps(body).encode()


class Guard:
    """Host check, declared-size check, bearer token, security headers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: Callable[[], frozenset[str]],
        token_matches: Callable[[str], bool],
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.token_matches = token_matches
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, body, extra = refusal
            await _answer(send, status, body, extra)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *(h for h in SECURITY_HEADERS if h[0] not in present),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(
        self, scope: Scope, headers: Headers
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        host = headers.get("host", "").lower()
        if host not in self.hosts():
            return (
                403,
                error_json("forbidden", f"Host {host or '(none)'!r} is not this gateway's"),
                [],
            )
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return 400, error_json("invalid_request", "Content-Length is not a number"), []
            if int(length) > self.max_body_bytes:
                return (
                    413,
                    error_json(
                        "too_large",
                        f"the body is {int(length)} bytes; the limit is {self.max_body_bytes}",
                    ),
                    [],
                )
        path: str = scope["path"]
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None
        scheme, _, presented = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            message = "a bearer token is required; `elx web token` prints it"
        elif not self.token_matches(presented.strip()):
            message = "the bearer token is not valid; `elx web token` prints the current one"
        else:
            return None
        return 401, error_json("unauthorized", message), [(b"www-authenticate", b"Bearer")]


async def _answer(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
