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

    def argv(self, kube_context: str | None = None, kubeconfig: str | None = None) -> list[str] | None:
        """The helm command of the repair (None for retry): the plan's step and the advice."""
        from ambient_tui.tools.helm import target_flags

        flags = target_flags(kubeconfig, kube_context)
        if self.action == ROLLBACK:
            return ["helm", "rollback", self.release, str(self.to_revision), "--namespace", self.namespace, *flags]
        if self.action == UNINSTALL:
            return ["helm", "uninstall", self.release, "--namespace", self.namespace, "--wait",
                    "--timeout", "5m", *flags]
        return None

    def advice(self) -> str:
        """What a person would run by hand: the same rule the install's repair follows."""
        import shlex

        cmd = self.argv()
        if cmd is None:
            return f"ambient-tui install retries {self.release} ({self.status}) with helm upgrade --install"
        return shlex.join(cmd) + ", then run the install again"


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


def repair_for(row: dict, history: list[dict], step: str | None = None) -> Repair | None:
    """The one rule for a stuck release: roll back only to a revision that was deployed,
    otherwise uninstall and retry (helm rollback of a first install fails: "release has no
    0 version"); a failed release is retried as it is. None: the release is not stuck."""
    status = row.get("status", "")
    if status not in PENDING and status != "failed":
        return None
    name, ns = row["name"], row["namespace"]
    rev = int(row.get("revision") or 0)
    if status == "failed":
        return Repair(name, ns, status, rev, RETRY, step=step)
    target = rollback_target(history, rev)
    if target is not None:
        return Repair(name, ns, status, rev, ROLLBACK, target, step)
    return Repair(name, ns, status, rev, UNINSTALL, step=step)


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
        rep = repair_for(r, (histories or {}).get((r["namespace"], r["name"]), []), by_release.get(r["name"]))
        if rep is not None:
            out.append(rep)
    return out


def repair_steps(repairs: list[Repair], kube_context: str | None = None) -> list[Step]:
    """The helm commands that unstick the releases; `retry` repairs need none."""
    steps = []
    for r in repairs:
        argv = r.argv(kube_context)
        if argv is None:
            continue
        if r.action == ROLLBACK:
            title = f"repair: roll back {r.release} to revision {r.to_revision}"
            note = f"{r.release} was left {r.status} by an interrupted run"
        else:
            title = f"repair: uninstall {r.release} ({r.status}) before retrying"
            note = f"{r.release} was left {r.status} with no deployed revision"
        steps.append(Step(f"repair-{r.release}", title, argv=argv, timeout=600, note=note, kind="repair"))
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

def release_history(name: str, namespace: str, env: dict | None = None, kubeconfig: str | None = None,
                    context: str | None = None, timeout: float = 30) -> list[dict]:
    from ambient_tui.tools import helm

    return helm.history(name, namespace, env, kubeconfig, context, timeout)


def stuck_releases(releases: list[dict], env: dict | None = None, kubeconfig: str | None = None,
                   context: str | None = None) -> dict[tuple[str, str], list[dict]]:
    """`helm history` of every pending release (the others need none to be repaired)."""
    return {(r["namespace"], r["name"]): release_history(r["name"], r["namespace"], env, kubeconfig, context)
            for r in releases if r.get("status") in PENDING}
