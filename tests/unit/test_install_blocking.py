"""Which preflight failures still block `install`: a failure the plan now fixes (the vpc-cni
fix with --fix, a repair for a stuck release) does not; anything else does."""

from ambient_tui.checks.model import FAIL, PASS, Check
from ambient_tui.plans.repair import blocking
from ambient_tui.plans.repair import Repair


def rel(name, status, chart=None):
    return {"name": name, "namespace": "istio-system", "status": status, "chart": chart or name}


RESULTS = [Check("vpc-cni", "v", FAIL, "strict", "kubectl set env"),
           Check("existing-istio", "e", FAIL, "stuck releases: istiod (pending-upgrade)"),
           Check("nodes", "n", PASS)]


def ids(checks):
    return [c.id for c in checks]


def test_fixed_and_repaired_failures_do_not_block():
    releases = [rel("istio-base", "deployed", "base"), rel("istiod", "pending-upgrade")]
    repairs = [Repair("istiod", "istio-system", "pending-upgrade", 3, "rollback", 2)]
    assert ids(blocking(RESULTS, {"vpc-cni"}, repairs, releases)) == []


def test_without_the_fix_or_the_repair_they_block():
    releases = [rel("istiod", "pending-upgrade")]
    assert ids(blocking(RESULTS, set(), [], releases)) == ["vpc-cni", "existing-istio"]
    # a repair for another release does not cover istiod
    other = [Repair("ztunnel", "istio-system", "failed", 1, "retry")]
    assert ids(blocking(RESULTS, {"vpc-cni"}, other, releases + [rel("ztunnel", "failed")])) == ["existing-istio"]


def test_the_ambient_wrapper_chart_always_blocks():
    releases = [rel("istiod", "pending-upgrade"), rel("istio-ambient", "deployed", "ambient")]
    repairs = [Repair("istiod", "istio-system", "pending-upgrade", 3, "rollback", 2)]
    assert ids(blocking(RESULTS, {"vpc-cni"}, repairs, releases)) == ["existing-istio"]


class FakeCtx:
    """Stands in for CheckContext: building the steps does not touch the cluster."""

    def client(self):
        return object()


def test_fix_steps_follow_the_check_managed_or_self_managed():
    from ambient_tui.commands.install import fix_steps_for

    strict = Check("vpc-cni", "v", FAIL, "strict", "aws eks update-addon ...", data={"managed": True})
    eks = {"aws-eks": Check("aws-eks", "a", PASS, data={"cluster": "prod", "region": "eu-west-1"})}
    steps = fix_steps_for(strict, FakeCtx(), eks)
    assert [s.id for s in steps] == ["fix-sg-enforcing-mode", "list-pods-to-restart"]
    assert "UpdateAddon prod/vpc-cni" in steps[0].command
    # Without AWS access managed is unknown: the DaemonSet path, shown as such in the plan.
    unknown = Check("vpc-cni", "v", FAIL, "strict", "kubectl -n kube-system set env ...", data={"managed": None})
    assert "PATCH apps/v1 DaemonSet kube-system/aws-node" in fix_steps_for(unknown, FakeCtx(), {})[0].command
    # A warning with a fix (strict mode on a release with the probe fix) is fixable too;
    # a pass, or a warning without a fix (the network policy note), is not.
    assert fix_steps_for(Check("vpc-cni", "v", "warn", "strict", "kubectl ...", data={}), FakeCtx(), {})
    assert fix_steps_for(Check("vpc-cni", "v", "warn", "netpol", "", data={}), FakeCtx(), {}) == []
    assert fix_steps_for(Check("vpc-cni", "v", PASS, "ok"), FakeCtx(), {}) == []
