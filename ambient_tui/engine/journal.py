"""The journal: one JSONL file per cluster under the XDG state directory.

One line per event worth keeping (plan, step start, step end, skip). It is append-only and
flushed per line, so a dropped terminal loses at most the line being written. Reading it back
tolerates corrupt lines: a bad line is reported and skipped, and every good line still counts.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ambient_tui.engine.redact import redact, redact_argv

TAIL_LINES = 40


class JournalError(RuntimeError):
    """The journal cannot be written; the message says where and what to do."""


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ambient-tui"


def journal_path(cluster: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", cluster).strip("_") or "default"
    return state_dir() / "journal" / f"{safe}.jsonl"


@dataclass
class JournalRead:
    records: list[dict] = field(default_factory=list)
    # (line number, reason) for lines that could not be read.
    corrupt: list[tuple[int, str]] = field(default_factory=list)

    def step_states(self, run_id: str | None = None) -> dict[str, str]:
        """Last known state per step id (of one run, or of all runs)."""
        states: dict[str, str] = {}
        for r in self.records:
            if run_id and r.get("run") != run_id:
                continue
            if r.get("type") in ("step-start", "step-end", "step-skip"):
                states[r["step"]] = r.get("state", "running")
        return states

    def last_run(self) -> str | None:
        runs = [r["run"] for r in self.records if r.get("type") == "plan" and "run" in r]
        return runs[-1] if runs else None

    def interrupted(self, run_id: str | None = None) -> list[str]:
        """Steps that started and never ended (the app was killed while they ran)."""
        return [s for s, st in self.step_states(run_id).items() if st == "running"]


class Journal:
    def __init__(self, path: Path, run_id: str | None = None) -> None:
        self.path = Path(path)
        # A random suffix: one process may open two runs within the same second, and --resume
        # must never mix them.
        self.run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._tails: dict[str, deque[str]] = {}
        self._fh = None

    @classmethod
    def for_cluster(cls, cluster: str) -> "Journal":
        return cls(journal_path(cluster))

    def _open(self):
        if self._fh is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a", encoding="utf-8")
            except OSError as e:
                raise JournalError(
                    f"cannot write the journal at {self.path}: {e.strerror}; "
                    "set XDG_STATE_HOME to a writable directory") from None
        return self._fh

    def write(self, record: dict) -> None:
        record = {"ts": round(time.time(), 3), "run": self.run_id, **record}
        fh = self._open()
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        fh.flush()

    def plan(self, plan) -> None:
        self.write({"type": "plan", "title": plan.title, "meta": plan.meta,
                    "steps": [s.id for s in plan.steps]})

    def step_start(self, step, dry_run: bool = False) -> None:
        self._tails[step.id] = deque(maxlen=TAIL_LINES)
        rec = {"type": "step-start", "step": step.id, "state": "running", "dry_run": dry_run}
        if step.argv is not None:
            rec["argv"] = redact_argv(step.argv)
        else:
            rec["api"] = redact(step.api.describe)
        self.write(rec)

    def output(self, step_id: str, line: str) -> None:
        self._tails.setdefault(step_id, deque(maxlen=TAIL_LINES)).append(line)

    def step_end(self, step, state: str, exit_code: int | None, started: float, message: str = "") -> None:
        tail = [redact(l) for l in self._tails.pop(step.id, ())]
        self.write({"type": "step-end", "step": step.id, "state": state, "exit_code": exit_code,
                    "started": round(started, 3), "ended": round(time.time(), 3),
                    "message": redact(message), "tail": tail})

    def step_skip(self, step, reason: str) -> None:
        self.write({"type": "step-skip", "step": step.id, "state": "skipped", "reason": reason})

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @staticmethod
    def read(path: Path) -> JournalRead:
        out = JournalRead()
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return out
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or "type" not in rec:
                    raise ValueError("not a journal record")
                out.records.append(rec)
            except ValueError as e:
                out.corrupt.append((n, str(e).split(":")[0]))
        return out
