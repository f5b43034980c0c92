"""Dynamic supervisor: max_children (also across restarts), concurrent shutdown, per-job budgets.

Every test runs twice: with the children on threads, and placed on a local Ray instance
(``backend: ray`` on the dynamic supervisor), where the journal and gates are Ray-backed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from conformance.children import WAIT_S, Boom, Crash, Journal, probe
from runtime.errors import ChildControlError, RestartIntensityExceeded
from runtime.supervision import (
    BackoffSpec,
    ChildSpec,
    DynamicSupervisorSpec,
    JobOutcome,
    JobStatus,
    ManualTimer,
    Restart,
    RootHandle,
    SupervisorHandle,
    start_job,
)
from runtime.supervision.child_spec import Backend, RaySpec


@pytest.fixture(params=["thread", pytest.param("ray", marks=pytest.mark.ray)])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "ray":
        from conformance.ray_cluster import start_local_ray

        start_local_ray()
    return Backend(request.param)


@pytest.fixture
def journal(backend: Backend) -> Journal:
    if backend is Backend.RAY:
        from conformance.ray_children import RayJournal

        return RayJournal()  # type: ignore[return-value]
    return Journal()


@pytest.fixture
def gates(backend: Backend) -> Iterator[Callable[[], threading.Event]]:
    """Events the children can wait on (cross-process ones on Ray), all set at teardown."""
    made: list[threading.Event] = []

    def make() -> threading.Event:
        if backend is Backend.RAY:
            from conformance.ray_children import RayGate

            gate: threading.Event = RayGate()  # type: ignore[assignment]
        else:
            gate = threading.Event()
        made.append(gate)
        return gate

    yield make
    for gate in made:
        gate.set()


def pipelines(
    tree: Callable[..., RootHandle], backend: Backend, **flags: object
) -> tuple[RootHandle, SupervisorHandle]:
    ray = RaySpec(num_cpus=0) if backend is Backend.RAY else None
    spec = DynamicSupervisorSpec(**flags)  # type: ignore[arg-type]
    root = tree(ChildSpec(id="pipelines", dynamic_supervisor=spec, backend=backend, ray=ray))
    return root, root.supervisor("pipelines")


def test_start_beyond_max_children_is_refused(
    tree: Callable[..., RootHandle], backend: Backend, journal: Journal
) -> None:
    """The child past max_children is refused with code max_children and is not started."""
    _, dyn = pipelines(tree, backend, max_children=2)
    dyn.start_child(probe("one", journal))
    dyn.start_child(probe("two", journal))
    with pytest.raises(ChildControlError) as caught:
        dyn.start_child(probe("three", journal))
    assert caught.value.code == "max_children"
    assert "three" not in journal.names("starting")
    assert dyn.count_children().active == 2


def test_restarting_children_count_toward_max_children(
    tree: Callable[..., RootHandle], backend: Backend, journal: Journal, timer: ManualTimer
) -> None:
    """A child waiting to restart holds its slot, so the live count never exceeds the max."""
    backoff = BackoffSpec(min_s=1, max_s=1, jitter=0)
    _, dyn = pipelines(tree, backend, max_children=2, intensity=10, backoff=backoff)
    dyn.start_child(probe("one", journal))
    two = dyn.start_child(probe("two", journal))
    two.tell(Crash(Boom()))
    assert two.wait_exited(1, WAIT_S)
    dyn.wait_processed()
    assert [row.presence for row in dyn.which_children()] == ["running", "restarting"]
    with pytest.raises(ChildControlError, match="max_children"):
        dyn.start_child(probe("three", journal))
    timer.advance(1)
    assert two.wait_running(WAIT_S, after_generation=1)
    counts = dyn.count_children()
    assert (counts.specs, counts.active) == (2, 2)


def test_dynamic_shutdown_stops_children_concurrently(
    tree: Callable[..., RootHandle],
    backend: Backend,
    journal: Journal,
    gates: Callable[[], threading.Event],
) -> None:
    """Four children that each take 0.3 s to stop shut down in about 0.3 s, not 1.2 s."""
    root, dyn = pipelines(tree, backend)
    never = gates()
    for index in range(4):
        dyn.start_child(probe(f"s{index}", journal, args={"stop_gate": never, "stop_wait_s": 0.3}))
    began = time.monotonic()
    root.terminate_child("pipelines")
    took = time.monotonic() - began
    assert 0.3 <= took < 0.9
    assert sorted(journal.names("stopped")) == ["s0", "s1", "s2", "s3"]


def test_dynamic_children_are_forgotten_when_they_stop_for_good(
    tree: Callable[..., RootHandle], backend: Backend, journal: Journal
) -> None:
    """A transient dynamic child that finishes, or one terminated, leaves no spec behind."""
    _, dyn = pipelines(tree, backend)
    done = dyn.start_child(probe("done", journal, restart=Restart.TRANSIENT))
    dyn.start_child(probe("kept", journal))
    done.tell("stop_self")
    assert done.wait_exited(1, WAIT_S)
    dyn.terminate_child("kept")
    assert dyn.which_children() == []
    with pytest.raises(ChildControlError, match="not_found"):
        dyn.terminate_child("kept")


def test_crash_looping_job_exhausts_only_its_own_budget_and_reports_escalated(
    tree: Callable[..., RootHandle], backend: Backend, journal: Journal
) -> None:
    """job-1 crash-loops and escalates to its starter; job-2 and the pipelines budget are fine."""
    _, dyn = pipelines(tree, backend, intensity=1)
    reported: list[JobOutcome] = []
    delivered = threading.Event()

    def on_outcome(outcome: JobOutcome) -> None:
        reported.append(outcome)
        delivered.set()

    looping = start_job(dyn, "1", probe("w1", journal), intensity=2, on_outcome=on_outcome)
    healthy = start_job(dyn, "2", probe("w2", journal))
    worker = looping.worker
    for generation in (1, 2, 3):
        worker.tell(Crash(Boom()))
        if generation < 3:
            assert worker.wait_running(WAIT_S, after_generation=generation)
    outcome = looping.wait(WAIT_S)
    assert outcome.status is JobStatus.ESCALATED
    assert isinstance(outcome.exit.error, RestartIntensityExceeded)
    assert outcome.exit.error.supervisor == "root/pipelines/job-1"
    assert delivered.wait(WAIT_S) and reported == [outcome]
    assert healthy.worker.ask("ping") == "pong"
    assert [row.id for row in dyn.which_children()] == ["job-2"]
    assert dyn.tree().restarts_in_window == 0


def test_job_whose_worker_finishes_reports_completed(
    tree: Callable[..., RootHandle], backend: Backend, journal: Journal
) -> None:
    """The worker is significant: a normal exit shuts the job supervisor down as completed."""
    _, dyn = pipelines(tree, backend)
    ticket = start_job(dyn, "7", probe("w", journal))
    ticket.worker.tell("stop_self")
    assert ticket.wait(WAIT_S).status is JobStatus.COMPLETED
    dyn.wait_processed()
    assert dyn.which_children() == []


def test_terminated_job_reports_cancelled(
    tree: Callable[..., RootHandle], backend: Backend, journal: Journal
) -> None:
    """Stopping a job from outside resolves its outcome as cancelled."""
    _, dyn = pipelines(tree, backend)
    ticket = start_job(dyn, "9", probe("w", journal))
    dyn.terminate_child("job-9")
    assert ticket.wait(WAIT_S).status is JobStatus.CANCELLED
