"""Resume: the cluster is the truth, the journal is the memory.

The journal remembers which steps finished; a step is skipped on `install --resume` (and the
continuation after a dropped terminal) only when the cluster still shows its effect: its helm
release deployed at the revision the step's output recorded, the Gateway API CRDs present, the
namespace label set. Anything else runs again, with the reason. An `uninstall` record (written
by every uninstall into the install journals too) ends what came before it: after an uninstall
nothing is remembered as done.

`decide` is a pure function of journal records, the plan's steps and a ClusterState; the
caller reads the state (`read_state`) and applies the decisions (`apply`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ambient_tui.engine.redact import redact_argv

DONE = ("succeeded", "warned")
GATEWAY_API_CRDS = ("gatewayclasses.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io",
                    "httproutes.gateway.networking.k8s.io")
ENROLL_LABEL = ("istio.io/dataplane-mode", "ambient")
REVISION = re.compile(r"^REVISION:\s*(\d+)\s*$")
# Steps that only read: they always run again, they change nothing and re-read the cluster.
READ_ONLY_PREFIXES = ("verify-", "ztunnel-workloads-")


@dataclass(frozen=True)
class Decision:
    step: str
    skip: bool
    reason: str
    end: dict | None = field(default=None, compare=False, repr=False)  # what the journal remembered

    def describe(self) -> str:
        return f"{'skip' if self.skip else 'run again'} {self.step}: {self.reason}"


@dataclass
class ClusterState:
    releases: dict[str, dict] = field(default_factory=dict)   # name -> helm list row
    crds: set[str] = field(default_factory=set)
    namespace_labels: dict[str, dict] = field(default_factory=dict)


def since_uninstall(records: list[dict]) -> list[dict]:
    """Records after the last uninstall (which ends every earlier install run)."""
    last = max((i for i, r in enumerate(records) if r.get("type") == "uninstall"), default=-1)
    return records[last + 1:]


def remembered(records: list[dict], run: str | None = None) -> dict[str, dict]:
    """step id -> its last step-end that finished (succeeded or warned), of one run or of all
    runs since the last uninstall; a later failed or cancelled end of the step forgets it.
    Dry runs never count."""
    out: dict[str, dict] = {}
    argv: dict[tuple, list] = {}
    for r in since_uninstall(records):
        if run is not None and r.get("run") != run:
            continue
        step = r.get("step")
        if not isinstance(step, str):
            continue
        if r.get("type") == "step-start" and not r.get("dry_run"):
            argv[(r.get("run"), step)] = r.get("argv")
        if r.get("type") == "resume":  # a continuation that skipped it still remembers it
            if r.get("skip") is True:
                rev = r.get("revision")
                out[step] = {"argv": r.get("argv"), "tail": [f"REVISION: {rev}"] if isinstance(rev, int) else []}
            else:
                out.pop(step, None)
            continue
        if r.get("type") != "step-end":
            continue
        if r.get("state") in DONE:
            out[step] = {**r, "argv": argv.get((r.get("run"), step))}
        elif r.get("state") in ("failed", "cancelled"):
            out.pop(step, None)
    return out


def recorded_revision(end: dict) -> int | None:
    """The helm revision a step's output printed (`REVISION: 3`), or None."""
    tail = end.get("tail")
    for line in reversed(tail if isinstance(tail, list) else []):
        m = REVISION.match(str(line).strip())
        if m:
            return int(m.group(1))
    return None


def _effect(step_id: str, end: dict, state: ClusterState) -> tuple[bool, str]:
    """(does the cluster still show what the step did?, why)."""
    if step_id.startswith("helm-"):
        name = step_id[len("helm-"):]
        row = state.releases.get(name)
        if row is None:
            return False, f"release {name} is not in the cluster any more"
        if row.get("status") != "deployed":
            return False, f"release {name} is {row.get('status') or 'in an unknown state'}"
        now = int(row.get("revision") or 0)
        rev = recorded_revision(end)
        if rev is not None and now != rev:
            return False, f"release {name} is at revision {now}, the journal recorded {rev}"
        return True, f"release {name} is deployed at revision {now}"
    if step_id == "gateway-api-crds":
        missing = [c for c in GATEWAY_API_CRDS if c not in state.crds]
        if missing:
            return False, f"Gateway API CRDs missing: {', '.join(c.split('.')[0] for c in missing)}"
        return True, "the Gateway API CRDs are present"
    if step_id.startswith("enroll-"):
        ns = step_id[len("enroll-"):]
        labels = state.namespace_labels.get(ns)
        key, value = ENROLL_LABEL
        if labels is None:
            return False, f"namespace {ns} is not in the cluster"
        if labels.get(key) != value:
            return False, f"namespace {ns} no longer has {key}={value}"
        return True, f"namespace {ns} has {key}={value}"
    if step_id.startswith(READ_ONLY_PREFIXES):
        return False, "a check: it changes nothing and reads the cluster again"
    return False, "its effect cannot be read back from the cluster; running it again is safe"


# Flags that only say which cluster a command talks to: the journal is already per cluster, and
# the TUI and the headless install pin it differently.
TARGET_FLAGS = ("--kube-context", "--context", "--kubeconfig")
# Flags (without a value) that only carry a release's current values through an upgrade: the
# session adds them once the release exists (plans/install_session.py), so the run that
# installed it and the continuation that finds it deployed plan the same chart, version and
# --set/--values with or without them. Whether the release is still what that run left is the
# cluster's side (_effect: deployed, at the recorded revision).
VALUES_CARRY_FLAGS = ("--reuse-values", "--reset-then-reuse-values")


def _what_it_does(argv: list) -> list:
    """The command with what does not change its effect left out: the pinning flags (and their
    value) and the flags that carry values through an upgrade."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in TARGET_FLAGS:
            skip = True
        elif a in VALUES_CARRY_FLAGS:
            continue
        elif not str(a).startswith(tuple(f + "=" for f in TARGET_FLAGS)):
            out.append(a)
    return out


def decide(steps, records: list[dict], state: ClusterState, run: str | None = None) -> list[Decision]:
    """For each plan step the journal remembers as finished: skip it, or run it again, and why.
    Steps the journal does not remember run as planned and get no decision."""
    memory = remembered(records, run)
    out = []
    for s in steps:
        end = memory.get(s.id)
        if end is None:
            continue
        if s.argv is not None and isinstance(end.get("argv"), list) and \
                _what_it_does(end["argv"]) != _what_it_does(redact_argv(s.argv)):
            out.append(Decision(s.id, False, "its command changed since it ran (version, values or charts)"))
            continue
        shown, why = _effect(s.id, end, state)
        out.append(Decision(s.id, shown, why, end))
    return out


def apply(plan, decisions: list[Decision]) -> list[str]:
    """Mark the skipped steps done; returns their ids."""
    from ambient_tui.engine.plan import StepState

    skipped = []
    for d in decisions:
        if d.skip:
            plan.step(d.step).state = StepState.SUCCEEDED
            skipped.append(d.step)
    return skipped


def read_state(kube, releases: list[dict]) -> ClusterState:
    """The cluster's side: helm release rows (from `helm list -A -a`), CRD names, namespace
    labels. Raises ClusterAccessError when the API server cannot be read."""
    return ClusterState(releases={r["name"]: r for r in releases},
                        crds={c.metadata.name for c in kube.list_crds()},
                        namespace_labels={n.metadata.name: dict(n.metadata.labels or {})
                                          for n in kube.list_namespaces()})


def journal_decisions(journal, decisions: list[Decision]) -> None:
    """Skipped and re-run steps are journaled, so repeated interruptions forget nothing."""
    for d in decisions:
        rec = {"type": "resume", "step": d.step, "skip": d.skip, "reason": d.reason}
        if d.skip and d.end is not None:
            rec["argv"], rec["revision"] = d.end.get("argv"), recorded_revision(d.end)
        journal.write(rec)


def continue_run(plan, records: list[dict], run: str | None, check_ctx, releases: list[dict],
                 journal=None) -> tuple[list[str], list[str]]:
    """For the TUI: decide and apply in one call (blocking: call it in a thread).
    Returns (skipped step ids, one line per step that runs again). When the cluster cannot be
    read, nothing is skipped and the line says so."""
    try:
        state = read_state(check_ctx.client(), releases)
    except Exception as e:  # noqa: BLE001 - ClusterAccessError, no context yet
        return [], [f"could not read the cluster to continue ({e}); every step runs again"]
    decisions = decide(plan.steps, records, state, run)
    if journal is not None:
        journal_decisions(journal, decisions)
    return apply(plan, decisions), [d.describe() for d in decisions if not d.skip]
