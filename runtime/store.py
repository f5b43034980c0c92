"""SQLite state: runs, per-step checkpoints, sessions and a response cache.

One file, ``elx.db`` in the state directory, in WAL mode. A checkpoint is
committed before the next step starts, so a killed process loses at most the
step that was running. ``synchronous=NORMAL`` in WAL mode survives a process
crash (SIGKILL) without an fsync per step; ``durable=True`` selects FULL for
machines where power loss matters more than step latency.

The schema is versioned: ``MIGRATIONS`` is append-only, and ``open`` applies
the ones a database has not seen yet.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import StoreError

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        digest TEXT NOT NULL,
        inputs TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        result TEXT,
        error TEXT
    );
    CREATE TABLE checkpoints (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        path TEXT NOT NULL,
        record TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (run_id, path)
    );
    CREATE TABLE session_turns (
        session TEXT NOT NULL,
        seq INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        run_id TEXT,
        created_at REAL NOT NULL,
        PRIMARY KEY (session, seq)
    );
    CREATE TABLE response_cache (
        key TEXT PRIMARY KEY,
        response TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        inputs TEXT NOT NULL,
        status TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        result TEXT,
        error TEXT,
        meta TEXT
    );
    CREATE INDEX jobs_by_status ON jobs(status, priority DESC, created_at);
    """,
    """
    CREATE TABLE perf_runs (
        job TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at REAL,
        finished_at REAL NOT NULL,
        duration_ms REAL NOT NULL,
        tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        providers TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX perf_runs_by_pipeline ON perf_runs(pipeline, finished_at);
    CREATE TABLE perf_steps (
        job TEXT NOT NULL,
        pipeline TEXT NOT NULL,
        step TEXT NOT NULL,
        step_type TEXT NOT NULL,
        provider TEXT NOT NULL,
        duration_ms REAL NOT NULL,
        tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        outcome TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX perf_steps_by_time ON perf_steps(at);
    CREATE INDEX perf_steps_by_pipeline ON perf_steps(pipeline, at);
    """,
    """
    CREATE TABLE examples (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pipeline TEXT NOT NULL,
        step TEXT NOT NULL,
        job TEXT,
        inputs TEXT NOT NULL,
        prompt TEXT,
        output TEXT NOT NULL,
        provider TEXT,
        score REAL,
        note TEXT,
        source TEXT NOT NULL,
        digest TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (pipeline, step, digest)
    );
    CREATE INDEX examples_by_job ON examples(job);
    """,
    """
    CREATE TABLE ab_outcomes (
        pipeline TEXT NOT NULL,
        step TEXT NOT NULL,
        arm TEXT NOT NULL,
        job TEXT NOT NULL,
        success INTEGER NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (pipeline, step, job)
    );
    """,
)

FINAL_JOB_STATES = ("completed", "failed", "cancelled", "budget_exceeded")


@dataclass(frozen=True, slots=True)
class RunRow:
    id: str
    pipeline: str
    digest: str
    inputs: dict[str, Any]
    status: str
    created_at: float
    updated_at: float
    result: Any
    error: Any


@dataclass(frozen=True, slots=True)
class JobRow:
    id: str
    pipeline: str
    inputs: dict[str, Any]
    status: str
    priority: int
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    result: Any
    error: Any
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "inputs": self.inputs,
            "status": self.status,
            "priority": self.priority,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "attempts": self.attempts,
            "result": self.result,
            "error": self.error,
            "meta": self.meta,
        }


_JOB_COLUMNS = (
    "id, pipeline, inputs, status, priority, created_at, updated_at, started_at, finished_at,"
    " attempts, result, error, meta"
)

_JOB_COLUMNS_NO_RESULT = _JOB_COLUMNS.replace(" result,", " NULL,")


def _job(row: Any) -> JobRow:
    return JobRow(
        id=row[0],
        pipeline=row[1],
        inputs=json.loads(row[2]),
        status=row[3],
        priority=row[4],
        created_at=row[5],
        updated_at=row[6],
        started_at=row[7],
        finished_at=row[8],
        attempts=row[9],
        result=None if row[10] is None else json.loads(row[10]),
        error=None if row[11] is None else json.loads(row[11]),
        meta={} if row[12] is None else json.loads(row[12]),
    )


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    seq: int
    path: str
    record: dict[str, Any]
    state: dict[str, Any]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


class Store:
    """The state database. Thread-safe; one connection guarded by a lock."""

    def __init__(self, path: Path, *, durable: bool = False) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=10.0
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the state database {path}: {exc}") from exc
        self._lock = threading.RLock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> Store:
        return cls(state_dir / "elx.db")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def check(self) -> None:
        """Raise StoreError unless the database answers and passes a quick integrity check."""
        with self._lock:
            try:
                row = self._conn.execute("PRAGMA quick_check").fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"the state database {self.path} does not answer: {exc}") from exc
        if row is None or row[0] != "ok":
            raise StoreError(f"the state database {self.path} failed its integrity check: {row}")

    def writable(self) -> bool:
        """Whether a write could happen now: takes (and releases) the write lock."""
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            return False
        return True

    @property
    def schema_version(self) -> int:
        row = self._conn.execute("PRAGMA user_version").fetchone()
        return int(row[0])

    def _migrate(self) -> None:
        with self._lock:
            version = self.schema_version
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this Elexirion "
                    f"({len(MIGRATIONS)}); upgrade Elexirion or use another --state-dir"
                )
            for index in range(version, len(MIGRATIONS)):
                # executescript commits on its own, so the version bump rides in the script.
                self._conn.executescript(
                    f"BEGIN IMMEDIATE;\n{MIGRATIONS[index]}\n"
                    f"PRAGMA user_version={index + 1};\nCOMMIT;"
                )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- runs ----------------------------------------------------------------

    def create_run(
        self, run_id: str, pipeline: str, digest: str, inputs: Mapping[str, Any]
    ) -> None:
        now = time.time()
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO runs (id, pipeline, digest, inputs, status, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (run_id, pipeline, digest, _dumps(dict(inputs)), now, now),
            )

    def set_run_status(
        self, run_id: str, status: str, *, result: Any = None, error: Any = None
    ) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, updated_at = ?, result = ?, error = ? WHERE id = ?",
                (
                    status,
                    time.time(),
                    None if result is None else _dumps(result),
                    None if error is None else _dumps(error),
                    run_id,
                ),
            )

    def get_run(self, run_id: str) -> RunRow | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, pipeline, digest, inputs, status, created_at, updated_at, result,"
                " error FROM runs WHERE id = ?",
                (run_id,),
            ).fetchone()
        if row is None:
            return None
        return RunRow(
            id=row[0],
            pipeline=row[1],
            digest=row[2],
            inputs=json.loads(row[3]),
            status=row[4],
            created_at=row[5],
            updated_at=row[6],
            result=None if row[7] is None else json.loads(row[7]),
            error=None if row[8] is None else json.loads(row[8]),
        )

    def latest_run_ids(self, limit: int = 20) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id FROM runs ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall()
        return [r[0] for r in rows]

    # -- checkpoints ------------------------------------------------------------

    def save_checkpoint(
        self,
        run_id: str,
        seq: int,
        path: str,
        record: Mapping[str, Any],
        state: Mapping[str, Any],
    ) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO checkpoints (run_id, seq, path, record, state, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, seq, path, _dumps(dict(record)), _dumps(dict(state)), time.time()),
            )

    def count_checkpoints(self, run_id: str) -> int:
        """How many steps of the run are checkpointed (without reading them)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(DISTINCT path) FROM checkpoints WHERE run_id = ?", (run_id,)
            ).fetchone()
        return int(row[0])

    def checkpoints(self, run_id: str) -> dict[str, CheckpointRow]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, path, record, state FROM checkpoints WHERE run_id = ? ORDER BY seq",
                (run_id,),
            ).fetchall()
        return {
            r[1]: CheckpointRow(
                seq=r[0], path=r[1], record=json.loads(r[2]), state=json.loads(r[3])
            )
            for r in rows
        }

    # -- sessions ---------------------------------------------------------------

    def session_turns(self, session: str, limit: int | None = None) -> list[tuple[str, str]]:
        """The last ``limit`` turns of ``session`` as (role, content), oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT role, content FROM session_turns WHERE session = ? ORDER BY seq DESC"
                + (" LIMIT ?" if limit else ""),
                (session, limit) if limit else (session,),
            ).fetchall()
        return [(r[0], r[1]) for r in reversed(rows)]

    def append_session_turns(
        self, session: str, turns: list[tuple[str, str]], run_id: str | None = None
    ) -> None:
        now = time.time()
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM session_turns WHERE session = ?", (session,)
            ).fetchone()
            seq = int(row[0])
            for role, content in turns:
                seq += 1
                conn.execute(
                    "INSERT INTO session_turns (session, seq, role, content, run_id, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (session, seq, role, content, run_id, now),
                )

    def list_sessions(self, limit: int = 100) -> list[dict[str, Any]]:
        """Sessions, most recently used first: name, turns, first and last activity."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT session, COUNT(*), MIN(created_at), MAX(created_at) FROM session_turns"
                " GROUP BY session ORDER BY MAX(created_at) DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            {"session": r[0], "turns": r[1], "created_at": r[2], "updated_at": r[3]} for r in rows
        ]

    def session_log(self, session: str) -> list[dict[str, Any]]:
        """Every turn of ``session``, oldest first, with the job and pipeline that answered."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT t.seq, t.role, t.content, t.run_id, t.created_at, j.pipeline"
                " FROM session_turns t LEFT JOIN jobs j ON j.id = t.run_id"
                " WHERE t.session = ? ORDER BY t.seq",
                (session,),
            ).fetchall()
        return [
            {
                "seq": r[0],
                "role": r[1],
                "content": r[2],
                "job": r[3],
                "created_at": r[4],
                "pipeline": Path(r[5]).stem if r[5] else None,
            }
            for r in rows
        ]

    def delete_session(self, session: str) -> int:
        """Forget ``session``; the number of turns removed."""
        with self._transaction() as conn:
            cursor = conn.execute("DELETE FROM session_turns WHERE session = ?", (session,))
        return cursor.rowcount

    # -- performance record ------------------------------------------------------------

    def record_steps_perf(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Finished steps, in one transaction: (job, pipeline, step, step_type, provider,
        duration_ms, tokens, cost_usd, outcome) each."""
        now = time.time()
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO perf_steps (job, pipeline, step, step_type, provider, duration_ms,"
                " tokens, cost_usd, outcome, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*row, now) for row in rows],
            )

    def record_run_perf(self, job_id: str) -> None:
        """Copy an ended job's duration, tokens, cost and providers into ``perf_runs``."""
        row = self.get_job(job_id)
        if row is None or row.finished_at is None:
            return
        run = row.result if isinstance(row.result, dict) else {}
        usage = run.get("usage") or {}
        started = row.started_at or row.created_at
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO perf_runs (job, pipeline, status, started_at,"
                " finished_at, duration_ms, tokens, cost_usd, providers)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    Path(row.pipeline).stem,
                    row.status,
                    started,
                    row.finished_at,
                    (row.finished_at - started) * 1000,
                    int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0),
                    float(usage.get("cost_usd") or 0.0),
                    ",".join(run.get("providers") or []),
                ),
            )

    def prune_perf(self, before: float) -> int:
        """Forget performance records older than ``before`` (retention); how many went."""
        with self._transaction() as conn:
            runs = conn.execute("DELETE FROM perf_runs WHERE finished_at < ?", (before,))
            steps = conn.execute("DELETE FROM perf_steps WHERE at < ?", (before,))
        return runs.rowcount + steps.rowcount

    def perf_runs(self, since: float, pipeline: str | None = None) -> list[dict[str, Any]]:
        columns = ("pipeline", "status", "duration_ms", "tokens", "cost_usd", "providers")
        return self._recent("perf_runs", columns, "finished_at", since, pipeline)

    def perf_steps(self, since: float, pipeline: str | None = None) -> list[dict[str, Any]]:
        columns = ("pipeline", "step", "step_type", "provider", "duration_ms", "outcome")
        return self._recent("perf_steps", columns, "at", since, pipeline)

    def _recent(
        self,
        table: str,
        columns: tuple[str, ...],
        time_column: str,
        since: float,
        pipeline: str | None,
    ) -> list[dict[str, Any]]:
        """Rows of a performance table since ``since`` (of one pipeline, if given), as dicts."""
        query = f"SELECT {', '.join(columns)} FROM {table} WHERE {time_column} >= ?"
        args: tuple[Any, ...] = (since,)
        if pipeline is not None:
            query += " AND pipeline = ?"
            args = (since, pipeline)
        with self._lock:
            rows = self._conn.execute(query, args).fetchall()
        return [dict(zip(columns, r, strict=True)) for r in rows]

    # -- optimizer examples ---------------------------------------------------------

    def add_examples(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Keep examples (pipeline, step, job, inputs, prompt, output, provider, source);
        the same inputs and output for a step are kept once. How many were new."""
        added = 0
        now = time.time()
        with self._transaction() as conn:
            for row in rows:
                inputs = _dumps(row.get("inputs") or {})
                output = _dumps(row.get("output"))
                digest = hashlib.sha256(f"{inputs}\n{output}".encode()).hexdigest()
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO examples (pipeline, step, job, inputs, prompt, output,"
                    " provider, score, note, source, digest, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row["pipeline"],
                        row["step"],
                        row.get("job"),
                        inputs,
                        row.get("prompt"),
                        output,
                        row.get("provider"),
                        row.get("score"),
                        row.get("note"),
                        row.get("source", "run"),
                        digest,
                        now,
                    ),
                )
                added += cursor.rowcount
        return added

    def rate_job(self, job_id: str, score: float, note: str | None = None) -> int:
        """A user's score for every example a job produced; how many were rated."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE examples SET score = ?, note = COALESCE(?, note) WHERE job = ?",
                (score, note, job_id),
            )
        return cursor.rowcount

    def examples(
        self, pipeline: str, step: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        query = (
            "SELECT id, step, job, inputs, prompt, output, provider, score, note, source,"
            " created_at FROM examples WHERE pipeline = ?"
        )
        args: tuple[Any, ...] = (pipeline,)
        if step is not None:
            query += " AND step = ?"
            args = (pipeline, step)
        query += " ORDER BY id LIMIT ?"
        with self._lock:
            rows = self._conn.execute(query, (*args, limit)).fetchall()
        keys = (
            "id",
            "step",
            "job",
            "inputs",
            "prompt",
            "output",
            "provider",
            "score",
            "note",
            "source",
            "created_at",
        )
        out = []
        for r in rows:
            item = dict(zip(keys, r, strict=True))
            item["inputs"] = json.loads(item["inputs"])
            item["output"] = json.loads(item["output"])
            out.append(item)
        return out

    # -- A/B outcomes --------------------------------------------------------------------

    def record_ab(self, rows: Sequence[tuple[str, str, str, str, bool]]) -> None:
        """(pipeline, step, arm, job, success) per step that ran an A/B arm."""
        now = time.time()
        with self._transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO ab_outcomes (pipeline, step, arm, job, success, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(p, s, a, j, int(ok), now) for p, s, a, j, ok in rows],
            )

    def ab_counts(self, pipeline: str) -> dict[tuple[str, str], tuple[int, int]]:
        """(step, arm) → (runs, successes)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT step, arm, COUNT(*), SUM(success) FROM ab_outcomes WHERE pipeline = ?"
                " GROUP BY step, arm",
                (pipeline,),
            ).fetchall()
        return {(r[0], r[1]): (int(r[2]), int(r[3] or 0)) for r in rows}

    def clear_ab(self, pipeline: str, step: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "DELETE FROM ab_outcomes WHERE pipeline = ? AND step = ?", (pipeline, step)
            )

    # -- jobs ---------------------------------------------------------------------

    def create_job(
        self,
        job_id: str,
        pipeline: str,
        inputs: Mapping[str, Any],
        *,
        priority: int = 0,
        meta: Mapping[str, Any] | None = None,
    ) -> JobRow:
        """Commit a new job as ``accepted``; it is durable when this returns."""
        now = time.time()
        with self._lock:
            self._conn.execute(
                f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES (?, ?, ?, 'accepted', ?, ?, ?,"
                " NULL, NULL, 0, NULL, NULL, ?)",
                (job_id, pipeline, _dumps(dict(inputs)), priority, now, now, _dumps(meta or {})),
            )
        row = self.get_job(job_id)
        assert row is not None
        return row

    def get_job(self, job_id: str, *, with_result: bool = True) -> JobRow | None:
        """The job's row; ``with_result=False`` leaves its (possibly large) result out."""
        columns = _JOB_COLUMNS if with_result else _JOB_COLUMNS_NO_RESULT
        with self._lock:
            row = self._conn.execute(
                f"SELECT {columns} FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return None if row is None else _job(row)

    def list_jobs(self, status: str | None = None, limit: int = 100) -> list[JobRow]:
        query = f"SELECT {_JOB_COLUMNS} FROM jobs"
        args: tuple[Any, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            args = (status,)
        query += " ORDER BY created_at DESC LIMIT ?"
        with self._lock:
            rows = self._conn.execute(query, (*args, limit)).fetchall()
        return [_job(r) for r in rows]

    def unfinished_jobs(self) -> list[JobRow]:
        """Accepted or running jobs, highest priority and oldest first (for resume)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status IN ('accepted', 'running')"
                " ORDER BY priority DESC, created_at"
            ).fetchall()
        return [_job(r) for r in rows]

    def mark_job_running(self, job_id: str) -> bool:
        """accepted/running → running (a new attempt); False if the job already ended."""
        now = time.time()
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = ?,"
                " started_at = COALESCE(started_at, ?) WHERE id = ?"
                " AND status IN ('accepted', 'running')",
                (now, now, job_id),
            )
        return cursor.rowcount == 1

    def finish_job(
        self, job_id: str, status: str, *, result: Any = None, error: Any = None
    ) -> bool:
        """Set a final state once: a job that already ended is never overwritten."""
        if status not in FINAL_JOB_STATES:
            raise StoreError(f"{status!r} is not a final job state ({', '.join(FINAL_JOB_STATES)})")
        now = time.time()
        placeholders = ", ".join("?" for _ in FINAL_JOB_STATES)
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE jobs SET status = ?, result = ?, error = ?, updated_at = ?, finished_at = ?"
                f" WHERE id = ? AND status NOT IN ({placeholders})",
                (
                    status,
                    None if result is None else _dumps(result),
                    None if error is None else _dumps(error),
                    now,
                    now,
                    job_id,
                    *FINAL_JOB_STATES,
                ),
            )
        return cursor.rowcount == 1

    def update_job_meta(self, job_id: str, meta: Mapping[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE jobs SET meta = ?, updated_at = ? WHERE id = ?",
                (_dumps(dict(meta)), time.time(), job_id),
            )

    def count_jobs(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT status, COUNT(*) FROM jobs GROUP BY status"
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    # -- response cache -----------------------------------------------------------

    def cache_get(self, key: str) -> Any:
        with self._lock:
            row = self._conn.execute(
                "SELECT response FROM response_cache WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def cache_put(self, key: str, response: Any) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO response_cache (key, response, created_at)"
                " VALUES (?, ?, ?)",
                (key, _dumps(response), time.time()),
            )
