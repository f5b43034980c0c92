"""The README's short session works as written against a real daemon."""

from __future__ import annotations

import re
import shlex

from runtime.testing.daemon_process import ROOT, DaemonProcess

PROMPT = "$ .venv/bin/elx "


def session_commands() -> list[tuple[list[str], list[str]]]:
    """Each `$ .venv/bin/elx ...` line of the README's session, with the lines shown after it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## A short session", 1)[1].split("\n## ", 1)[0]
    blocks = [part.split("```", 1)[0] for part in section.split("```console")[1:]]
    commands: list[tuple[list[str], list[str]]] = []
    for line in "\n".join(blocks).strip().splitlines():
        if line.startswith(PROMPT):
            args = shlex.split(line[len(PROMPT) :], comments=True)
            commands.append((args, []))
        elif commands and line.strip():
            commands[-1][1].append(line)
    return commands


def test_the_readme_session_runs_as_written(daemon: DaemonProcess) -> None:
    daemon.start()
    commands = session_commands()
    names = [args[0] for args, _ in commands]
    assert names == [
        "submit",
        "submit",
        "wait",
        "tree",
        "ask",
        "chat",
        "health",
        "metrics",
        "stats",
        "top",
        "optimize",
        "prompts",
    ]
    last_job = ""
    for args, shown in commands:
        if args[0] in ("chat", "top"):  # interactive: tests/e2e drive them with stdin / --once
            continue
        if args[0] in ("optimize", "prompts"):  # they rewrite the file: tests/optimize uses a copy
            continue
        args = [last_job if re.fullmatch(r"[0-9a-f]{12}", a) else a for a in args]
        done = daemon.elx(*args)
        assert done.returncode == 0, (args, done.stderr)
        printed = done.stdout + done.stderr
        for line in shown:
            if line == "..." or re.search(r"[0-9a-f]{12}|\d+(\.\d+)? ?m?s\b", line):
                continue  # ids, timings and paths differ from run to run
            assert line in printed, (args, line, printed)
        if args[0] == "submit" and "--wait" not in args:
            last_job = done.stdout.strip()
        if args[0] == "submit" and "--wait" in args:
            assert re.search(r"job [0-9a-f]{12} completed in \d+ ms · 6 steps", done.stderr)
