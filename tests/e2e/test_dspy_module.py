"""Elexirion as a DSPy module: high_level_goal -> pipeline_result through a running daemon."""

from __future__ import annotations

from runtime.testing.daemon_process import DaemonProcess


def test_a_dspy_program_can_ask_the_daemon_for_a_pipeline_result(daemon: DaemonProcess) -> None:
    from runtime.optimize.daemon_module import ElexirionPipeline, dspy

    daemon.start()
    module = ElexirionPipeline(daemon.state_dir, timeout_s=60)
    assert isinstance(module, dspy.Module)
    prediction = module(high_level_goal="analyze runtime/")
    assert prediction.status == "completed" and prediction.pipeline_used == "analysis"
    assert prediction.pipeline_result.startswith("# Analysis: analyze runtime/")
    module.client.close()
