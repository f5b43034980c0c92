"""Secrets out of everything the daemon writes: logs, stored results, socket answers.

``redact(obj)`` returns a copy in which

* values under secret-looking keys (``api_key``, ``token``, ``FOO_KEY`` ...)
  are replaced whole by ``"[redacted]"``;
* inside every other string, substrings shaped like API keys (``sk-...``,
  ``AIza...``) or bearer tokens are replaced, and so is every secret value
  this process was told about with ``remember_secrets`` (the daemon gives it
  its environment at start, so a key of any shape, echoed back in a
  provider's error message, is scrubbed too).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 8  # shorter values ("1", "true") would scrub ordinary text

_SECRET_WORDS = frozenset(
    {"authorization", "password", "passwd", "secret", "apikey", "credential", "credentials"}
)
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_SECRET_VALUE = re.compile(
    r"\bsk-[A-Za-z0-9_\-]{16,}"  # OpenAI / Anthropic style keys
    r"|\bAIza[0-9A-Za-z_\-]{30,}"  # Google API keys
    r"|(?i:\bbearer\s+)[A-Za-z0-9._~+/\-]{8,}=*"  # an Authorization header's value
)
_known: tuple[str, ...] = ()
_known_lock = threading.Lock()


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret: ``api_key``, ``token``, ``FOO_KEY`` ...

    Counted words such as ``max_tokens`` or ``cache_key`` are not secrets; an
    upper-case ``*_KEY`` (an environment variable name) is.
    """
    words = [w.lower() for w in _WORD_SPLIT.split(key) if w]
    if not words:
        return False
    if words[-1] == "token" or not _SECRET_WORDS.isdisjoint(words):
        return True
    if ("api", "key") in pairwise(words):
        return True
    return key.isupper() and key.endswith("_KEY")


def remember_secrets(environ: Mapping[str, str]) -> int:
    """Scrub, from now on, the values of ``environ``'s secret-named variables; how many."""
    global _known
    found = {v for k, v in environ.items() if is_secret_key(k) and len(v) >= MIN_SECRET_CHARS}
    with _known_lock:
        # Longest first, so a key that contains another is replaced whole.
        _known = tuple(sorted(set(_known) | found, key=len, reverse=True))
        return len(_known)


def forget_secrets() -> None:
    global _known
    with _known_lock:
        _known = ()


def redact(obj: Any) -> Any:
    """A copy of ``obj`` with secret values replaced by ``"[redacted]"``.

    Containers are copied; values that are neither strings nor containers are
    returned as they are.
    """
    if isinstance(obj, str):
        return _redact_text(obj)
    if isinstance(obj, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact(v))
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    return obj


def _redact_text(text: str) -> str:
    for secret in _known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    # A cheap pre-check keeps redaction of large, ordinary results fast.
    if "sk-" in text or "AIza" in text or "earer" in text or "EARER" in text:
        text = _SECRET_VALUE.sub(REDACTED, text)
    return text
