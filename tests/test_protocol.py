"""The wire format: decoding requests, encoding answers, redaction, error codes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime.errors import (
    AuthError,
    CallTimeout,
    ChildControlError,
    ChildNotRunning,
    ConfigError,
    DaemonUnavailable,
    FailureKind,
    IllegalTransition,
    InputError,
    Problem,
    ProtocolError,
    RemoteError,
    StepError,
    StoreError,
    ValidationError,
)
from runtime.protocol import (
    MAX_MESSAGE_BYTES,
    MAX_RESPONSE_BYTES,
    PROTOCOL_VERSION,
    ErrorCode,
    Event,
    Request,
    Response,
    decode_message,
    decode_request,
    encode_error,
    encode_event,
    encode_request,
    encode_response,
    error_code_for,
    error_from_exception,
    hello_result,
)
from runtime.redaction import REDACTED, is_secret_key, redact


def test_a_request_line_decodes_into_a_request() -> None:
    """A well-formed line becomes a frozen Request; missing params mean an empty object."""
    assert decode_request(b'{"id": 1, "method": "ping"}\n') == Request(1, "ping", {})
    request = decode_request(b'{"id": "a", "method": "status", "params": {"job": "j1"}}')
    assert request == Request("a", "status", {"job": "j1"})


@pytest.mark.parametrize(
    ("line", "code", "request_id"),
    [
        (b"\xff\xfe not utf-8", ErrorCode.PARSE_ERROR, None),
        (b"{not json", ErrorCode.PARSE_ERROR, None),
        (b"[1, 2]", ErrorCode.INVALID_REQUEST, None),
        (b'{"method": "ping"}', ErrorCode.INVALID_REQUEST, None),
        (b'{"id": true, "method": "ping"}', ErrorCode.INVALID_REQUEST, None),
        (b'{"id": 1.5, "method": "ping"}', ErrorCode.INVALID_REQUEST, None),
        (b'{"id": 3}', ErrorCode.INVALID_REQUEST, 3),
        (b'{"id": 3, "method": ""}', ErrorCode.INVALID_REQUEST, 3),
        (b'{"id": 3, "method": "ping", "param": {}}', ErrorCode.INVALID_REQUEST, 3),
        (b'{"id": 4, "method": "ping", "params": [1]}', ErrorCode.INVALID_PARAMS, 4),
        (b'{"id": 4, "method": "ping", "params": "x"}', ErrorCode.INVALID_PARAMS, 4),
    ],
)
def test_a_bad_request_line_raises_a_protocol_error_with_its_code(
    line: bytes, code: ErrorCode, request_id: int | None
) -> None:
    """Every way a line can be broken maps to one stable code, with the id when readable."""
    with pytest.raises(ProtocolError) as caught:
        decode_request(line)
    assert caught.value.code == code
    assert caught.value.request_id == request_id


def test_a_request_over_the_limit_is_too_large() -> None:
    """A line over MAX_MESSAGE_BYTES is refused before it is parsed."""
    line = b'{"id": 1, "method": "x", "params": {"p": "' + b"a" * MAX_MESSAGE_BYTES + b'"}}'
    with pytest.raises(ProtocolError) as caught:
        decode_request(line)
    assert caught.value.code == ErrorCode.TOO_LARGE
    with pytest.raises(ProtocolError):
        encode_request(Request(1, "x", {"p": "a" * MAX_MESSAGE_BYTES}))


def test_responses_and_events_are_single_json_lines() -> None:
    """Results, errors and events each encode to one compact line with the request id."""
    assert encode_response(Response.ok(7, {"a": 1})) == b'{"id":7,"result":{"a":1}}\n'
    error = json.loads(encode_error(7, ErrorCode.NOT_FOUND, "no job x", {"job": "x"}))
    assert error == {
        "id": 7,
        "error": {"code": "not_found", "message": "no job x", "data": {"job": "x"}},
    }
    event = json.loads(encode_event(3, Event("job", {"job": "j1", "status": "running"})))
    assert event == {"id": 3, "event": {"type": "job", "job": "j1", "status": "running"}}
    assert json.loads(encode_event(3, {"type": "tree", "nodes": []}))["event"]["type"] == "tree"


def test_an_unencodable_result_becomes_an_internal_error() -> None:
    """The client still gets an answer when a handler returns something JSON cannot hold."""
    line = json.loads(encode_response(Response.ok(1, {"x": object()})))
    assert line["error"]["code"] == "internal"
    line = json.loads(encode_response(Response.ok(1, float("nan"))))
    assert line["error"]["code"] == "internal"


def test_a_response_over_the_limit_becomes_a_too_large_error() -> None:
    """Results over MAX_RESPONSE_BYTES are replaced by a too_large error."""
    line = json.loads(encode_response(Response.ok(1, "a" * (MAX_RESPONSE_BYTES + 1))))
    assert line == {"id": 1, "error": {"code": "too_large", "message": line["error"]["message"]}}


def test_an_event_must_have_a_type() -> None:
    """Events are typed; an event whose data repeats 'type' is rejected."""
    with pytest.raises(ValueError):
        Event("job", {"type": "other"})
    with pytest.raises(ValueError):
        encode_event(1, {"job": "x"})


def test_hello_result_carries_the_protocol_and_server_versions() -> None:
    assert hello_result("0.1.0", pid=5) == {
        "protocol": PROTOCOL_VERSION,
        "server": "0.1.0",
        "pid": 5,
    }


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("api_key", True),
        ("apiKey", True),
        ("x-api-key", True),
        ("ANTHROPIC_API_KEY", True),
        ("OPENAI_KEY", True),
        ("token", True),
        ("access_token", True),
        ("Authorization", True),
        ("client_secret", True),
        ("password", True),
        ("max_tokens", False),
        ("input_tokens", False),
        ("token_count", False),
        ("cache_key", False),
        ("sort_key", False),
        ("job", False),
    ],
)
def test_secret_looking_keys_are_recognised(key: str, secret: bool) -> None:
    """Key names that hold credentials are secret; counters and ordinary keys are not."""
    assert is_secret_key(key) is secret


def test_redact_hides_secret_values_at_any_depth_and_copies() -> None:
    """Values under secret keys, and key-shaped substrings anywhere, become [redacted]."""
    original: dict[str, Any] = {
        "provider": {"name": "claude", "api_key": "abc", "max_tokens": 10},
        "env": [{"GEMINI_API_KEY": "AIza" + "x" * 35}],
        "log": "calling with sk-ant-api03-" + "y" * 30 + " now",
        "header": "Bearer abcdefghijklmnop",
        "n": 3,
    }
    cleaned = redact(original)
    assert cleaned["provider"] == {"name": "claude", "api_key": REDACTED, "max_tokens": 10}
    assert cleaned["env"] == [{"GEMINI_API_KEY": REDACTED}]
    assert cleaned["log"] == f"calling with {REDACTED} now"
    assert cleaned["header"] == REDACTED
    assert original["provider"]["api_key"] == "abc"  # the input is left alone


def test_encoding_redacts_results_errors_and_events() -> None:
    """Nothing leaves through the encoders with a secret in it."""
    key = "sk-" + "k" * 40
    assert key.encode() not in encode_response(Response.ok(1, {"token": key}))
    assert key.encode() not in encode_error(1, ErrorCode.INTERNAL, f"failed with {key}")
    assert key.encode() not in encode_event(1, Event("log", {"line": key}))


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ProtocolError(ErrorCode.METHOD_NOT_FOUND, "no method x"), ErrorCode.METHOD_NOT_FOUND),
        (ConfigError("bad"), ErrorCode.INVALID_PARAMS),
        (InputError("missing", name="q"), ErrorCode.INVALID_PARAMS),
        (ValidationError([Problem("f.yaml", 1, 1, "bad")]), ErrorCode.INVALID_PARAMS),
        (ChildControlError("x", code="not_found", supervisor="r", child="c"), ErrorCode.NOT_FOUND),
        (ChildControlError("x", code="running", supervisor="r", child="c"), ErrorCode.CONFLICT),
        (
            ChildControlError("x", code="shutting_down", supervisor="r", child="c"),
            ErrorCode.SHUTTING_DOWN,
        ),
        (DaemonUnavailable("gone"), ErrorCode.UNAVAILABLE),
        (ChildNotRunning("down", child="c"), ErrorCode.UNAVAILABLE),
        (CallTimeout("slow", child="c", timeout_s=1.0), ErrorCode.TIMEOUT),
        (TimeoutError(), ErrorCode.TIMEOUT),
        (IllegalTransition("no", subject="j", state="a", target="b"), ErrorCode.CONFLICT),
        (StepError("failed", step="s"), ErrorCode.JOB_FAILED),
        (AuthError("bad key"), ErrorCode.JOB_FAILED),
        (StoreError("disk"), ErrorCode.INTERNAL),
        (KeyError("x"), ErrorCode.INTERNAL),
        (RemoteError("conflict", "busy"), ErrorCode.CONFLICT),
    ],
)
def test_exceptions_map_to_stable_error_codes(exc: BaseException, code: ErrorCode) -> None:
    """Each family of our exceptions has one wire code; anything unknown is internal."""
    assert error_code_for(exc) == code


def test_an_error_body_carries_kind_and_context() -> None:
    """Our errors keep their message and put kind plus context attributes in data."""
    body = error_from_exception(CallTimeout("no reply", child="root/a", timeout_s=2.0))
    assert body.message == "no reply"
    assert body.data == {"kind": "timeout", "child": "root/a", "timeout_s": 2.0}
    body = error_from_exception(ChildControlError("x", code="running", supervisor="r", child="c"))
    assert body.data["reason"] == "running"
    body = error_from_exception(ValidationError([Problem("f.yaml", 2, 3, "unknown field")]))
    assert body.data["problems"] == ["f.yaml:2:3: unknown field"]


def test_an_unexpected_exception_is_internal_and_names_its_type() -> None:
    body = error_from_exception(ZeroDivisionError("division by zero"))
    assert body.code is ErrorCode.INTERNAL
    assert "ZeroDivisionError" in body.message
    assert body.data == {"exception": "ZeroDivisionError"}


def test_decode_message_reads_responses_and_events() -> None:
    """The client side tells results, errors and events apart."""
    assert decode_message(b'{"id":1,"result":null}') == Response.ok(1, None)
    error = decode_message(b'{"id":null,"error":{"code":"forbidden","message":"no"}}')
    assert error == Response.failure(None, ErrorCode.FORBIDDEN, "no")
    unknown = decode_message(b'{"id":1,"error":{"code":"from_the_future","message":"?"}}')
    assert isinstance(unknown, Response) and unknown.error is not None
    assert unknown.error.code is ErrorCode.INTERNAL
    assert decode_message(b'{"id":2,"event":{"type":"job"}}') == (2, {"type": "job"})
    with pytest.raises(ProtocolError):
        decode_message(b"not json")
    with pytest.raises(ProtocolError):
        decode_message(b'{"id":1}')


def test_a_remote_error_takes_its_kind_from_the_data() -> None:
    """RemoteError keeps code and data; a known data.kind becomes its FailureKind."""
    error = RemoteError("job_failed", "step s failed", {"kind": "rate_limited"})
    assert (error.code, error.kind, str(error)) == (
        "job_failed",
        FailureKind.RATE_LIMITED,
        "step s failed",
    )
    assert RemoteError("internal", "x", {"kind": "nonsense"}).kind is FailureKind.STEP_FAILED
