"""Compiles off to the side: each `optimize` request runs `elx optimize --local` as a child process.

A separate process keeps DSPy's CPU work and memory away from the daemon's
interpreter (socket latency and jobs are unaffected), and a compile that
crashes or runs past its time limit is simply a process that ended: it is
stopped, reported (status ``failed`` or ``timed_out`` with the tail of its
output) and the daemon carries on. Progress lines are kept per compile and
``wait`` answers through a Future when it ends.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from runtime.errors import ConfigError
from runtime.timers import Timers

log = structlog.get_logger("elexirion.optimizer")

ELX = Path(sys.executable).with_name("elx")
DEFAULT_TIME_LIMIT_S = 900.0


@dataclass
class Compile:
    id: str
    pipeline: str
    step: str
    args: list[str]
    status: str = "running"  # running | promoted | kept | failed | timed_out
    started: float = field(default_factory=time.time)
    ended: float | None = None
    progress: deque[str] = field(default_factory=lambda: deque(maxlen=200))
    result: dict[str, Any] | None = None
    error: str | None = None
    done: Future[dict[str, Any]] = field(default_factory=Future)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "step": self.step,
            "status": self.status,
            "started": self.started,
            "ended": self.ended,
            "progress": list(self.progress),
            "result": self.result,
            "error": self.error,
        }


class CompileRunner:
    def __init__(self, state_dir: Path, telemetry: Any = None) -> None:
        self.state_dir = state_dir
        self.telemetry = telemetry
        self._lock = threading.Lock()
        self._compiles: dict[str, Compile] = {}
        self._timers = Timers(name="elx-compile-limits")
        self._processes: dict[str, subprocess.Popen[str]] = {}

    def start(
        self,
        pipeline: str,
        step: str,
        *,
        options: dict[str, Any],
        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    ) -> Compile:
        if not Path(pipeline).exists():
            raise ConfigError(f"no pipeline file {pipeline}")
        args = [str(ELX), "optimize", pipeline, "--step", step, "--local", "--json"]
        for name, value in options.items():
            if value is not None:
                args += [f"--{name.replace('_', '-')}", str(value)]
        args += ["--state-dir", str(self.state_dir)]
        job = Compile(uuid.uuid4().hex[:12], pipeline, step, args)
        # The report goes to a file: a chatty child must never block on a full stdout pipe.
        report = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 (closed by _follow)
        process = subprocess.Popen(
            args,
            stdout=report,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
        with self._lock:
            self._compiles[job.id] = job
            self._processes[job.id] = process
        timer = self._timers.call_later(time_limit_s, lambda: self._stop(job, process))
        threading.Thread(
            target=self._follow,
            args=(job, process, timer, report),
            name=f"compile-{job.id}",
            daemon=True,
        ).start()
        log.info("optimize_started", compile=job.id, pipeline=pipeline, step=step)
        return job

    def get(self, compile_id: str) -> Compile:
        with self._lock:
            found = self._compiles.get(compile_id)
        if found is None:
            raise KeyError(compile_id)
        return found

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [c.to_json() for c in self._compiles.values()]

    def close(self) -> None:
        """Stop the timers and every compile still running (they would outlive the daemon)."""
        self._timers.close()
        with self._lock:
            running = [p for p in self._processes.values() if p.poll() is None]
        for process in running:
            process.kill()

    def _stop(self, job: Compile, process: subprocess.Popen[str]) -> None:
        if process.poll() is None:
            job.status = "timed_out"
            process.kill()

    def _follow(
        self, job: Compile, process: subprocess.Popen[str], timer: Any, report: Any
    ) -> None:
        """Relay progress, then settle the compile's status; ``done`` always resolves."""
        try:
            assert process.stderr is not None
            for line in process.stderr:
                text = line.rstrip()
                if text and "it/s]" not in text:  # DSPy's progress bars are noise here
                    job.progress.append(text)
            code = process.wait()
            timer.cancel()
            report.seek(0)
            self._settle(job, code, report.read())
        except Exception as exc:
            job.status, job.error = "failed", f"the compile could not be followed: {exc}"
        finally:
            report.close()
            with self._lock:
                self._processes.pop(job.id, None)
            job.ended = job.ended or time.time()
            log.info("optimize_ended", compile=job.id, status=job.status, error=job.error)
            if self.telemetry is not None:
                from runtime.telemetry import OptimizerRun

                self.telemetry.emit(
                    OptimizerRun(Path(job.pipeline).stem, job.status, job.ended - job.started)
                )
            if not job.done.done():
                job.done.set_result(job.to_json())

    def _settle(self, job: Compile, code: int, out: str) -> None:
        job.ended = time.time()
        if job.status == "timed_out":
            job.error = "the compile ran past its time limit and was stopped"
        elif code == 0:
            # DSPy prints to stdout too; the report is the JSON document at the end.
            start = out.rfind("\n{\n") + 1 if not out.startswith("{") else 0
            try:
                parsed = json.loads(out[start:])
            except json.JSONDecodeError:
                parsed = None
            job.result = parsed if isinstance(parsed, dict) else None
            if job.result is None:
                job.progress.append("the compile's report could not be read")
            promoted = bool(job.result and job.result.get("promoted"))
            job.status = "promoted" if promoted else "kept"
        else:
            job.status = "failed"
            job.error = "; ".join(list(job.progress)[-3:]) or f"exit status {code}"
