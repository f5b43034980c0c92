"""`elx web`: the web gateway's token, its URL, its OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from runtime.cli_remote import EXIT_DOWN, EXIT_USAGE, _die, _Remote, json_option, state_dir_option


def register(main: click.Group) -> None:
    @main.group()
    def web() -> None:
        """The web API and chat page (`elx daemon --web`)."""

    @web.command()
    @click.option(
        "--state-dir",
        envvar="ELX_STATE_DIR",
        default=".elexirion",
        show_default=True,
        help="State directory whose web.token to print (no daemon needed).",
    )
    @click.option("--rotate", is_flag=True, help="Replace it; the old one stops working at once.")
    def token(state_dir: str, rotate: bool) -> None:
        """Print the bearer token (state_dir/web.token, 0600; made if missing)."""
        from runtime.errors import ConfigError
        from runtime.web.token import TokenFile

        tokens = TokenFile(Path(state_dir))
        try:
            click.echo(tokens.rotate() if rotate else tokens.ensure())
        except ConfigError as exc:
            _die(str(exc), EXIT_USAGE)

    @web.command()
    @state_dir_option
    @click.option("--no-token", is_flag=True, help="Leave the token out of the URL.")
    @json_option
    def url(state_dir: str, no_token: bool, as_json: bool) -> None:
        """Print the chat page's URL, with the token in its fragment (never sent to a
        server): open it in a browser on this machine."""
        from runtime.web.token import TokenFile

        node = _web_node(_Remote(state_dir).call("tree"))
        detail = dict(node.get("detail") or []) if node else {}
        if "url" not in detail:
            why = (
                detail.get("error")
                or "the gateway is off: start the daemon with `elx daemon --web`"
            )
            _die(why, EXIT_DOWN)
        base = detail["url"]
        secret = None if no_token else TokenFile(Path(state_dir)).ensure()
        link = base if secret is None else f"{base}#token={secret}"
        if as_json:
            click.echo(json.dumps({"url": base, "open": link}))
        else:
            click.echo(link)

    @web.command()
    @click.option(
        "--output", "-o", type=click.Path(dir_okay=False), help="Write here instead of stdout."
    )
    def openapi(output: str | None) -> None:
        """Print the web API's OpenAPI document (no daemon needed)."""
        text = openapi_text()
        if output:
            Path(output).write_text(text)
        else:
            click.echo(text, nl=False)


def openapi_text() -> str:
    """The OpenAPI document as published in docs/reference/openapi.json."""
    from runtime.web.app import create_app, openapi_document
    from runtime.web.config import WebConfig

    def no_daemon() -> Any:
        raise RuntimeError("the OpenAPI document needs no daemon")

    app = create_app(no_daemon, WebConfig(), token_matches=lambda _: False, port=lambda: 0)
    return json.dumps(openapi_document(app), indent=2, sort_keys=True) + "\n"


def _web_node(tree: dict[str, Any]) -> dict[str, Any] | None:
    for child in tree.get("children") or []:
        if child.get("id") == "web":
            node: dict[str, Any] = child
            return node
    return None
