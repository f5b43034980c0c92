"""Off to the side (issue 8): socket `ping` latency while the optimizer compiles.

Starts a daemon, measures ping from 100 clients at 20 Hz for 5 s while idle
(bench/socket_bench.py's load), then again while compiles of the codes example
run back to back through the daemon's optimizer (each one a child process).
Target: p99 during compiles within 2x of idle. Writes bench/results/optimizer.json.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

import socket_bench

from runtime.testing.daemon_process import ROOT, DaemonProcess, clean_env

RESULTS = Path(__file__).resolve().parent / "results" / "optimizer.json"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("codes.yaml", "codes.examples.jsonl"):
            shutil.copy(ROOT / "pipelines" / "examples" / name, work / name)
        daemon = DaemonProcess(work / "state", clean_env())
        daemon.start()
        try:
            idle = socket_bench.load(daemon.socket, seconds=5.0, rate_hz=20.0)
            stop = threading.Event()
            compiles = []

            def compile_forever() -> None:
                with daemon.client(timeout=600) as client:
                    while not stop.is_set():
                        done = client.call(
                            "optimize",
                            {
                                "pipeline": str(work / "codes.yaml"),
                                "step": "code",
                                "provider": "demo",
                                "max_demos": 4,
                                "threshold": 2.0,  # never promote: the file stays as it is
                                "wait": True,
                            },
                        )
                        compiles.append(done["status"])

            worker = threading.Thread(target=compile_forever)
            worker.start()
            busy = socket_bench.load(daemon.socket, seconds=5.0, rate_hz=20.0)
            stop.set()
            worker.join(600)
        finally:
            daemon.client().call("shutdown")
            daemon.wait_exit(60)
    ratio = busy["p99_ms"] / idle["p99_ms"]
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "idle": idle,
        "during_compiles": busy,
        "compiles": len(compiles),
        "compile_statuses": sorted(set(compiles)),
        "p99_ratio": round(ratio, 3),
    }
    print(
        f"ping p99 idle {idle['p99_ms']:.2f} ms, during {len(compiles)} compiles "
        f"{busy['p99_ms']:.2f} ms → {ratio:.2f}x (target <= 2x)  {'PASS' if ratio <= 2 else 'FAIL'}"
    )
    if "--no-write" not in sys.argv:
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
