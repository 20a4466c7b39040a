"""Plans are phases of steps; a step is data: what it runs is visible before it runs."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable


# Step kinds: a helm release, a namespace enrolment, a CRD apply, a readiness wait, a repair,
# a preflight fix, the in-cluster install record.
KINDS = ("", "helm-release", "istioctl-install", "enroll", "crds", "verify", "repair", "fix", "record")


class StepState(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    WARNED = "warned"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        """Finished in a way that lets the plan go on."""
        return self in (StepState.SUCCEEDED, StepState.WARNED, StepState.SKIPPED)


@dataclass(frozen=True)
class ApiCall:
    """A Kubernetes or AWS API call, described so it can be shown and journalled.

    `describe` is the exact call in words (e.g. "PATCH apps/v1 DaemonSet kube-system/aws-node
    env POD_SECURITY_GROUP_ENFORCING_MODE=standard"); `func` performs it and returns output
    lines. The func runs in a thread, since the kubernetes and boto3 clients block.
    """

    describe: str
    func: Callable[[], Any]


@dataclass
class Step:
    id: str
    title: str
    argv: list[str] | None = None
    api: ApiCall | None = None
    timeout: float = 600.0
    undo: list[str] | None = None
    # A step whose failure is only worth a warning (e.g. an optional post-check).
    warn_only: bool = False
    # Steps sharing a group id inside a phase may run concurrently.
    group: str | None = None
    note: str = ""
    # Reads a command's whole output after exit 0 and returns a problem ("" when fine); a
    # problem fails the step (warns when warn_only). For tools that exit 0 on bad news.
    verify: Callable[[list[str]], str] | None = None
    # What the step is, for modules that must recognise it without matching its id:
    # one of KINDS ("" for an ordinary command).
    kind: str = ""
    # The workloads (ISTIO_WORKLOADS names) whose rollout this step waits for.
    watches: tuple[str, ...] = ()
    state: StepState = StepState.PENDING
    skip_reason: str = ""

    def __post_init__(self) -> None:
        if (self.argv is None) == (self.api is None):
            raise ValueError(f"step {self.id}: give exactly one of argv or api")
        if self.argv is not None and not all(isinstance(a, str) for a in self.argv):
            raise TypeError(f"step {self.id}: argv must be a list of strings")
        if self.kind not in KINDS:
            raise ValueError(f"step {self.id}: kind {self.kind!r} not in {KINDS}")

    @property
    def command(self) -> str:
        """The exact command as one line, for display and the runbook."""
        if self.argv is not None:
            import shlex
            return shlex.join(self.argv)
        return self.api.describe


@dataclass
class Phase:
    id: str
    title: str
    steps: list[Step] = field(default_factory=list)


@dataclass
class Plan:
    title: str
    phases: list[Phase] = field(default_factory=list)
    # What the plan was built for, shown in headers and the runbook.
    meta: dict[str, str] = field(default_factory=dict)
    # Why the plan is what it is (the install session's decisions), one line each.
    notes: list[str] = field(default_factory=list)

    @property
    def steps(self) -> list[Step]:
        return [s for p in self.phases for s in p.steps]

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "meta": dict(self.meta),
            "notes": list(self.notes),
            "phases": [
                {"id": p.id, "title": p.title, "steps": [
                    {"id": s.id, "title": s.title, "argv": s.argv,
                     "api": s.api.describe if s.api else None, "timeout": s.timeout,
                     "undo": s.undo, "group": s.group, "note": s.note, "kind": s.kind,
                     "state": s.state.value}
                    for s in p.steps]}
                for p in self.phases
            ],
        }
