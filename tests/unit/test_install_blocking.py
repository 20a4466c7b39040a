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


SG = {"pod_eni": True, "sgp_count": 1}


def test_one_fix_rule_for_install_and_the_tui():
    """checks/vpc_cni.fix_target decides for `install --fix` and the TUI's `f` alike."""
    from ambient_tui.checks.vpc_cni import enforcing_mode_fix_steps, fix_target

    strict = Check("vpc-cni", "v", FAIL, "strict", "aws eks update-addon ...", data={**SG, "managed": True})
    eks = {"aws-eks": Check("aws-eks", "a", PASS, data={"cluster": "prod", "region": "eu-west-1"})}
    target, _ = fix_target(strict, eks)
    assert target == {"managed": True, "cluster": "prod", "region": "eu-west-1"}
    steps = enforcing_mode_fix_steps(object(), **target)
    assert [s.id for s in steps] == ["fix-sg-enforcing-mode", "list-pods-to-restart"]
    assert [s.kind for s in steps] == ["fix", "fix"]
    assert "UpdateAddon prod/vpc-cni" in steps[0].command
    # Managed, but the cluster name unknown: no fix as steps, and the reason.
    assert fix_target(strict, {}) == (None, "managed add-on, but the EKS cluster name is unknown "
                                             "(aws-eks check did not pass)")
    # Without AWS access managed is unknown: the DaemonSet path, unless the EKS add-on
    # manages aws-node's fields (its next update would revert the patch).
    unknown = Check("vpc-cni", "v", FAIL, "strict", "kubectl ...", data={**SG, "managed": None, "ds_managers": []})
    assert fix_target(unknown, {})[0] == {"managed": False, "cluster": None, "region": None}
    eks_owned = Check("vpc-cni", "v", FAIL, "strict", "kubectl ...",
                      data={**SG, "managed": None, "ds_managers": ["eks", "kubectl"]})
    target, why = fix_target(eks_owned, {})
    assert target is None and "AWS_PROFILE" in why
    # A warning about network policies only, or a pass, has no fix.
    assert fix_target(Check("vpc-cni", "v", "warn", "netpol", "allow 15008", data={"pod_eni": False}), {})[0] is None
    assert fix_target(Check("vpc-cni", "v", PASS, "ok"), {})[0] is None
