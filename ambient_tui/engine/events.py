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


@dataclass(frozen=True)
class Event:
    kind: EventKind
    step_id: str
    state: str = ""
    line: str = ""
    exit_code: int | None = None
    message: str = ""
    at: float = field(default_factory=time.time)
