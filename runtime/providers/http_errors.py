"""How an HTTP API's failures become ``runtime.errors``' provider errors, worded for that API.

Each HTTP provider (``anthropic``, ``gemini``, ``openai_compatible``) sorts
what its SDK raises, since every SDK has its own exception classes; what a
failure becomes, and what its message says, is decided here by the
provider's ``HTTPErrors``. A status becomes:

=========================================  =================================
status                                     error
=========================================  =================================
429                                        RateLimited (``retry_after_s``)
529, or an error of an overloaded type     Overloaded
401, 403                                   AuthError
408, 504                                   ProviderTimeout
503                                        Unavailable
other 4xx but the retryable ones           Rejected
500 and other 5xx, retryable 4xx           ProviderError
=========================================  =================================

``retry_after`` reads the ``retry-after-ms``/``retry-after`` headers;
``redacted`` scrubs the API key from a message and ``cause_to_chain`` keeps
an SDK exception that quotes it out of the traceback.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from runtime.errors import (
    AuthError,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    Rejected,
    Unavailable,
)

__all__ = ["HTTPErrors", "cause_to_chain", "redacted", "retry_after"]


@dataclass(frozen=True, slots=True)
class HTTPErrors:
    """The provider errors one HTTP API's failures become; messages name its settings."""

    key_env: str
    """The variable(s) the key comes from, as a refused key's message names them."""
    base_url_env: str
    """The variable that points the provider at another server."""
    default_base_url: str
    """Where the provider connects when no base URL is set."""
    connection_hint: str = ""
    """Said after ``base_url_env`` when a connection fails."""
    rate_limited: str = "rate limited"
    unavailable: str = "the service is unavailable"
    retryable_4xx: frozenset[int] = frozenset({409})
    """4xx statuses worth retrying (409: a lock timeout or an aborted request)."""

    def status(
        self,
        status: int,
        said: str,
        *,
        provider: str,
        retry_after: Callable[[], float | None] | None = None,
        overloaded: bool = False,
    ) -> ProviderError:
        """The error an answer of ``status`` becomes; ``said`` is what the API said about it.

        ``retry_after`` is asked for the wait only when the status is 429;
        ``overloaded`` marks an error whose type says the API is overloaded.
        """
        what = f"{provider} answered {status} ({said})"
        if status == 429:
            wait_s = retry_after() if retry_after is not None else None
            wait = f"wait {wait_s:g} s" if wait_s is not None else "wait"
            return RateLimited(
                f"{what}: {self.rate_limited}; {wait} before retrying, or lower the request rate",
                provider=provider,
                status=429,
                retry_after_s=wait_s,
            )
        if status == 529 or overloaded:
            return Overloaded(
                f"{what}: the API is overloaded; retry with backoff or fall back to another "
                "provider",
                provider=provider,
                status=status,
            )
        if status in (401, 403):
            return AuthError(
                f"{what}: the API key was refused; check {self.key_env} and its permissions",
                provider=provider,
                status=status,
            )
        if status in (408, 504):
            return ProviderTimeout(
                f"{what}: the request timed out upstream; retry", provider=provider, status=status
            )
        if status == 503:
            return Unavailable(
                f"{what}: {self.unavailable}; retry later or fall back to another provider",
                provider=provider,
                status=status,
            )
        if 400 <= status < 500 and status not in self.retryable_4xx:
            return Rejected(
                f"{what}: the request was rejected; fix the request (model, prompt, "
                "max_tokens, schema) — retrying will not help",
                provider=provider,
                status=status,
            )
        return ProviderError(
            f"{what}: server error; retry with backoff", provider=provider, status=status
        )

    @staticmethod
    def timeout(provider: str, timeout_s: float) -> ProviderTimeout:
        """No answer within the request's timeout."""
        return ProviderTimeout(
            f"{provider} did not answer within {timeout_s:g} s; retry, or raise the step's "
            "timeout if the answer is long",
            provider=provider,
        )

    def connection(
        self, provider: str, base_url: str | None, cause: BaseException | None
    ) -> Unavailable:
        """The connection to ``base_url`` (or the default) was refused or dropped."""
        where = base_url or self.default_base_url
        detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        return Unavailable(
            f"{provider}: the connection to {where} failed or was dropped{detail}; "
            f"check the network and {self.base_url_env}{self.connection_hint}, then retry",
            provider=provider,
        )

    def malformed(self, provider: str, exc: BaseException) -> ProviderError:
        """The answer's body is not valid JSON."""
        return ProviderError(
            f"{provider} answered with a malformed body (not valid JSON: {exc}); retry, and "
            f"check {self.base_url_env} if it persists",
            provider=provider,
        )

    @staticmethod
    def unvalidated(provider: str, said: str, status: int | None = None) -> ProviderError:
        """The answer's body is JSON the SDK could not validate."""
        return ProviderError(
            f"{provider} answered with a body the SDK could not validate ({said}); retry",
            provider=provider,
            status=status,
        )

    @staticmethod
    def unexpected(provider: str, exc: BaseException, what: str = "call failed") -> ProviderError:
        """Any other failure of the call."""
        return ProviderError(
            f"{provider} {what}: {type(exc).__name__}: {exc}; retry, or report it if it persists",
            provider=provider,
        )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms``, else ``retry-after`` (seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    # An HTTP date is wall-clock time by definition; only here is time.time() right.
    return max(0.0, float(email.utils.mktime_tz(parsed)) - time.time())


def redacted(error: ProviderError, key: str | None) -> ProviderError:
    """``error`` with ``key`` scrubbed from its message."""
    if key and key in error.message:
        error.message = error.message.replace(key, "[redacted]")
        error.args = (error.message,)
    return error


def cause_to_chain(exc: BaseException, key: str | None, payload: str) -> BaseException | None:
    """``exc``, or None when an exception in its chain quotes ``key``.

    ``payload`` names the attribute where the SDK keeps the error body
    (``body``, ``details``), which may quote the key too.
    """
    seen: BaseException | None = exc
    while key and seen is not None:
        if key in str(seen) or key in repr(getattr(seen, payload, None)):
            return None
        seen = seen.__cause__ or seen.__context__
    return exc
