"""A journal that survives anything (issue 15, item 6): malformed lines, a truncated last line,
a misshapen state path, a full disk, dry runs and repeated interruptions."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap

import pytest

from ambient_tui.engine import Phase, Plan, Step, StepState
from ambient_tui.engine.journal import Journal, JournalError, JournalRead, clean_record
from ambient_tui.engine.runner import Runner
from ambient_tui.plans import repair

MALFORMED = [
    '{"type":"step-start"}',                                    # no step id
    '{"type":"step-end","step":"a","state":"exploded"}',        # unknown state
    '{"type":"step-end","step":["a","b"],"state":"succeeded"}',  # a list as step id
    '{"type":"step-end","step":{"x":1},"state":"succeeded"}',
    '{"type":"plan","run":"r9","ts":"yesterday","steps":["a"]}',  # a string ts
    '{"type":"step-end","step":"a","state":"succeeded","ts":true}',
    '{"type":"plan","run":7,"steps":["a"]}',
    '{"type":"plan","run":"r9","steps":"a,b"}',
    '{"type":"plan","run":"r9","steps":[1,2]}',
    '{"type":"plan","run":"r9","meta":[]}',
    '{"type":"step-end","step":"a","state":"succeeded","tail":"one line"}',
    '{"type":"step-end","step":"a","state":"succeeded","exit_code":"0"}',
    '{"type":"step-start","step":"a","argv":"helm install"}',
    '{"type":"step-skip","step":"a","state":"succeeded","from_run":["r0"]}',
    '{"type":null}', '{"type":""}', '{"type":3}', '{}',
    '[1,2,3]', '"a string"', '42', 'null', 'true',
    '{"ts": 1, "run": "r1", "type": "plan", "ste',               # cut off
    "\x00\x01\x02\xff garbage", "[" * 100000,                  # random bytes, absurd nesting
]


def _read(tmp_path, lines: list[str]) -> JournalRead:
    p = tmp_path / "j.jsonl"
    p.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")
    return Journal.read(p)


def _exercise(read: JournalRead) -> None:
    """Every consumer of journal records, on what was read: none may raise."""
    read.step_states()
    read.last_run()
    read.interrupted()
    read.damage_report()
    repair.interrupted_steps(read)
    repair.find_repairs(read, [{"name": "istiod", "namespace": "istio-system", "status": "pending-install",
                                "revision": 2}], {})
    plan = Plan("t", [Phase("p", "p", [Step("a", "a", argv=["true"]), Step("b", "b", argv=["true"])])])
    Runner(plan).resume_from(read)
    from ambient_tui.checks.vpc_cni import unreverted_change
    from ambient_tui.plans.uninstall import journal_records
    from ambient_tui.plans.uninstall_session import last_uninstall_run

    unreverted_change(read.records)
    last_uninstall_run(read.records, JournalRead).step_states()
    sorted(read.records, key=lambda r: r.get("ts") or 0)
    journal_records([])


@pytest.mark.parametrize("line", MALFORMED)
def test_each_malformed_line_is_counted_and_never_hides_its_neighbours(tmp_path, line):
    good_before = json.dumps({"ts": 1.0, "run": "r1", "type": "plan", "title": "Install", "steps": ["a", "b"]})
    good_after = json.dumps({"ts": 2.0, "run": "r1", "type": "step-end", "step": "a", "state": "succeeded"})
    read = _read(tmp_path, [good_before, line, good_after])
    assert [n for n, _ in read.corrupt] == [2], read.corrupt
    assert read.last_run() == "r1" and read.step_states() == {"a": "succeeded"}
    report = read.damage_report()
    assert len(report) == 1 and report[0].startswith("journal line 2 is damaged (") \
        and report[0].endswith(") and was skipped")
    _exercise(read)


def test_seeded_random_json_and_bytes_never_raise(tmp_path):
    rng = random.Random(15)
    keys = ["type", "step", "state", "run", "ts", "steps", "tail", "argv", "exit_code", "meta", "dry_run",
            "started", "ended", "message", "title", "from_run"]
    types_ = ["plan", "step-start", "step-end", "step-skip", "lock", ""]

    def value(depth=0):
        makers = [lambda: None, lambda: True, lambda: rng.randint(-5, 5), lambda: rng.random() * 1e10,
                  lambda: rng.choice(types_ + [st.value for st in StepState]),
                  lambda: "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(6)))]
        if depth < 3:
            makers += [lambda: [value(depth + 1) for _ in range(rng.randrange(3))],
                       lambda: {rng.choice(keys): value(depth + 1) for _ in range(rng.randrange(3))}]
        return rng.choice(makers)()

    for round_ in range(40):
        lines = []
        for _ in range(60):
            pick = rng.random()
            if pick < 0.5:
                lines.append(json.dumps({rng.choice(keys): value() for _ in range(rng.randrange(6))}))
            elif pick < 0.8:
                rec = {"ts": rng.random(), "run": rng.choice(["r1", "r2"]), "type": rng.choice(types_[:4]),
                       "step": rng.choice(["a", "b", "c"]), "state": value()}
                lines.append(json.dumps(rec))
            elif pick < 0.9:
                lines.append(json.dumps(value()))
            else:
                lines.append(bytes(rng.randrange(256) for _ in range(rng.randrange(80))).decode("latin-1"))
        read = _read(tmp_path, lines)
        for rec in read.records:
            assert isinstance(clean_record(rec), dict)  # what was kept is clean
        _exercise(read)


def test_damaged_lines_are_reported_once_and_counted(tmp_path):
    read = _read(tmp_path, ["garbage"] * 5 + [json.dumps({"type": "plan", "run": "r1"})])
    assert len(read.corrupt) == 5
    assert read.damage_report() == [
        "journal line 1 is damaged (cut off or not JSON) and was skipped",
        "journal line 2 is damaged (cut off or not JSON) and was skipped",
        "journal line 3 is damaged (cut off or not JSON) and was skipped",
        "and 2 more damaged journal line(s) were skipped"]


def test_truncated_last_line_is_closed_off_and_never_swallows_the_next_plan(tmp_path):
    p = tmp_path / "j.jsonl"
    first = Journal(p, run_id="r1")
    first.write({"type": "plan", "title": "Install", "steps": ["a"]})
    first.close()
    with open(p, "a") as fh:  # the app died mid-write
        fh.write('{"ts": 3, "run": "r1", "type": "step-st')
    second = Journal(p, run_id="r2")
    second.write({"type": "plan", "title": "Install", "steps": ["a"]})
    second.write({"type": "step-start", "step": "a", "state": "running"})
    second.close()
    raw = p.read_bytes()
    assert raw.endswith(b"\n") and b'"type": "step-st\n' in raw
    read = Journal.read(p)
    assert read.last_run() == "r2" and read.interrupted() == ["a"]
    assert [n for n, _ in read.corrupt] == [2]


def test_a_record_glued_to_a_cut_off_one_is_still_read(tmp_path):
    """Journals written before the close-off: the next record was appended to the cut line."""
    glued = '{"ts": 3, "run": "r1", "type": "step-st' + json.dumps(
        {"ts": 4, "run": "r2", "type": "plan", "title": "Install", "steps": ["a"]})
    read = _read(tmp_path, [glued])
    assert read.last_run() == "r2" and len(read.corrupt) == 1


def test_records_are_fsynced_whole_lines(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    j = Journal(tmp_path / "j.jsonl")
    j.write({"type": "plan"})
    j.write({"type": "plan"})
    j.close()
    assert len(synced) == 2
    assert all(json.loads(l) for l in (tmp_path / "j.jsonl").read_text().splitlines())


@pytest.mark.parametrize("shape, expect", [
    ("file-as-state-dir", "is a file, not a directory"),
    ("dir-as-journal", "is a directory, not a file"),
])
def test_misshapen_state_path_is_one_line_with_a_next_step(tmp_path, shape, expect):
    state = tmp_path / "state"
    path = state / "journal" / "c.jsonl"
    if shape == "file-as-state-dir":
        state.write_text("")
    else:
        path.mkdir(parents=True)
    read = Journal.read(path)  # reading does not raise either
    assert read.records == [] and expect in read.error
    with pytest.raises(JournalError) as e:
        Journal(path).check()
    msg = str(e.value)
    assert expect in msg and "set XDG_STATE_HOME" in msg and "\n" not in msg


@pytest.mark.asyncio
async def test_unwritable_journal_stops_before_the_first_change(tmp_path):
    state = tmp_path / "state"
    state.write_text("")
    marker = tmp_path / "ran"
    plan = Plan("t", [Phase("p", "p", [Step("a", "a", argv=["touch", str(marker)])])])
    runner = Runner(plan, journal=Journal(state / "j.jsonl"))
    assert await runner.run() is False
    assert not marker.exists() and plan.step("a").state is StepState.PENDING
    assert "is a file, not a directory" in str(runner.journal_error)


@pytest.mark.asyncio
async def test_dry_run_never_counts_as_the_last_run(tmp_path):
    p = tmp_path / "j.jsonl"
    plan = lambda: Plan("Install", [Phase("p", "p", [Step("a", "a", argv=["true"]),  # noqa: E731
                                                     Step("b", "b", argv=["true"])])])
    real = Journal(p, run_id="real")
    real.plan(plan())
    real.write({"type": "step-end", "step": "a", "state": "succeeded"})
    real.write({"type": "step-start", "step": "b", "state": "running"})  # killed here
    real.close()
    dry = Runner(plan(), journal=Journal(p, run_id="dry"), dry_run=True)
    await dry.run()
    dry.journal.close()
    read = Journal.read(p)
    assert "dry" in read.dry_runs()
    assert read.last_run() == "real"
    assert [s.step for s in repair.interrupted_steps(read)] == ["b"]
    assert read.step_states() == {"a": "succeeded", "b": "running"}  # dry skips are not "done"


@pytest.mark.asyncio
async def test_third_run_does_not_rerun_what_run_one_finished(tmp_path):
    """Run 1 finishes base and is cut during istiod; run 2 continues and is cut during istiod
    again; run 3 continues run 2 and must not run base again."""
    p = tmp_path / "j.jsonl"
    log = tmp_path / "ran.log"

    def plan():
        return Plan("Install", [Phase("p", "p", [
            Step("helm-istio-base", "base", argv=["sh", "-c", f"echo base >> {log}"]),
            Step("helm-istiod", "istiod", argv=["sh", "-c", f"echo istiod >> {log}; sleep 30"])])])

    async def interrupted_run(run_id: str):
        import asyncio

        previous = Journal.read(p)
        runner = Runner(plan(), journal=Journal(p, run_id=run_id))
        last = repair.interrupted_steps(previous)
        if last:
            runner.resume_from(previous.of_run(last[0].run))
        task = asyncio.ensure_future(runner.run())
        while not (log.exists() and log.read_text().count("istiod") > run_id.count("x")):
            await asyncio.sleep(0.05)
        runner.interrupt("interrupted by SIGHUP")
        await task
        runner.journal.close()

    await interrupted_run("r1")
    await interrupted_run("r2x")
    previous = Journal.read(p)
    last = repair.interrupted_steps(previous)
    assert [(s.run, s.step) for s in last] == [("r2x", "helm-istiod")]
    runner = Runner(plan(), journal=Journal(p, run_id="r3"))
    assert runner.resume_from(previous.of_run(last[0].run)) == ["helm-istio-base"]
    assert log.read_text().split() == ["base", "istiod", "istiod"]  # base ran once, in run 1
    carried = [r for r in previous.records if r.get("run") == "r2x" and r["type"] == "step-skip"]
    assert carried and carried[0]["from_run"] == "r1" and carried[0]["state"] == "succeeded"


CHILD = textwrap.dedent("""
    import asyncio, json, os, sys
    from ambient_tui.engine import Phase, Plan, Step
    from ambient_tui.engine.journal import Journal, JournalError
    from ambient_tui.engine.runner import Runner

    d, free = sys.argv[1], int(sys.argv[2])
    path = os.path.join(d, "j.jsonl")
    # Fill the tmpfs, then free `free` bytes: the disk is (nearly) full for real.
    fd = os.open(os.path.join(d, "filler"), os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 1024)
    except OSError:
        os.close(fd)
    size = os.path.getsize(os.path.join(d, "filler"))
    os.truncate(os.path.join(d, "filler"), max(0, size - free))
    out = {}
    try:
        Journal(path).check()
        out["check"] = "ok"
    except JournalError as e:
        out["check"] = str(e)
    echo = "for i in $(seq 40); do echo output-line-$i-of-a-long-helm-step-with-plenty-of-words; done"
    steps = [Step(f"s{i}", f"s{i}", argv=["sh", "-c", echo + f"; touch {d}/ran-s{i} 2>/dev/null; true"])
             for i in range(8)]
    runner = Runner(Plan("t", [Phase("p", "p", steps)]), journal=Journal(path))
    out["ok"] = asyncio.run(runner.run())
    runner.journal.close()
    out["error"] = str(runner.journal_error or "")
    out["states"] = {s.id: s.state.value for s in steps}
    print(json.dumps(out))
""")


def _in_small_tmpfs(tmp_path, free: int) -> dict:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.fail("needs root and unshare(1) to mount a small tmpfs in a private mount namespace")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    cmd = (f"mount -t tmpfs -o size=64k tmpfs {mnt} && {sys.executable} {script} {mnt} {free}; rc=$?; "
           f"cp {mnt}/j.jsonl {tmp_path}/j.jsonl 2>/dev/null; exit $rc")
    proc = subprocess.run(["unshare", "--mount", "--", "sh", "-c", cmd], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": root})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_full_disk_real_tmpfs_stops_before_the_first_change(tmp_path):
    out = _in_small_tmpfs(tmp_path, free=0)
    assert "the disk holding the journal" in out["check"] and "is full" in out["check"]
    assert out["ok"] is False and "is full" in out["error"]
    assert set(out["states"].values()) == {"pending"}  # nothing ran


def test_full_disk_mid_run_real_tmpfs_stops_at_a_step_boundary_nothing_half_written(tmp_path):
    out = _in_small_tmpfs(tmp_path, free=8 * 1024)
    assert out["ok"] is False and "is full" in out["error"], out
    states = list(out["states"].values())
    assert "succeeded" in states and states[-1] == "pending", states  # stopped part way
    # No step after the one the journal could not record was started.
    first_pending = states.index("pending")
    assert all(s == "pending" for s in states[first_pending:])
    raw = (tmp_path / "j.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    read = Journal.read(tmp_path / "j.jsonl")
    assert read.corrupt == [] and read.records[0]["type"] == "plan"


@pytest.mark.asyncio
async def test_a_new_run_tries_the_journal_again(tmp_path):
    """After a journal error the TUI's next `r` must not stay stopped for ever."""
    blocker = tmp_path / "state"
    blocker.write_text("")
    plan = Plan("t", [Phase("p", "p", [Step("a", "a", argv=["true"])])])
    runner = Runner(plan, journal=Journal(blocker / "j.jsonl"))
    assert await runner.run() is False and runner.journal_error is not None
    blocker.unlink()  # the person fixed the state directory
    assert await runner.run() is True
    assert runner.journal_error is None and plan.step("a").state is StepState.SUCCEEDED
    runner.journal.close()
    assert [r["type"] for r in Journal.read(blocker / "j.jsonl").records] == ["plan", "step-start", "step-pid", "step-end"]
