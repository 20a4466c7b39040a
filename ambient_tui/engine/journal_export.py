"""What ran, from the journal, as a runbook the team keeps (`ambient-tui journal`).

The plan runbook (engine/runbook.py) says what *will* run; this says what *did*: each step's
exact command (argv or API call), when it started and ended, how it ended (state, exit code,
message) and the last output lines. Tails are redacted again on the way out, in case a
journal was written by an older version. Records are read as README's "Reading the journal"
documents them; unknown fields are ignored.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field

from ambient_tui.engine.redact import redact, redact_argv


@dataclass
class RanStep:
    step: str
    command: str
    argv: list[str] | None
    dry_run: bool
    started: float | None
    ended: float | None = None
    state: str = "interrupted"  # no step-end: the app died while it ran
    exit_code: int | None = None
    message: str = ""
    tail: list[str] = field(default_factory=list)


@dataclass
class RanPlan:
    title: str
    meta: dict
    steps: list[RanStep] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def runs(records: list[dict]) -> list[str]:
    """Run ids in the order they first appear."""
    seen: list[str] = []
    for r in records:
        run = r.get("run")
        if run and run not in seen:
            seen.append(run)
    return seen


def select_run(records: list[dict], run: str) -> str | None:
    """'last' (the newest run), an exact id, or a unique prefix of one; None when unknown."""
    ids = runs(records)
    if not ids:
        return None
    if run == "last":
        return ids[-1]
    if run in ids:
        return run
    matches = [i for i in ids if i.startswith(run)]
    return matches[0] if len(matches) == 1 else None


def ran(records: list[dict], run: str) -> list[RanPlan]:
    plans: list[RanPlan] = []
    open_steps: dict[str, RanStep] = {}
    for r in records:
        if r.get("run") != run:
            continue
        typ = r.get("type")
        if typ == "plan" or not plans:
            if typ == "plan":
                plans.append(RanPlan(str(r.get("title", "")), dict(r.get("meta") or {})))
                continue
            plans.append(RanPlan("(no plan record)", {}))
        plan = plans[-1]
        step = str(r.get("step", ""))
        if typ == "step-start":
            argv = r.get("argv")
            argv = redact_argv([str(a) for a in argv]) if isinstance(argv, list) else None
            s = RanStep(step, shlex.join(argv) if argv else redact(str(r.get("api", ""))), argv,
                        bool(r.get("dry_run")), r.get("ts"))
            plan.steps.append(s)
            open_steps[step] = s
        elif typ == "step-end":
            s = open_steps.pop(step, None)
            if s is None:  # an end without its start (a truncated journal): keep what it says
                s = RanStep(step, "(start not recorded)", None, False, r.get("started"))
                plan.steps.append(s)
            s.ended, s.state = r.get("ended"), str(r.get("state", ""))
            s.started = r.get("started", s.started)
            s.exit_code, s.message = r.get("exit_code"), redact(str(r.get("message") or ""))
            s.tail = [redact(str(l)) for l in r.get("tail") or []]
        elif typ == "step-skip":
            plan.skipped.append((step, str(r.get("reason", ""))))
    return plans


def _when(ts) -> str:
    if not isinstance(ts, (int, float)):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _result(s: RanStep) -> str:
    out = s.state + (f", exit {s.exit_code}" if s.exit_code is not None else "")
    if isinstance(s.started, (int, float)) and isinstance(s.ended, (int, float)):
        out += f", {s.ended - s.started:.1f}s"
    return out + (" (dry-run: not run)" if s.dry_run else "")


def to_markdown(run: str, cluster: str, plans: list[RanPlan]) -> str:
    out = [f"# What ran: {run}", "", f"- cluster: `{cluster}`", ""]
    for p in plans:
        out += [f"## {p.title}", ""]
        for k, v in p.meta.items():
            if v:
                out.append(f"- {k.replace('_', ' ')}: `{v}`")
        out.append("")
        for n, s in enumerate(p.steps, 1):
            out += [f"{n}. **{s.step}**: {_result(s)}", f"   started {_when(s.started)}"
                    + (f", ended {_when(s.ended)}" if s.ended else ", never ended (interrupted)"), "",
                    "   ```sh" if s.argv else "   ```text", f"   {s.command}", "   ```", ""]
            if s.message:
                out += [f"   Message: {s.message}", ""]
            if s.tail:
                out += ["   Output (last lines):", "", "   ```text"] + [f"   {l}" for l in s.tail] + ["   ```", ""]
        for step, reason in p.skipped:
            out += [f"- skipped **{step}**: {reason}"]
        if p.skipped:
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def to_shell(run: str, cluster: str, plans: list[RanPlan]) -> str:
    out = ["#!/usr/bin/env bash", f"# What ran in {run} on {cluster}, replayable.",
           "# Generated by ambient-tui from its journal; each command is exactly what ran.",
           "set -euo pipefail", ""]
    for p in plans:
        out.append(f"# --- {p.title}")
        for s in p.steps:
            out.append(f"# {s.step}: {_result(s)}, started {_when(s.started)}")
            if s.dry_run:
                out.append(f"# (dry-run, not run) {s.command}")
            elif s.argv:
                out.append(s.command)
            else:
                out.append(f"# API call (run by ambient-tui, no CLI equivalent): {s.command}")
        for step, reason in p.skipped:
            out.append(f"# skipped {step}: {reason}")
        out.append("")
    return "\n".join(out)


def to_json(run: str, cluster: str, plans: list[RanPlan]) -> str:
    from dataclasses import asdict

    return json.dumps({"run": run, "cluster": cluster, "plans": [asdict(p) for p in plans]}, indent=2)


FORMATS = {"markdown": to_markdown, "shell": to_shell, "json": to_json}
