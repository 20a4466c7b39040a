"""Events the runner emits; the journal, the TUI and the headless printer subscribe."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field


class EventKind(str, enum.Enum):
    STARTED = "started"
    OUTPUT = "output"
    FINISHED = "finished"  # succeeded, warned, skipped or cancelled: see `state`
    FAILED = "failed"
    # A step watcher named why the step's wait is not progressing (see `Cause`).
    CAUSE = "cause"


@dataclass(frozen=True)
class Cause:
    """Why a waiting step is stuck, as a step watcher classified it.

    `permanent`: it cannot clear by itself (every node refuses for a static reason, admission
    refuses, the image does not exist): the runner ends the step's wait early. `fix` is the
    next thing to do (a values snippet, a label, a command)."""

    kind: str        # e.g. FailedScheduling, FailedCreate, ImagePullBackOff, CrashLoopBackOff
    workload: str    # istiod, istio-cni-node, ztunnel...
    summary: str     # one line: what is wrong
    fix: str = ""
    permanent: bool = False
    detail: str = ""  # further lines (a termination message, last log lines)
    ref: str = ""     # namespace/pod/container the cause is about, when one container

    def text(self) -> str:
        return f"{self.workload}: {self.summary}"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    step_id: str
    state: str = ""
    line: str = ""
    exit_code: int | None = None
    message: str = ""
    cause: Cause | None = None  # for CAUSE events
    at: float = field(default_factory=time.time)
