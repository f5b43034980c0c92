"""A simulated two-node Ray cluster (Ray's cluster utilities, one machine) runs 50 jobs
placed on both nodes; the daemon keeps every checkpoint."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conformance.ray_cluster import ray_init_options
from e2e.conftest import THREE_STEPS

from cluster.conftest import ray_tree
from runtime.testing.daemon_thread import running_daemon, settings_in

pytestmark = pytest.mark.ray
JOBS = 50
WAIT_S = 300.0


@pytest.fixture
def two_nodes() -> Iterator[Any]:
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()  # leave any local instance of earlier tests: this test owns the cluster
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, **ray_init_options())
        yield ray
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_fifty_jobs_run_on_both_nodes_and_every_step_is_checkpointed_once(
    tmp_path: Path, two_nodes: Any
) -> None:
    pipeline = tmp_path / "three.yaml"
    pipeline.write_text(textwrap.dedent(THREE_STEPS))
    tree = ray_tree(tmp_path, max_jobs=8, scheduling="spread")
    with running_daemon(settings_in(tmp_path), tree) as context:
        ids = [context.jobs.submit(str(pipeline), {"n": n}).id for n in range(JOBS)]
        finals = [context.jobs.wait_future(job, WAIT_S).result(WAIT_S) for job in ids]
        rows = [context.store.get_job(job) for job in ids]
        checkpoints = [context.store.checkpoints(job) for job in ids]
    assert [f["status"] for f in finals] == ["completed"] * JOBS
    nodes = {row.meta["ray"]["node"] for row in rows if row is not None}
    assert len(nodes) == 2, f"the jobs ran on {len(nodes)} node(s)"
    assert all(sorted(c) == ["one", "three", "two"] for c in checkpoints)
