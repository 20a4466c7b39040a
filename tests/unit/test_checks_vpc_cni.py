"""VPC CNI decision logic: security groups for pods, strict mode and the branch-ENI probe fix."""

import pytest

from ambient_tui import catalog
from ambient_tui.checks import vpc_cni
from ambient_tui.checks.vpc_cni import VpcCniFacts, decide

CAT = catalog.load()


def _d(version, **kw):
    rel, full = CAT.resolve(version)
    return decide(VpcCniFacts(aws_node=True, **kw), rel, full)


def test_no_aws_node_is_skip():
    rel, v = CAT.resolve("1.31.1")
    assert decide(VpcCniFacts(aws_node=False), rel, v).status == "skip"


@pytest.mark.parametrize("version", ["1.24.6", "1.27.9", "1.28.6", "1.29.2"])
def test_strict_with_trunking_and_policies_fails_without_fix(version):
    c = _d(version, pod_eni=True, sgp_count=1, enforcing_mode="strict", managed=False)
    assert c.status == "fail"
    assert "kubectl -n kube-system set env daemonset/aws-node POD_SECURITY_GROUP_ENFORCING_MODE=standard" in c.fix


@pytest.mark.parametrize("version", ["1.28.7", "1.29.3", "1.30.0", "1.31.1"])
def test_strict_with_fix_is_warn(version):
    c = _d(version, pod_eni=True, sgp_count=2, enforcing_mode="strict", managed=True, cluster="prod")
    assert c.status == "warn"
    assert "aws eks update-addon --cluster-name prod --addon-name vpc-cni" in c.fix
    assert "set env" not in c.fix.split("(")[0]


def test_unset_mode_means_strict():
    c = _d("1.27.9", pod_eni=True, sgp_count=1, enforcing_mode=None)
    assert c.status == "fail" and "unset (strict)" in c.detail


@pytest.mark.parametrize("kw", [dict(pod_eni=False, sgp_count=3, enforcing_mode="strict"),
                                dict(pod_eni=True, sgp_count=0, enforcing_mode="strict"),
                                dict(pod_eni=True, sgp_count=1, enforcing_mode="standard")])
def test_strict_alone_or_standard_passes(kw):
    assert _d("1.27.9", **kw).status == "pass"


def test_network_policy_agent_warns_with_ports():
    c = _d("1.31.1", network_policy=True)
    assert c.status == "warn" and "15008" in c.detail and "169.254.7.127/32" in c.detail


def test_env_and_nodeagent_from_manifest():
    from ambient_tui.sandbox.control_plane import aws_node_manifest
    m = aws_node_manifest("c", "us-west-2")
    env = vpc_cni.env_of(m)
    assert env["ENABLE_POD_ENI"] == "false" and env["POD_SECURITY_GROUP_ENFORCING_MODE"] == "standard"
    assert vpc_cni.nodeagent_network_policy(m) is False
    m["spec"]["template"]["spec"]["containers"][1]["args"] = ["--enable-network-policy=true"]
    assert vpc_cni.nodeagent_network_policy(m) is True


def test_selector_match():
    assert vpc_cni._selector_matches({"matchLabels": {"app": "a"}}, {"app": "a", "x": "y"})
    assert not vpc_cni._selector_matches({"matchLabels": {"app": "a"}}, {"app": "b"})
    assert vpc_cni._selector_matches({}, {"app": "b"})  # empty selector: every pod in the namespace


def test_self_managed_fix_is_daemonset_patch():
    class Kube:
        calls = []

        def set_daemonset_env(self, *a):
            self.calls.append(a)

        def get_daemonset(self, ns, name):
            return {"spec": {"template": {"spec": {"containers": [{"name": "aws-node", "env": [
                {"name": "POD_SECURITY_GROUP_ENFORCING_MODE", "value": "strict"}]}]}}}}

        def list_security_group_policies(self):
            return []

        def list_pods(self):
            return []

    kube = Kube()
    steps = vpc_cni.enforcing_mode_fix_steps(kube, managed=False)
    assert steps[0].api.describe.startswith("PATCH apps/v1 DaemonSet kube-system/aws-node")
    out = steps[0].api.func()
    # the previous value is recorded first, so the uninstall's --revert-cni can put it back
    assert vpc_cni.parse_record(out) == vpc_cni.EnforcingModeChange("strict", False)
    assert kube.calls == [("kube-system", "aws-node", "aws-node", {"POD_SECURITY_GROUP_ENFORCING_MODE": "standard"})]
    assert steps[1].api.func() == ["no pods with branch ENIs need a restart"]


def test_managed_fix_is_update_addon():
    steps = vpc_cni.enforcing_mode_fix_steps(object(), managed=True, cluster="prod", region="eu-west-1")
    assert steps[0].api.describe.startswith("EKS UpdateAddon prod/vpc-cni configurationValues")
    with pytest.raises(ValueError):
        vpc_cni.enforcing_mode_fix_steps(object(), managed=True)
