"""Waiting for deleted CRDs to go, and unsticking the API server's clean-up when it stalls.

kube-apiserver removes a deleted CRD only after its clean-up finalizer has listed and deleted
every instance. When that list fails (a CRD deleted soon after it was created often answers
"could not list instances: storage is (re)initializing"), the finalizer retries with an
exponential back-off that reaches minutes, although the next list would succeed. Any change to
the CRD's metadata queues it again at once (apiextensions-apiserver crd_finalizer.go,
updateCustomResourceDefinition), so a stalled CRD gets an annotation bump, never a finalizer
removal: instances, if any, are still deleted by the API server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

RETRY_ANNOTATION = "ambient-tui.io/cleanup-retry"
STALLED_REASON = "InstanceDeletionFailed"


@dataclass
class CrdWait:
    """What a wait saw: nudges sent per CRD, and the last stalled message per CRD."""
    nudges: dict[str, int] = field(default_factory=dict)
    stalled: dict[str, str] = field(default_factory=dict)

    def summary(self) -> list[str]:
        if not self.nudges:
            return []
        return [f"re-queued the API server's clean-up of {name} {n} time(s) "
                f"(it reported: {self.stalled.get(name, 'InstanceDeletionFailed')})"
                for name, n in sorted(self.nudges.items())]


def stalled_message(crd) -> str | None:
    """The Terminating condition's message when the API server's clean-up of this CRD failed."""
    if crd.metadata.deletion_timestamp is None:
        return None
    for cond in (crd.status.conditions if crd.status and crd.status.conditions else []):
        if cond.type == "Terminating" and cond.reason == STALLED_REASON:
            return cond.message or STALLED_REASON
    return None


def wait_crds_gone(ext, names: list[str], timeout: float, nudge_every: float = 5.0,
                   sleep: Callable[[float], None] = time.sleep,
                   clock: Callable[[], float] = time.monotonic) -> CrdWait:
    """Poll until none of `names` exists; bump a CRD's annotation every `nudge_every` s it stays stalled.

    ext: an ApiextensionsV1Api. Raises TimeoutError naming what is left and why.
    """
    seen = CrdWait()
    wanted = set(names)
    deadline = clock() + timeout
    last_nudge: dict[str, float] = {}
    while True:
        left = [c for c in ext.list_custom_resource_definition().items if c.metadata.name in wanted]
        if not left:
            return seen
        now = clock()
        for crd in left:
            msg = stalled_message(crd)
            name = crd.metadata.name
            if msg is None:
                continue
            seen.stalled[name] = msg
            # The API server's own first retries are quick; bump only a stall that lasts.
            if now - last_nudge.setdefault(name, now) >= nudge_every:
                last_nudge[name] = now
                seen.nudges[name] = seen.nudges.get(name, 0) + 1
                _bump(ext, name, seen.nudges[name])
        if now > deadline:
            why = "; ".join(f"{n}: {m}" for n, m in sorted(seen.stalled.items())
                            if n in {c.metadata.name for c in left})
            names_left = ", ".join(sorted(c.metadata.name for c in left))
            raise TimeoutError(f"still present after {timeout:g}s: {names_left}"
                               + (f" (the API server reports {why})" if why else ""))
        sleep(1)


def _bump(ext, name: str, n: int) -> None:
    from kubernetes.client.rest import ApiException

    body = {"metadata": {"annotations": {RETRY_ANNOTATION: str(n)}}}
    try:
        ext.patch_custom_resource_definition(name, body)
    except ApiException as e:
        if e.status != 404:  # gone meanwhile: what we wanted
            raise
