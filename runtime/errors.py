"""One exception tree for all of Elexirion.

::

    ElexirionError
    ├── ConfigError                  bad configuration or input (exit 2)
    │   ├── ValidationError          a pipeline or spec file has problems (list of Problem)
    │   └── InputError               a missing or ill-typed pipeline input
    ├── TemplateError                a template failed to render (undefined name, sandbox escape)
    ├── ConditionError               a condition failed to parse or evaluate
    ├── StepError                    a step failed; carries step and kind (see FailureKind)
    │   ├── InvalidOutput            a result did not satisfy its output_schema
    │   ├── LoopLimitReached         a while_loop hit max_iterations
    │   └── WorkspaceViolation       a path escaped the workspace or output directory
    ├── ProviderError                an LLM provider call failed
    │   ├── ProviderTimeout
    │   ├── RateLimited              carries retry_after_s
    │   ├── Overloaded
    │   ├── AuthError
    │   ├── Rejected                 bad request: retrying will not help
    │   ├── Unavailable              connection refused, no such provider, breaker open
    │   ├── ToolNotAllowed           the model asked for a tool outside allowed_tools
    │   └── MaxTurnsExceeded         a tool-use loop needed more than max_turns turns
    ├── BudgetExceeded               a run crossed its max_usd or max_tokens
    ├── Cancelled                    the run or job was cancelled
    ├── SupervisionError             the supervision layer refused an operation
    │   ├── RestartIntensityExceeded a supervisor gave up and escalated
    │   ├── ChildNotRunning          a call reached a child that is down
    │   ├── CallTimeout              a running child did not reply in time
    │   ├── StartFailed              a child could not be started (names the child)
    │   ├── StartIgnored             a child declined to start (OTP's ignore)
    │   ├── ChildControlError        start/restart/terminate/delete refused (carries code)
    │   └── IllegalTransition        a lifecycle move its table does not allow
    ├── StoreError                   the state store failed or is corrupt
    ├── ProtocolError                a socket message broke the wire protocol (carries code)
    ├── RemoteError                  the daemon answered with an error (carries code, data)
    └── DaemonUnavailable            no daemon answers on the socket

Every error carries context as attributes and a message that says what
happened and what to do next. ``kind`` is the stable, machine-readable
classification used by retries, fallbacks and the wire protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class FailureKind(StrEnum):
    """The taxonomy that retries and fallbacks classify failures by."""

    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    UNAVAILABLE = "unavailable"
    PROVIDER_ERROR = "provider_error"
    INVALID_OUTPUT = "invalid_output"
    MAX_TURNS_EXCEEDED = "max_turns_exceeded"
    TOOL_NOT_ALLOWED = "tool_not_allowed"
    TEMPLATE = "template"
    CONDITION = "condition"
    STEP_FAILED = "step_failed"
    LOOP_LIMIT = "loop_limit"
    WORKSPACE = "workspace"
    BUDGET_EXCEEDED = "budget_exceeded"
    CANCELLED = "cancelled"
    CRASH_LOOP = "crash_loop"
    CONFIG = "config"


@dataclass(frozen=True, slots=True)
class Problem:
    """One located problem in a file: rendered as ``file:line:col: message``."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ElexirionError(Exception):
    """Root of every error Elexirion raises on purpose."""

    kind: FailureKind = FailureKind.STEP_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by state, not by ``__init__``'s arguments (many are keyword-only): errors
        cross process boundaries (the Ray backend) whole."""
        return (_rebuild_error, (type(self), self.args, self.__dict__))


def _rebuild_error(
    cls: type[ElexirionError], args: tuple[Any, ...], state: dict[str, Any]
) -> ElexirionError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ConfigError(ElexirionError):
    """Configuration or input that cannot be used as given."""

    kind = FailureKind.CONFIG


class ValidationError(ConfigError):
    """A file has one or more problems; all of them are reported at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column))
        lines = "\n".join(str(p) for p in self.problems)
        count = len(self.problems)
        super().__init__(f"{lines}\n{count} problem{'s' if count != 1 else ''} found")


class InputError(ConfigError):
    """A pipeline input is missing or has the wrong type."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class TemplateError(ElexirionError):
    """A template could not be rendered."""

    kind = FailureKind.TEMPLATE

    def __init__(self, message: str, *, template: str | None = None) -> None:
        super().__init__(message)
        self.template = template


class ConditionError(ElexirionError):
    """A condition expression could not be parsed or evaluated."""

    kind = FailureKind.CONDITION

    def __init__(self, message: str, *, expression: str | None = None) -> None:
        super().__init__(message)
        self.expression = expression


class StepError(ElexirionError):
    """A step failed. ``step`` is its path in the run, e.g. ``loop[2].inner``."""

    def __init__(
        self,
        message: str,
        *,
        step: str | None = None,
        kind: FailureKind | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.step = step
        if kind is not None:
            self.kind = kind
        self.cause = cause


class InvalidOutput(StepError):
    """A result did not satisfy the step's output schema."""

    kind = FailureKind.INVALID_OUTPUT


class LoopLimitReached(StepError):
    """A loop reached its iteration limit without its condition turning false."""

    kind = FailureKind.LOOP_LIMIT


class WorkspaceViolation(StepError):
    """A path would leave the directory it is confined to."""

    kind = FailureKind.WORKSPACE


class ProviderError(ElexirionError):
    """An LLM provider call failed."""

    kind = FailureKind.PROVIDER_ERROR
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        attempt: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.attempt = attempt
        self.status = status


class ProviderTimeout(ProviderError):
    kind = FailureKind.TIMEOUT


class RateLimited(ProviderError):
    kind = FailureKind.RATE_LIMITED

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        attempt: int | None = None,
        status: int | None = 429,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, attempt=attempt, status=status)
        self.retry_after_s = retry_after_s


class Overloaded(ProviderError):
    kind = FailureKind.OVERLOADED


class AuthError(ProviderError):
    kind = FailureKind.AUTH
    retryable = False


class Rejected(ProviderError):
    kind = FailureKind.BAD_REQUEST
    retryable = False


class Unavailable(ProviderError):
    kind = FailureKind.UNAVAILABLE


class ToolNotAllowed(ProviderError):
    """The model asked for a tool outside the step's ``allowed_tools``; it was not run."""

    kind = FailureKind.TOOL_NOT_ALLOWED
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        tool: str,
        allowed: tuple[str, ...] = (),
        provider: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider)
        self.tool = tool
        self.allowed = allowed


class MaxTurnsExceeded(ProviderError):
    """A tool-use loop still wanted more tools after ``max_turns`` model turns."""

    kind = FailureKind.MAX_TURNS_EXCEEDED
    retryable = False

    def __init__(self, message: str, *, max_turns: int, provider: str | None = None) -> None:
        super().__init__(message, provider=provider)
        self.max_turns = max_turns


class BudgetExceeded(ElexirionError):
    """A run crossed its budget; no provider call starts after this."""

    kind = FailureKind.BUDGET_EXCEEDED

    def __init__(self, message: str, *, limit: str, used: float, allowed: float) -> None:
        super().__init__(message)
        self.limit = limit
        self.used = used
        self.allowed = allowed


class Cancelled(ElexirionError):
    kind = FailureKind.CANCELLED


class SupervisionError(ElexirionError):
    """The supervision layer refused an operation."""

    kind = FailureKind.CRASH_LOOP


class RestartIntensityExceeded(SupervisionError):
    """A supervisor restarted its children too often and gave up."""

    def __init__(self, message: str, *, supervisor: str) -> None:
        super().__init__(message)
        self.supervisor = supervisor


class ChildNotRunning(SupervisionError):
    """A call reached a child that is not running (dead, restarting or stopped)."""

    def __init__(self, message: str, *, child: str) -> None:
        super().__init__(message)
        self.child = child


class CallTimeout(SupervisionError):
    """A call to a running child got no reply within its timeout."""

    kind = FailureKind.TIMEOUT

    def __init__(self, message: str, *, child: str, timeout_s: float) -> None:
        super().__init__(message)
        self.child = child
        self.timeout_s = timeout_s


class StartFailed(SupervisionError):
    """A child could not be started; ``child`` is the path of the one that failed."""

    def __init__(self, message: str, *, child: str, cause: BaseException | None) -> None:
        super().__init__(message)
        self.child = child
        self.cause = cause


class StartIgnored(SupervisionError):
    """Raised from a child's ``__init__`` or ``on_start`` to decline starting (OTP's ``ignore``).

    The supervisor keeps the spec, lists the child as ``undefined`` and carries on.
    """


class ChildControlError(SupervisionError):
    """A supervisor refused a control call; ``code`` is OTP's error atom.

    Codes: ``not_found``, ``running``, ``restarting``, ``already_present``,
    ``already_started``, ``max_children``, ``shutting_down``, ``invalid_spec``.
    """

    def __init__(self, message: str, *, code: str, supervisor: str, child: str) -> None:
        super().__init__(message)
        self.code = code
        self.supervisor = supervisor
        self.child = child


class IllegalTransition(SupervisionError):
    """A lifecycle was asked to make a move its transition table does not allow."""

    def __init__(self, message: str, *, subject: str, state: str, target: str) -> None:
        super().__init__(message)
        self.subject = subject
        self.state = state
        self.target = target


class StoreError(ElexirionError):
    """The state store failed."""


class DaemonUnavailable(ElexirionError):
    """No daemon answers on the socket."""

    kind = FailureKind.UNAVAILABLE


class ProtocolError(ElexirionError):
    """A socket message broke the wire protocol.

    ``code`` is a stable code from ``runtime.protocol.ErrorCode``; ``request_id``
    is the id of the offending request when it could be read.
    """

    kind = FailureKind.BAD_REQUEST

    def __init__(
        self,
        code: str,
        message: str,
        request_id: str | int | None = None,
        *,
        data: object = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id
        self.data = data


class RemoteError(ElexirionError):
    """The daemon answered a request with an error response.

    ``code`` is the stable protocol code (``runtime.protocol.ErrorCode``); ``data``
    is the response's detail object; ``kind`` follows ``data["kind"]`` when present.
    """

    def __init__(self, code: str, message: str, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data
        kind = data.get("kind") if isinstance(data, dict) else None
        if isinstance(kind, str) and kind in FailureKind._value2member_map_:
            self.kind = FailureKind(kind)
