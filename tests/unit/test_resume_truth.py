"""plans/resume.py: a step the journal remembers as finished is skipped only where the cluster
still shows its effect; an uninstall ends every install run before it."""

from ambient_tui.engine import Phase, Plan, Step, StepState
from ambient_tui.engine.redact import redact_argv
from ambient_tui.plans import resume
from ambient_tui.plans.resume import ClusterState

BASE = ["helm", "upgrade", "--install", "istio-base", "/charts/base", "--namespace", "istio-system"]
GW = ["kubectl", "apply", "-f", "/gw.yaml"]
ENROLL = ["kubectl", "label", "namespace", "apps", "istio.io/dataplane-mode=ambient", "--overwrite"]


def plan() -> Plan:
    return Plan("Install", [Phase("crds", "CRDs", [Step("helm-istio-base", "base", argv=list(BASE)),
                                                   Step("gateway-api-crds", "gw", argv=list(GW))]),
                            Phase("enroll", "E", [Step("enroll-apps", "apps", argv=list(ENROLL))]),
                            Phase("verify", "V", [Step("verify-istiod", "v", argv=["kubectl", "rollout"])])])


def ran(run, step, argv, state="succeeded", tail=()):
    return [{"type": "step-start", "run": run, "step": step, "argv": redact_argv(argv), "dry_run": False},
            {"type": "step-end", "run": run, "step": step, "state": state, "tail": list(tail)}]


RECORDS = (ran("r1", "helm-istio-base", BASE, tail=["NAME: istio-base", "REVISION: 1", "DESCRIPTION: ok"])
           + ran("r1", "gateway-api-crds", GW) + ran("r1", "enroll-apps", ENROLL)
           + ran("r1", "verify-istiod", ["kubectl", "rollout"]))
HEALTHY = ClusterState(
    releases={"istio-base": {"name": "istio-base", "status": "deployed", "revision": "1"}},
    crds=set(resume.GATEWAY_API_CRDS), namespace_labels={"apps": {"istio.io/dataplane-mode": "ambient"}})


def by_step(decisions):
    return {d.step: d for d in decisions}


def test_every_effect_still_there_is_skipped_and_checks_run_again():
    d = by_step(resume.decide(plan().steps, RECORDS, HEALTHY))
    assert d["helm-istio-base"].skip and "deployed at revision 1" in d["helm-istio-base"].reason
    assert d["gateway-api-crds"].skip and d["enroll-apps"].skip
    assert not d["verify-istiod"].skip  # a check changes nothing: it always runs again


def test_a_cluster_that_lost_its_state_runs_everything_again_and_says_why():
    d = by_step(resume.decide(plan().steps, RECORDS, ClusterState()))
    assert not any(x.skip for x in d.values())
    assert d["helm-istio-base"].reason == "release istio-base is not in the cluster any more"
    assert "Gateway API CRDs missing" in d["gateway-api-crds"].reason
    assert d["enroll-apps"].reason == "namespace apps is not in the cluster"


def test_a_release_that_changed_or_is_not_deployed_runs_again():
    moved = ClusterState(releases={"istio-base": {"status": "deployed", "revision": "3"}})
    assert by_step(resume.decide(plan().steps, RECORDS, moved))["helm-istio-base"].reason == \
        "release istio-base is at revision 3, the journal recorded 1"
    failed = ClusterState(releases={"istio-base": {"status": "failed", "revision": "1"}})
    assert by_step(resume.decide(plan().steps, RECORDS, failed))["helm-istio-base"].reason == \
        "release istio-base is failed"
    unlabelled = ClusterState(namespace_labels={"apps": {}})
    assert "no longer has istio.io/dataplane-mode=ambient" in \
        by_step(resume.decide(plan().steps, RECORDS, unlabelled))["enroll-apps"].reason


def test_an_uninstall_record_ends_the_runs_before_it():
    after = RECORDS + [{"type": "uninstall", "run": "u1", "ok": True}]
    assert resume.decide(plan().steps, after, HEALTHY) == []  # nothing remembered as done
    again = after + ran("r2", "helm-istio-base", BASE, tail=["REVISION: 1"])
    assert [d.step for d in resume.decide(plan().steps, again, HEALTHY)] == ["helm-istio-base"]


def test_a_changed_command_failed_end_or_dry_run_is_not_remembered():
    p = plan()
    p.step("helm-istio-base").argv += ["--values", "/other.yaml"]
    d = by_step(resume.decide(p.steps, RECORDS, HEALTHY))
    assert not d["helm-istio-base"].skip and "command changed" in d["helm-istio-base"].reason
    later_fail = RECORDS + ran("r2", "gateway-api-crds", GW, state="failed")
    assert "gateway-api-crds" not in by_step(resume.decide(plan().steps, later_fail, HEALTHY))
    dry = [{"type": "step-start", "run": "d", "step": "enroll-apps", "dry_run": True},
           {"type": "step-end", "run": "d", "step": "enroll-apps", "state": "skipped"}]
    assert resume.decide(plan().steps, dry, HEALTHY) == []


def test_only_the_continued_run_counts_when_a_run_is_given_and_apply_marks_skips_done():
    p = plan()
    decisions = resume.decide(p.steps, RECORDS, HEALTHY, run="other-run")
    assert decisions == []
    decisions = resume.decide(p.steps, RECORDS, HEALTHY, run="r1")
    assert resume.apply(p, decisions) == ["helm-istio-base", "gateway-api-crds", "enroll-apps"]
    assert p.step("helm-istio-base").state is StepState.SUCCEEDED
    assert p.step("verify-istiod").state is StepState.PENDING


def test_a_continuation_that_skipped_a_step_still_remembers_it_for_the_next_one():
    p = plan()
    first = resume.decide(p.steps, RECORDS, HEALTHY, run="r1")

    class Rec:
        records: list = []

        def write(self, r):
            self.records.append({**r, "run": "r2"})
    j = Rec()
    resume.journal_decisions(j, first)  # run r2 continued r1, then was interrupted itself
    d = by_step(resume.decide(plan().steps, RECORDS + j.records, HEALTHY, run="r2"))
    assert d["helm-istio-base"].skip and d["gateway-api-crds"].skip  # not forgotten
    moved = ClusterState(releases={"istio-base": {"status": "deployed", "revision": "2"}})
    assert "journal recorded 1" in by_step(
        resume.decide(plan().steps, RECORDS + j.records, moved, run="r2"))["helm-istio-base"].reason


def test_pinning_the_context_or_kubeconfig_is_not_a_changed_command():
    p = plan()
    p.step("helm-istio-base").argv += ["--kube-context", "prod", "--kubeconfig=/k"]
    assert by_step(resume.decide(p.steps, RECORDS, HEALTHY))["helm-istio-base"].skip


def test_an_upgrade_that_only_carries_values_through_is_the_same_step():
    """Run 1 installed istio-base; the restart plans it as an upgrade that keeps the release's
    values (plans/install_session.py adds --reset-then-reuse-values) and pins the target. It
    still does what run 1 did, so the deployed release is not installed again; a changed --set
    is a different step."""
    again = plan()
    again.step("helm-istio-base").argv = BASE + ["--reset-then-reuse-values", "--kubeconfig", "/p.kubeconfig",
                                                 "--kube-context", "prod"]
    d = by_step(resume.decide(again.steps, RECORDS, HEALTHY))
    assert d["helm-istio-base"].skip
    again.step("helm-istio-base").argv = BASE + ["--reset-then-reuse-values", "--set", "profile=ambient"]
    assert not by_step(resume.decide(again.steps, RECORDS, HEALTHY))["helm-istio-base"].skip
