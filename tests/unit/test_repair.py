"""Repair after a dropped terminal: interrupted steps from the journal, stuck releases, steps."""

from ambient_tui.engine.journal import Journal, JournalRead
from ambient_tui.plans import repair

ISTIOD_ARGV = ["helm", "upgrade", "--install", "istiod", "/charts/istiod", "--namespace", "istio-system",
               "--wait", "--timeout", "10m"]


def journal(*records) -> JournalRead:
    return JournalRead(records=[dict(r) for r in records])


def run_records(run, istiod_end=None, dry_run=False):
    out = [{"type": "plan", "run": run, "steps": ["helm-istio-base", "helm-istiod"]},
           {"type": "step-start", "run": run, "step": "helm-istio-base", "state": "running",
            "argv": ISTIOD_ARGV[:3] + ["istio-base"], "dry_run": dry_run},
           {"type": "step-end", "run": run, "step": "helm-istio-base", "state": "succeeded"},
           {"type": "step-start", "run": run, "step": "helm-istiod", "state": "running",
            "argv": ISTIOD_ARGV, "dry_run": dry_run}]
    if istiod_end:
        out.append({"type": "step-end", "run": run, "step": "helm-istiod", **istiod_end})
    return out


def test_killed_app_leaves_a_step_without_end_in_the_last_run_only():
    j = journal(*run_records("old"), *run_records("new", {"state": "succeeded"}))
    assert repair.interrupted_steps(j) == []  # the old run's loose end was finished later
    j = journal(*run_records("old", {"state": "succeeded"}), *run_records("new"))
    [s] = repair.interrupted_steps(j)
    assert (s.step, s.run, s.state) == ("helm-istiod", "new", "running")
    assert "never ended" in s.describe()


def test_a_caught_signal_shows_as_cancelled_with_its_reason():
    j = journal(*run_records("r", {"state": "cancelled", "message": "interrupted by SIGHUP"}))
    [s] = repair.interrupted_steps(j)
    assert s.state == "cancelled" and "interrupted by SIGHUP" in s.describe()


def test_dry_runs_are_not_interruptions():
    assert repair.interrupted_steps(journal(*run_records("r", dry_run=True))) == []
    assert repair.interrupted_steps(JournalRead()) == []


def rel(name, status, revision):
    return {"name": name, "namespace": "istio-system", "status": status, "revision": str(revision),
            "chart": name}


def test_pending_upgrade_rolls_back_to_the_deployed_revision():
    # Recorded shape of `helm history istiod -o json` after a killed upgrade (helm 3.22).
    hist = [{"revision": 1, "status": "superseded", "description": 'Release "istiod" failed: context canceled'},
            {"revision": 2, "status": "deployed", "description": "Upgrade complete"},
            {"revision": 3, "status": "pending-upgrade", "description": "Preparing upgrade"}]
    j = journal(*run_records("r"))
    [r] = repair.find_repairs(j, [rel("istiod", "pending-upgrade", 3), rel("ztunnel", "deployed", 1)],
                              {("istio-system", "istiod"): hist})
    assert (r.action, r.to_revision, r.step) == ("rollback", 2, "helm-istiod")
    [step] = repair.repair_steps([r], "ctx")
    assert step.argv == ["helm", "rollback", "istiod", "2", "--namespace", "istio-system", "--kube-context", "ctx"]
    assert "roll back to revision 2" in r.describe() and "helm-istiod" in r.describe()


def test_rollback_skips_a_superseded_revision_that_had_failed():
    hist = [{"revision": 1, "status": "superseded", "description": "Install complete"},
            {"revision": 2, "status": "superseded", "description": 'Upgrade "istiod" failed: x'},
            {"revision": 3, "status": "pending-upgrade"}]
    assert repair.rollback_target(hist, 3) == 1


def test_pending_install_with_nothing_to_roll_back_to_is_uninstalled():
    [r] = repair.find_repairs(None, [rel("istiod", "pending-install", 1)],
                              {("istio-system", "istiod"): [{"revision": 1, "status": "pending-install"}]})
    assert r.action == "uninstall" and r.step is None
    [step] = repair.repair_steps([r])
    assert step.argv[:5] == ["helm", "uninstall", "istiod", "--namespace", "istio-system"]
    assert [s.id for s in repair.repair_phase([r]).steps] == ["repair-istiod"]


def test_failed_release_needs_no_step_and_deployed_ones_no_repair():
    repairs = repair.find_repairs(None, [rel("istiod", "failed", 1), rel("istio-base", "deployed", 1)], {})
    assert [(r.release, r.action) for r in repairs] == [("istiod", "retry")]
    assert repair.repair_steps(repairs) == [] and repair.repair_phase(repairs) is None


def test_journal_written_by_the_engine_reads_back_as_interrupted(tmp_path):
    from ambient_tui.engine.plan import Phase, Plan, Step

    j = Journal(tmp_path / "c.jsonl", run_id="run-1")
    step = Step("helm-istiod", "istiod", argv=ISTIOD_ARGV)
    j.plan(Plan("install", [Phase("p", "P", [step])]))
    j.step_start(step)
    j.close()  # the process died here
    [s] = repair.interrupted_steps(Journal.read(tmp_path / "c.jsonl"))
    assert s.step == "helm-istiod" and s.argv[3] == "istiod"


def test_preflight_advice_and_the_install_repair_follow_one_rule():
    """A first install left pending has no revision to roll back to: `helm rollback` would fail
    ("release has no 0 version"), so the advice is what the repair step runs: uninstall, retry."""
    from ambient_tui.plans.repair import UNINSTALL, ROLLBACK, repair_for, repair_steps

    first = repair_for({"name": "istiod", "namespace": "istio-system", "status": "pending-install",
                        "revision": 1}, [{"revision": 1, "status": "pending-install"}])
    assert first.action == UNINSTALL
    assert first.advice() == ("helm uninstall istiod --namespace istio-system --wait --timeout 5m, "
                              "then run the install again")
    assert repair_steps([first], "prod")[0].argv == first.argv("prod")
    upgrade = repair_for({"name": "istiod", "namespace": "istio-system", "status": "pending-upgrade",
                          "revision": 3}, [{"revision": 1, "status": "superseded"},
                                           {"revision": 2, "status": "deployed"},
                                           {"revision": 3, "status": "pending-upgrade"}])
    assert upgrade.action == ROLLBACK and upgrade.advice().startswith("helm rollback istiod 2 --namespace istio-system")
    assert repair_for({"name": "x", "namespace": "n", "status": "deployed", "revision": 1}, []) is None
