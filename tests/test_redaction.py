"""Secrets never leave the daemon: keys by name, keys by shape, and the process's own keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.redaction import REDACTED, forget_secrets, redact, remember_secrets


@pytest.fixture(autouse=True)
def no_remembered_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def test_a_remembered_key_of_any_shape_is_scrubbed_wherever_it_is_echoed() -> None:
    remember_secrets({"OPENAI_API_KEY": "local-llm-pass-42", "HOME": "/home/someone"})
    error = {"message": "401 from server: key 'local-llm-pass-42' is not valid", "n": 1}
    assert redact(error) == {"message": f"401 from server: key '{REDACTED}' is not valid", "n": 1}
    assert redact(["/home/someone"]) == ["/home/someone"]


def test_short_values_and_ordinary_variables_are_not_remembered() -> None:
    assert remember_secrets({"SOME_TOKEN": "1", "PATH": "/usr/bin:/bin"}) == 0
    assert redact("step 1 of /usr/bin") == "step 1 of /usr/bin"


def test_a_key_that_contains_another_is_replaced_whole() -> None:
    remember_secrets({"A_API_KEY": "abcdefgh", "B_API_KEY": "abcdefgh-and-more"})
    assert redact("got abcdefgh-and-more") == f"got {REDACTED}"
