"""The chat page in a real browser (Debian's chromium driven by Playwright) against a daemon."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import WebGateway

pytestmark = pytest.mark.e2e
CHROMIUM = Path(os.environ.get("ELX_CHROMIUM", "/usr/bin/chromium"))
ANSWER_MS = 60_000
# Flags for a closed network and a root user: no background fetches, no sandbox.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("ELX_REQUIRE_BROWSER") == "1":
            pytest.fail(f"no browser at {CHROMIUM}: `apt-get install chromium` (see README)")
        pytest.skip(f"no browser at {CHROMIUM}: `apt-get install chromium` to run this test")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page whose script errors and failed requests are kept in ``page.problems``."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    opened.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.url.split('/', 3)[3]}") if r.status >= 400 else None
        ),
    )
    opened.problems = problems
    yield opened
    context.close()


def screenshot_path(tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("ELX_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def test_the_chat_page_sends_a_message_and_shows_the_answer_with_its_pipeline_and_time(
    page: Any, web_gateway: WebGateway, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{web_gateway.url}/#token={web_gateway.token}")
    expect(page).to_have_url(f"{web_gateway.url}/")  # the token left the address bar
    expect(page.locator("#health-status")).to_have_text(re.compile("healthy|degraded"))
    expect(page.locator("#tree")).to_contain_text("providers")
    expect(page.locator("#tree")).to_contain_text("web")

    page.fill("#message", "analyze runtime/ for problems")
    page.press("#message", "Enter")
    answer = page.locator(".message.assistant").first
    answer.wait_for(timeout=ANSWER_MS)
    expect(answer).to_have_attribute("data-pipeline", "analysis")
    expect(answer).to_contain_text("Analysis")
    expect(answer.locator(".meta")).to_contain_text(re.compile(r"analysis · \d+\.\d+ s · job "))
    session = page.locator("#session").inner_text()
    assert session not in ("", "none")

    page.fill("#message", "and now write a haiku about it")
    page.click("#send")
    second = page.locator(".message.assistant").nth(1)
    second.wait_for(timeout=ANSWER_MS)
    expect(page.locator("#session")).to_have_text(session)  # the session was kept
    page.screenshot(path=str(screenshot_path(tmp_path, "chat-page.png")), full_page=True)
    assert screenshot_path(tmp_path, "chat-page.png").stat().st_size > 10_000
    assert page.problems == []


def test_the_chat_page_shows_an_error_plainly_and_asks_for_a_token_when_it_has_none(
    page: Any, web_gateway: WebGateway
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{web_gateway.url}/")
    expect(page.locator("#token-input")).to_be_visible()
    page.fill("#token-input", web_gateway.token)
    page.press("#token-input", "Enter")
    expect(page.locator("#health-status")).to_have_text(re.compile("healthy|degraded"))

    page.fill("#message", "x" * 33_000)  # over the API's 32,000-character limit
    page.click("#send")
    error = page.locator(".message.error").first
    error.wait_for(timeout=ANSWER_MS)
    expect(error).to_contain_text("body.message")
    expect(page.locator("#send")).to_be_enabled()  # and the page carries on
    assert page.problems == ["422 api/agent/chat"]
