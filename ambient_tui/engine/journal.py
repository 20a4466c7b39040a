"""The journal: one JSONL file per cluster under the XDG state directory.

One line per event worth keeping (plan, step start, step end, skip). Each record is written
whole with one write() on an O_APPEND descriptor, then fsynced; a write the disk cuts short is
truncated back, so the file never holds half a record. An unfinished last line (a crash mid
write by an older version, a full disk) is closed off with a newline before appending, so it
can never swallow the next record.

Reading never raises: every line is validated once into a clean shape (`clean_record`), and
a line that is not a well-formed record is counted and skipped without hiding the records
around it. `damage_report()` gives the lines both front ends show once about the damage.
"""

from __future__ import annotations

import errno
import gc
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
# Free space the state directory must have before a run starts (a plan record and a few
# step-ends with their output tails), so a nearly full disk stops the run before any change.
HEADROOM = 16 * 1024
# How many damaged lines are named one by one; the rest are counted.
DAMAGE_SHOWN = 3

STEP_TYPES = ("step-start", "step-end", "step-skip")
STATES = ("pending", "running", "succeeded", "warned", "failed", "skipped", "cancelled")
DONE_STATES = ("succeeded", "warned", "skipped")
_NEXT = "set XDG_STATE_HOME to a writable directory with free space, or fix the path, and run again"


class JournalError(RuntimeError):
    """The journal cannot be written; the message says where and what to do."""


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ambient-tui"


def journal_path(cluster: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", cluster or "").strip("_") or "default"
    return state_dir() / "journal" / f"{safe}.jsonl"


# -- reading ------------------------------------------------------------------------------------

def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _str_list(v) -> bool:
    # join() checks every item in C: output tails make this the reader's hottest check.
    if not isinstance(v, list):
        return False
    try:
        "".join(v)
    except TypeError:
        return False
    return True


# Optional fields: name -> check. A present field of the wrong type damages the line.
_FIELDS = {
    "ts": _is_num, "started": _is_num, "ended": _is_num,
    "run": lambda v: isinstance(v, str),
    "title": lambda v: isinstance(v, str),
    "meta": lambda v: isinstance(v, dict),
    "steps": _str_list, "argv": _str_list, "tail": _str_list,
    "api": lambda v: isinstance(v, str),
    "message": lambda v: isinstance(v, str),
    "reason": lambda v: isinstance(v, str),
    "from_run": lambda v: isinstance(v, str),
    "dry_run": lambda v: isinstance(v, bool),
    "exit_code": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
}


def clean_record(rec) -> dict | str:
    """The record in its clean shape, or why it is damaged. Unknown record types (other
    features' records) are kept with their common fields checked; unknown fields are kept."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    kind = rec.get("type")
    if not isinstance(kind, str) or not kind:
        return "no record type"
    for name, v in rec.items():
        ok = _FIELDS.get(name)
        if ok is not None and not ok(v):
            return f"bad {name!r} field"
    out = dict(rec)
    out.setdefault("run", "")
    if kind in STEP_TYPES:
        step = rec.get("step")
        if not isinstance(step, str) or not step:
            return "no step id"
        state = rec.get("state", {"step-start": "running", "step-skip": "skipped"}.get(kind))
        if state not in STATES:
            return f"unknown state {str(state)[:20]!r}"
        out["state"] = state
    elif kind == "plan":
        out.setdefault("title", "")
        out.setdefault("meta", {})
        out.setdefault("steps", [])
    return out


@dataclass
class JournalRead:
    records: list[dict] = field(default_factory=list)
    # (line number, reason) for lines that could not be read.
    corrupt: list[tuple[int, str]] = field(default_factory=list)
    # Why the file itself could not be read (a directory, a file as its parent...), else "".
    error: str = ""

    def damage_report(self) -> list[str]:
        """What to say once about damaged lines (and an unreadable file)."""
        out = [self.error] if self.error else []
        for n, reason in self.corrupt[:DAMAGE_SHOWN]:
            out.append(f"journal line {n} is damaged ({reason}) and was skipped")
        more = len(self.corrupt) - DAMAGE_SHOWN
        if more > 0:
            out.append(f"and {more} more damaged journal line(s) were skipped")
        return out

    def dry_runs(self) -> set[str]:
        """Runs that were --dry-run: they changed nothing, so they never count for continuation."""
        return {r.get("run") for r in self.records
                if r.get("dry_run") is True and r.get("type") in ("plan", "step-start", "step-end")}

    def step_states(self, run_id: str | None = None) -> dict[str, str]:
        """Last known state per step id (of one run, or of all real runs)."""
        dry = self.dry_runs()
        states: dict[str, str] = {}
        for r in self.records:
            run = r.get("run")
            if (run_id and run != run_id) or run in dry:
                continue
            step = r.get("step")
            if r.get("type") in STEP_TYPES and isinstance(step, str):
                states[step] = r.get("state", "running")
        return states

    def last_run(self) -> str | None:
        dry = self.dry_runs()
        runs = [r["run"] for r in self.records if r.get("type") == "plan"
                and isinstance(r.get("run"), str) and r["run"] and r["run"] not in dry]
        return runs[-1] if runs else None

    def interrupted(self, run_id: str | None = None) -> list[str]:
        """Steps that started and never ended (the app was killed while they ran)."""
        return [s for s, st in self.step_states(run_id).items() if st == "running"]

    def of_run(self, run_id: str | None) -> "JournalRead":
        """Only the records of one run."""
        return JournalRead([r for r in self.records if r.get("run") == run_id])


def _parse_line(line: bytes):
    """The record on one line; a line that holds the tail of an unfinished record followed by a
    whole one (written by a version that did not close lines off) yields the whole one."""
    try:
        return json.loads(line), ""
    except UnicodeDecodeError:  # not UTF-8: read what can be read
        line = line.decode("utf-8", errors="replace").encode("utf-8")
        try:
            return json.loads(line), ""
        except (ValueError, RecursionError):
            pass
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        pass
    reason = "cut off or not JSON"
    at = line.find(b'{"ts"', 1)
    if at > 0:
        try:
            return json.loads(line[at:]), reason
        except (ValueError, RecursionError):
            pass
    return None, reason


def read_journal(path: Path) -> JournalRead:
    out = JournalRead()
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return out
    except IsADirectoryError:
        out.error = f"the journal path {path} is a directory, not a file; {_NEXT}"
        return out
    except NotADirectoryError:
        out.error = f"a parent of the journal path {path} is a file, not a directory; {_NEXT}"
        return out
    except OSError as e:
        out.error = f"cannot read the journal at {path}: {e.strerror or e}; {_NEXT}"
        return out
    # Parsing makes tens of thousands of containers, none of them cyclic: the collector's
    # passes over them would free nothing.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        _parse_into(out, data)
    finally:
        if was_enabled:
            gc.enable()
    return out


def _parse_into(out: JournalRead, data: bytes) -> None:
    append, damaged = out.records.append, out.corrupt.append
    # Bytes, split on \n only (splitlines() would also split on \x1c, \u2028...); json.loads
    # decodes each line itself, which is faster than decoding the whole file first.
    for n, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        rec, reason = _parse_line(line)
        if rec is None:
            damaged((n, reason))
            continue
        if reason:  # a whole record after a cut-off one: the cut-off part is the damage
            damaged((n, reason))
        clean = clean_record(rec)
        if isinstance(clean, str):
            damaged((n, clean))
        else:
            append(clean)


# -- writing ------------------------------------------------------------------------------------

def _write_error(path: Path, e: OSError, folder: Path | None = None) -> JournalError:
    """`folder`: the error came from probing the state directory (check_state_dir), which
    holds the journal folder `path` and the pinned kubeconfigs."""
    if folder is not None:
        if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
            what = f"the disk holding the journal {path} is full (state directory {folder})"
        elif isinstance(e, NotADirectoryError) or e.errno == errno.ENOTDIR or isinstance(e, FileExistsError):
            what = f"a parent of the state directory {folder} (journal {path}) is a file, not a directory"
        elif isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            what = f"the state directory {folder} (journal {path}) is not writable ({e.strerror})"
        else:
            what = f"cannot write in the state directory {folder} (journal {path}): {e.strerror or e}"
        return JournalError(f"{what}; {_NEXT}")
    if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
        what = f"the disk holding the journal {path} is full"
    elif isinstance(e, IsADirectoryError) or (e.errno == errno.EISDIR):
        what = f"the journal path {path} is a directory, not a file"
    elif isinstance(e, NotADirectoryError) or e.errno == errno.ENOTDIR or isinstance(e, FileExistsError):
        what = f"a parent of the journal path {path} is a file, not a directory"
    elif isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = f"the journal at {path} is not writable ({e.strerror})"
    else:
        what = f"cannot write the journal at {path}: {e.strerror or e}"
    return JournalError(f"{what}; {_NEXT}")


def check_state_dir(headroom: int = HEADROOM) -> None:
    """Raise JournalError unless the state directory (the journal's, and the pinned target's
    kubeconfig's) can be made and has room. Call it before the preflight: the pinned target
    is written there first, and a failure there must read as this one line, not as a
    cluster-access failure."""
    folder = state_dir()
    probe = folder / f".space-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        pfd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            data = b"\0" * headroom
            n = os.write(pfd, data)
            if n != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(pfd)
        finally:
            os.close(pfd)
    except OSError as e:
        raise _write_error(journal_path("").parent, e, folder) from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass


class Journal:
    def __init__(self, path: Path, run_id: str | None = None) -> None:
        self.path = Path(path)
        # A random suffix: one process may open two runs within the same second, and --resume
        # must never mix them.
        self.run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._tails: dict[str, deque[str]] = {}
        self._fd: int | None = None

    @classmethod
    def for_cluster(cls, cluster: str) -> "Journal":
        return cls(journal_path(cluster))

    def _open(self) -> int:
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError as e:
                raise _write_error(self.path, e) from None
            try:
                self._close_off(fd)
            except OSError as e:
                os.close(fd)
                raise _write_error(self.path, e) from None
            self._fd = fd
        return self._fd

    def _close_off(self, fd: int) -> None:
        """End an unfinished last line, so the next record starts on a line of its own."""
        size = os.fstat(fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as fh:
            fh.seek(size - 1)
            last = fh.read(1)
        if last != b"\n":
            self._append(fd, b"\n")

    def _append(self, fd: int, data: bytes) -> None:
        """All of `data` or nothing: a short write (disk full) is truncated back and raised."""
        before = os.fstat(fd).st_size
        try:
            n = os.write(fd, data)
            if n != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, before)
            except OSError:
                pass
            raise

    def check(self, headroom: int = HEADROOM) -> None:
        """Raise JournalError unless the journal can be written and has room: call it before
        the first change. Opens (and closes off) the file and probes for free space."""
        fd = self._open()
        probe = self.path.with_name(f".{self.path.name}.space-{os.getpid()}")
        try:
            pfd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                self._append(pfd, b"\0" * headroom)
            finally:
                os.close(pfd)
        except OSError as e:
            raise _write_error(self.path, e) from None
        finally:
            try:
                probe.unlink()
            except OSError:
                pass
        del fd

    def write(self, record: dict) -> None:
        record = {"ts": round(time.time(), 3), "run": self.run_id, **record}
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        fd = self._open()
        try:
            self._append(fd, data)
        except OSError as e:
            raise _write_error(self.path, e) from None

    def plan(self, plan, dry_run: bool = False) -> None:
        rec = {"type": "plan", "title": plan.title, "meta": plan.meta, "steps": [s.id for s in plan.steps]}
        if dry_run:
            rec["dry_run"] = True
        self.write(rec)

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

    def step_end(self, step, state: str, exit_code: int | None, started: float, message: str = "",
                 dry_run: bool = False) -> None:
        tail = [redact(l) for l in self._tails.pop(step.id, ())]
        rec = {"type": "step-end", "step": step.id, "state": state, "exit_code": exit_code,
               "started": round(started, 3), "ended": round(time.time(), 3),
               "message": redact(message), "tail": tail}
        if dry_run:
            rec["dry_run"] = True
        self.write(rec)

    def step_skip(self, step, reason: str, state: str = "skipped", from_run: str | None = None) -> None:
        """A step skipped by the person, or (from_run) carried over as done from an earlier run:
        journaled so the next continuation still knows it is done."""
        rec = {"type": "step-skip", "step": step.id, "state": state, "reason": redact(reason)}
        if from_run:
            rec["from_run"] = from_run
        self.write(rec)

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    @staticmethod
    def read(path: Path) -> JournalRead:
        return read_journal(path)
