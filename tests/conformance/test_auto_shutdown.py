"""auto_shutdown with significant children."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from conformance.children import WAIT_S, Boom, Crash, Journal, probe
from conformance.test_restart_matrix import crash_and_settle
from runtime.supervision import AutoShutdown, ExitReason, Restart, RootHandle, SupervisorSpec


def test_any_significant_shuts_down_when_one_significant_child_exits(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """any_significant: the first significant child to stop on its own ends the supervisor."""
    root = tree(
        probe("plain", journal),
        probe("sig", journal, restart=Restart.TRANSIENT, significant=True),
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
    )
    root.child("sig").tell("stop_self")
    exit_ = root.wait_exit(WAIT_S)
    assert exit_.reason is ExitReason.SHUTDOWN and not exit_.requested and not exit_.escalated
    assert journal.names("stopped") == ["sig", "plain"]


def test_all_significant_waits_for_every_significant_child(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """all_significant: the supervisor stays up until the last significant child has stopped."""
    root = tree(
        probe("a", journal, restart=Restart.TRANSIENT, significant=True),
        probe("b", journal, restart=Restart.TEMPORARY, significant=True),
        auto_shutdown=AutoShutdown.ALL_SIGNIFICANT,
    )
    crash_and_settle(root, "b", "stop_self")
    assert root.is_running()
    root.child("a").tell("stop_self")
    assert root.wait_exit(WAIT_S).reason is ExitReason.SHUTDOWN


def test_significant_child_that_crashes_and_restarts_does_not_trigger_shutdown(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """A transient significant child that crashes is restarted, not counted as finished."""
    root = tree(
        probe("sig", journal, restart=Restart.TRANSIENT, significant=True),
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
    )
    crash_and_settle(root, "sig", Crash(Boom()))
    assert root.is_running() and root.child("sig").is_running()


def test_terminating_a_significant_child_does_not_trigger_shutdown(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """Only a significant child stopping by itself counts; terminate_child does not."""
    root = tree(
        probe("sig", journal, restart=Restart.TRANSIENT, significant=True),
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
    )
    root.terminate_child("sig")
    root.wait_processed()
    assert root.is_running()


@pytest.mark.parametrize(
    ("restart", "auto", "message"),
    [
        (Restart.PERMANENT, AutoShutdown.ANY_SIGNIFICANT, "must be 'transient' or 'temporary'"),
        (Restart.TRANSIENT, AutoShutdown.NEVER, "auto_shutdown is 'never'"),
    ],
)
def test_significant_is_invalid_with_permanent_or_never(
    journal: Journal, restart: Restart, auto: AutoShutdown, message: str
) -> None:
    """Spec validation rejects significant with permanent, and with auto_shutdown never."""
    with pytest.raises(ValidationError, match=message):
        SupervisorSpec(
            children=(probe("s", journal, restart=restart, significant=True),), auto_shutdown=auto
        )
