"""After a dropped terminal: what the journal says was interrupted, which helm releases are stuck,
and the steps that repair them.

A helm process killed mid-operation (SIGKILL, the machine or the SSH session gone) leaves its
release `pending-install` or `pending-upgrade`; helm then refuses every later operation on it
("another operation is in progress"). The repair is a rollback to the last deployed revision
when there is one, else `helm uninstall` and a retry. A helm process that got SIGTERM (our
runner's cancel) marks the release `failed` itself; `helm upgrade --install` retries that
directly, so it needs no repair step, only a note.

Pure functions (`interrupted_steps`, `find_repairs`, `repair_steps`) plus `stuck_releases`,
which asks helm; the TUI and the headless install both call these.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass

from ambient_tui.checks.model import FAIL
from ambient_tui.engine.journal import JournalRead
from ambient_tui.engine.plan import Phase, Step

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
# Revisions a rollback may return to: helm marks the live one deployed, older ones superseded.
GOOD = ("deployed", "superseded")
ROLLBACK, UNINSTALL, RETRY = "rollback", "uninstall", "retry"


@dataclass(frozen=True)
class Interrupted:
    """A step of the journal's last run that did not finish: no step-end, or cancelled."""

    step: str
    run: str
    state: str  # running (no step-end: the app was killed) or cancelled (it caught the signal)
    argv: tuple[str, ...] = ()
    message: str = ""

    def describe(self) -> str:
        how = ("started and never ended (the app was killed)" if self.state == "running"
               else f"was {self.state}" + (f" ({self.message})" if self.message else ""))
        return f"step {self.step} of run {self.run} {how}"


@dataclass(frozen=True)
class Repair:
    release: str
    namespace: str
    status: str
    revision: int
    action: str  # rollback | uninstall | retry
    to_revision: int | None = None
    step: str | None = None  # the interrupted journal step that was working on this release

    def describe(self) -> str:
        what = {ROLLBACK: f"roll back to revision {self.to_revision}, then install again",
                UNINSTALL: "no deployed revision to roll back to: uninstall it, then install again",
                RETRY: "helm upgrade --install retries a failed release; no repair step needed"}[self.action]
        by = f" (interrupted step {self.step})" if self.step else ""
        return f"release {self.namespace}/{self.release} is {self.status} at revision {self.revision}{by}: {what}"


def interrupted_steps(journal: JournalRead) -> list[Interrupted]:
    """Steps of the last run that started and did not finish (no step-end, or cancelled).
    Runs before the last uninstall are over (plans/resume.py)."""
    from ambient_tui.plans.resume import since_uninstall

    journal = JournalRead(since_uninstall(journal.records))
    run = journal.last_run()
    if run is None:
        return []
    starts: dict[str, dict] = {}
    ends: dict[str, dict] = {}
    for r in journal.records:
        if r.get("run") != run:
            continue
        if r.get("type") == "step-start" and not r.get("dry_run"):
            starts[r["step"]] = r
            ends.pop(r["step"], None)
        elif r.get("type") == "step-end":
            ends[r["step"]] = r
    out = []
    for step, start in starts.items():
        end = ends.get(step)
        if end is None or end.get("state") == "cancelled":
            out.append(Interrupted(step, run, "running" if end is None else "cancelled",
                                   tuple(start.get("argv") or ()), (end or {}).get("message", "")))
    return out


def _release_of_step(step: Interrupted) -> str | None:
    """The release a helm step was installing: `helm upgrade --install NAME ...` -> NAME."""
    argv = list(step.argv)
    if len(argv) >= 4 and argv[0].rsplit("/", 1)[-1] == "helm" and argv[1] in ("upgrade", "install"):
        rest = [a for a in argv[2:] if not a.startswith("-")]
        return rest[0] if rest else None
    return None


def rollback_target(history: list[dict], revision: int) -> int | None:
    """The revision to roll back to: the one helm still marks deployed, else the newest
    superseded one that did not fail (helm marks a failed revision superseded once another
    revision succeeds; its description says it failed)."""
    earlier = [h for h in history if int(h.get("revision", 0)) < revision]
    deployed = [int(h["revision"]) for h in earlier if h.get("status") == "deployed"]
    if deployed:
        return max(deployed)
    ok = [int(h["revision"]) for h in earlier if h.get("status") in GOOD
          and "failed" not in str(h.get("description", "")).lower()]
    return max(ok) if ok else None


def find_repairs(journal: JournalRead | None, releases: list[dict],
                 histories: dict[tuple[str, str], list[dict]] | None = None) -> list[Repair]:
    """Repairs for releases that are pending (or failed), from `helm list -a` rows and histories.

    releases: rows with name, namespace, status, revision (parsers.parse_helm_list).
    histories: (namespace, name) -> `helm history -o json` rows (revision, status).
    """
    by_release = {}
    for s in interrupted_steps(journal) if journal is not None else []:
        name = _release_of_step(s)
        if name:
            by_release[name] = s.step
    out = []
    for r in releases:
        status = r.get("status", "")
        if status not in PENDING and status != "failed":
            continue
        name, ns = r["name"], r["namespace"]
        rev = int(r.get("revision") or 0)
        step = by_release.get(name)
        if status == "failed":
            out.append(Repair(name, ns, status, rev, RETRY, step=step))
            continue
        target = rollback_target((histories or {}).get((ns, name), []), rev)
        if target is not None:
            out.append(Repair(name, ns, status, rev, ROLLBACK, target, step))
        else:
            out.append(Repair(name, ns, status, rev, UNINSTALL, step=step))
    return out


def repair_steps(repairs: list[Repair], kube_context: str | None = None) -> list[Step]:
    """The helm commands that unstick the releases; `retry` repairs need none."""
    ctx = ["--kube-context", kube_context] if kube_context else []
    steps = []
    for r in repairs:
        if r.action == ROLLBACK:
            steps.append(Step(f"repair-{r.release}", f"repair: roll back {r.release} to revision {r.to_revision}",
                              argv=["helm", "rollback", r.release, str(r.to_revision), "--namespace",
                                    r.namespace, *ctx], timeout=600,
                              note=f"{r.release} was left {r.status} by an interrupted run"))
        elif r.action == UNINSTALL:
            steps.append(Step(f"repair-{r.release}", f"repair: uninstall {r.release} ({r.status}) before retrying",
                              argv=["helm", "uninstall", r.release, "--namespace", r.namespace, "--wait",
                                    "--timeout", "5m", *ctx], timeout=600,
                              note=f"{r.release} was left {r.status} with no deployed revision"))
    return steps


def repair_phase(repairs: list[Repair], kube_context: str | None = None) -> Phase | None:
    steps = repair_steps(repairs, kube_context)
    return Phase("repair", "Repair releases an interrupted run left stuck", steps) if steps else None


def blocking(results, fixed: set[str], repairs: list[Repair], releases: list[dict]) -> list:
    """Failed checks that still block: a check whose failure the plan now fixes (a fix phase,
    or the repair of exactly the stuck releases it found) does not."""
    out = []
    for c in results:
        if c.status != FAIL or c.id in fixed:
            continue
        if c.id == "existing-istio" and releases and not any(r["chart"] == "ambient" for r in releases):
            stuck = {(r["namespace"], r["name"]) for r in releases
                     if r["status"] in PENDING or r["status"] == "failed"}
            if stuck and stuck <= {(r.namespace, r.release) for r in repairs}:
                continue
        out.append(c)
    return out


# -- asking helm --------------------------------------------------------------------------

def _helm(args: list[str], env: dict | None, kubeconfig: str | None, context: str | None,
          timeout: float) -> str:
    full_env = {**os.environ, **(env or {})}
    exe = shutil.which("helm", path=full_env.get("PATH"))
    if not exe:
        raise RuntimeError("helm not found on PATH")
    argv = [exe, *args]
    if kubeconfig:
        argv += ["--kubeconfig", kubeconfig]
    if context:
        argv += ["--kube-context", context]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args[:2])} failed: {r.stderr.strip()[:200]}")
    return r.stdout


def release_history(name: str, namespace: str, env: dict | None = None, kubeconfig: str | None = None,
                    context: str | None = None, timeout: float = 30) -> list[dict]:
    out = _helm(["history", name, "--namespace", namespace, "-o", "json"], env, kubeconfig, context, timeout)
    return json.loads(out or "[]")


def stuck_releases(releases: list[dict], env: dict | None = None, kubeconfig: str | None = None,
                   context: str | None = None) -> dict[tuple[str, str], list[dict]]:
    """`helm history` of every pending release (the others need none to be repaired)."""
    return {(r["namespace"], r["name"]): release_history(r["name"], r["namespace"], env, kubeconfig, context)
            for r in releases if r.get("status") in PENDING}
