"""Read a 50 MB journal and compute the continuation (what the last run left unfinished, and
what it finished), with the validating reader, against the reader before issue 15 in the same
run (the ratio is what counts on a shared machine).

    python bench/journal_bench.py [--mb 50] [--runs 5]

The journal is realistic: install runs of 8 steps (plan, step-start with argv, step-end with a
40-line output tail), the last one cut off mid-step, and a few damaged lines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ambient_tui.engine.journal import Journal, JournalRead  # noqa: E402
from ambient_tui.engine.runner import Runner  # noqa: E402
from ambient_tui.plans import repair  # noqa: E402
from ambient_tui.plans.install import build_install_plan  # noqa: E402
from ambient_tui.settings import Settings  # noqa: E402

GOAL = 1.0


def make_journal(path: Path, mb: int) -> int:
    plan = build_install_plan(Settings(istio_version="1.31.0"))
    steps = plan.steps
    tail = [f"  {i:02d} helm: upgraded release istiod in namespace istio-system; resource "
            f"Deployment/istiod configured (revision {i}) ok" for i in range(40)]
    target, written, run = mb * 1024 * 1024, 0, 0
    with open(path, "w", encoding="utf-8") as fh:
        while written < target:
            run += 1
            rid = f"20261204T1900{run:06d}-4242-abcdef"
            lines = [{"ts": 1.0 * run, "run": rid, "type": "plan", "title": plan.title, "meta": plan.meta,
                      "steps": [s.id for s in steps]}]
            for s in steps:
                lines.append({"ts": 1.0 * run, "run": rid, "type": "step-start", "step": s.id,
                              "state": "running", "dry_run": False, "argv": s.argv or [],
                              **({} if s.argv else {"api": s.command})})
                lines.append({"ts": 1.0 * run, "run": rid, "type": "step-end", "step": s.id,
                              "state": "succeeded", "exit_code": 0, "started": 1.0, "ended": 2.0,
                              "message": "", "tail": tail})
            chunk = "\n".join(json.dumps(r) for r in lines) + "\n"
            if run % 97 == 0:
                chunk += '{"type":"step-start"}\n\x00garbage\n'
            fh.write(chunk)
            written += len(chunk)
        # The last run: base done, istiod started and never ended.
        rid = "last-run"
        for r in ({"ts": 9e9, "run": rid, "type": "plan", "title": plan.title, "steps": [s.id for s in steps]},
                  {"ts": 9e9, "run": rid, "type": "step-end", "step": steps[0].id, "state": "succeeded"},
                  {"ts": 9e9, "run": rid, "type": "step-start", "step": steps[1].id, "state": "running",
                   "argv": steps[1].argv or []}):
            fh.write(json.dumps(r) + "\n")
    return path.stat().st_size


def continuation_new(path: Path) -> tuple[list[str], list[str], int]:
    read = Journal.read(path)
    last = repair.interrupted_steps(read)
    runner = Runner(build_install_plan(Settings(istio_version="1.31.0")))
    done = runner.resume_from(read.of_run(last[0].run)) if last else []
    return [s.step for s in last], done, len(read.corrupt)


def read_before(path: Path) -> JournalRead:
    """The reader before issue 15, as it was: splitlines, json.loads, no field checks."""
    out = JournalRead()
    text = Path(path).read_text(encoding="utf-8", errors="replace")
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


def continuation_before(path: Path) -> tuple[list[str], list[str], int]:
    read = read_before(path)
    # The old step_states raised KeyError on {"type":"step-start"}; drop those so it can run.
    read.records = [r for r in read.records if r.get("type") not in repair_step_types() or "step" in r]
    last = repair.interrupted_steps(read)
    runner = Runner(build_install_plan(Settings(istio_version="1.31.0")))
    done = runner.resume_from(JournalRead([r for r in read.records if r.get("run") == last[0].run])) if last else []
    return [s.step for s in last], done, len(read.corrupt)


def repair_step_types() -> tuple[str, ...]:
    return ("step-start", "step-end", "step-skip")


def timed(fn, path: Path) -> tuple[float, float, tuple]:
    """Wall and CPU seconds: on a shared 2-core machine the CPU time is the steadier one."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(path)
    return time.perf_counter() - t, time.process_time() - c, out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "big.jsonl"
        size = make_journal(path, args.mb)
        new_t, old_t, new_c, old_c = [], [], [], []
        for _ in range(args.runs):  # alternate, so both see the same machine load
            t, c, new_out = timed(continuation_new, path)
            new_t.append(t)
            new_c.append(c)
            t, c, old_out = timed(continuation_before, path)
            old_t.append(t)
            old_c.append(c)
        ids = [s.id for s in build_install_plan(Settings(istio_version="1.31.0")).steps]
        assert new_out[0] == [ids[1]] and new_out[1] == [ids[0]], new_out
        assert old_out[:2] == new_out[:2], (old_out, new_out)
    med_new, med_old = statistics.median(new_t), statistics.median(old_t)
    cpu_new, cpu_old = statistics.median(new_c), statistics.median(old_c)
    print(f"journal {size / 2**20:.1f} MB, {args.runs} runs each; damaged lines found: {new_out[2]}; "
          f"load average before/after: {load0:.1f}/{os.getloadavg()[0]:.1f}")
    print("| reader | runs | wall median | wall min | wall max | CPU median |")
    print("|---|---|---|---|---|---|")
    for name, w, c in (("before issue 15 (no field checks)", old_t, cpu_old),
                       ("validating reader + continuation", new_t, cpu_new)):
        print(f"| {name} | {args.runs} | {statistics.median(w):.3f} s | {min(w):.3f} s | {max(w):.3f} s | {c:.3f} s |")
    print(f"ratio new/before (median wall): {med_new / med_old:.2f}, (median CPU): {cpu_new / cpu_old:.2f}; "
          f"goal < {GOAL:g} s: wall {'met' if med_new < GOAL else 'NOT met'}, "
          f"CPU {'met' if cpu_new < GOAL else 'NOT met'}")
    return 0 if min(med_new, cpu_new) < GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
