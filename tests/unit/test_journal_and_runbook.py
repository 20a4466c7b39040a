"""Journal lines, redaction, corrupt-line tolerance and the runbook export."""

import json
import subprocess

import pytest

from ambient_tui.engine import Phase, Plan, Step
from ambient_tui.engine.journal import Journal, JournalError, journal_path
from ambient_tui.engine.redact import redact, redact_argv
from ambient_tui.engine.runbook import to_json, to_markdown, to_shell
from ambient_tui.engine.runner import Runner
from ambient_tui.plans.install import build_install_plan
from ambient_tui.settings import Settings

AWS_KEY = "AKIA" + "ABCDEFGHIJKLMNOP"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJlLXBhcnQ"


@pytest.mark.parametrize("text", [
    f"key {AWS_KEY} here", f"aws_secret_access_key = {AWS_SECRET}", f"AWS_SESSION_TOKEN={AWS_SECRET}",
    f"Authorization: Bearer {JWT}", f"token: {JWT}", "--token=abcdef123456",
])
def test_redaction_removes_secrets(text):
    out = redact(text)
    for secret in (AWS_KEY, AWS_SECRET, JWT, "abcdef123456"):
        assert secret not in out
    assert "REDACTED" in out


def test_redaction_keeps_ordinary_output():
    line = "NAME: istiod LAST DEPLOYED: Wed Nov 25 STATUS: deployed REVISION: 1 [ok]"
    assert redact(line) == line
    assert redact_argv(["helm", "--token", "s3cr3t-value", "list"]) == ["helm", "--token", "[REDACTED]", "list"]


@pytest.mark.asyncio
async def test_journal_records_argv_times_exit_code_and_redacted_tail(tmp_path):
    j = Journal(tmp_path / "c.jsonl")
    plan = Plan("t", [Phase("p", "p", [Step("s", "s", argv=["sh", "-c", f"echo {AWS_KEY}; echo done; exit 4"])])])
    await Runner(plan, journal=j).run()
    raw = (tmp_path / "c.jsonl").read_text()
    assert AWS_KEY not in raw
    recs = [json.loads(l) for l in raw.splitlines()]
    assert [r["type"] for r in recs] == ["plan", "step-start", "step-pid", "step-end"]
    assert recs[2]["pid"] > 1 and recs[2]["argv"] == recs[1]["argv"]  # so a restart can check it
    start, end = recs[1], recs[3]
    assert start["argv"][:2] == ["sh", "-c"]
    assert end["exit_code"] == 4 and end["state"] == "failed"
    assert end["ended"] >= end["started"]
    assert end["tail"][-1] == "done" and "REDACTED" in end["tail"][0]


def test_corrupt_lines_never_hide_steps_that_succeeded(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join([
        json.dumps({"type": "plan", "run": "r1", "steps": ["a", "b"]}),
        json.dumps({"type": "step-end", "run": "r1", "step": "a", "state": "succeeded"}),
        '{"type": "step-end", "run": "r1", "step": "b", "sta',  # torn write when the terminal dropped
        "garbage",
        json.dumps({"type": "step-start", "run": "r1", "step": "b", "state": "running"}),
    ]) + "\n")
    read = Journal.read(p)
    assert [n for n, _ in read.corrupt] == [3, 4]
    assert read.step_states() == {"a": "succeeded", "b": "running"}
    assert read.interrupted() == ["b"]


def test_unwritable_state_dir_gives_one_line_and_a_next_step(tmp_path):
    # A file where the state directory should be: unwritable even for root.
    blocker = tmp_path / "state"
    blocker.write_text("")
    j = Journal(blocker / "journal" / "c.jsonl")
    with pytest.raises(JournalError, match=r"a parent of the journal path .* is a file, not a directory; set XDG_STATE_HOME"):
        j.write({"type": "plan"})


def test_journal_path_is_per_cluster_under_xdg_state(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert journal_path("arn:aws:eks:us-west-2:1:cluster/prod") == \
        tmp_path / "ambient-tui" / "journal" / "arn_aws_eks_us-west-2_1_cluster_prod.jsonl"


def test_runbook_markdown_and_shell_are_the_exact_commands():
    plan = build_install_plan(Settings(istio_version="1.30.0", gateway=True))
    md = to_markdown(plan)
    sh_text = to_shell(plan)
    for s in plan.steps:
        assert s.command in md
        assert s.command in sh_text
    assert "no --wait" in md
    assert json.loads(to_json(plan))["meta"]["istio_version"] == "1.30.0"
    # The shell script is valid bash.
    subprocess.run(["bash", "-n"], input=sh_text, text=True, check=True)
