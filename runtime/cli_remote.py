"""The daemon client the `elx` commands share, their options and exit codes.

Exit codes: 0 ok, 1 the job failed, 2 usage or bad params, 3 a tree child is
not running (``tree``, ``health``), 4 no daemon answers.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import click

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DOWN = 3
EXIT_NO_DAEMON = 4

FAILED_STATES = ("failed", "cancelled", "budget_exceeded")


def state_dir_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--state-dir",
        envvar="ELX_STATE_DIR",
        default=".elexirion",
        show_default=True,
        help="State directory of the daemon to talk to.",
    )(fn)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)


def _die(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class _Remote:
    """A client that turns daemon errors into one line and an exit code."""

    def __init__(self, state_dir: str, timeout: float = 30.0) -> None:
        from runtime.client import Client

        self.path = Path(state_dir) / "elx.sock"
        self.client = Client(self.path, timeout=timeout)

    def call(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        from runtime.errors import DaemonUnavailable, RemoteError

        try:
            return self.client.call(method, params or {}, **kw)
        except DaemonUnavailable as exc:
            _die(str(exc), EXIT_NO_DAEMON)
        except RemoteError as exc:
            code = EXIT_USAGE if exc.code in ("invalid_params", "not_found", "conflict") else 1
            _die(f"{exc.message} ({exc.code})", code)

    def stream(
        self, params: dict[str, Any], timeout: float | None = None
    ) -> Iterator[dict[str, Any] | None]:
        """Events of a subscription; None when ``timeout`` seconds pass without the end."""
        from runtime.errors import DaemonUnavailable

        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self.client.subscribe("subscribe", params) as subscription:
                while True:
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    try:
                        event = subscription.next_event(left)
                    except StopIteration:
                        return
                    yield event
                    if event is None:
                        return
        except DaemonUnavailable as exc:
            _die(str(exc), EXIT_NO_DAEMON)


def _print(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        human(data)
