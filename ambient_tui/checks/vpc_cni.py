"""VPC CNI and security groups for pods: the facts, the decision, and the fix as engine steps.

Security groups for pods apply only with ENABLE_POD_ENI=true on kube-system/aws-node and at
least one SecurityGroupPolicy. Then POD_SECURITY_GROUP_ENFORCING_MODE=strict misroutes the
kubelet probes ztunnel answers from 169.254.7.127 (aws/amazon-vpc-cni-k8s#2797, istio/istio
53105): fatal without the branch-ENI probe fix (Istio 1.28.7, 1.29.3, 1.30.0+), worth a warning
with it. The VPC CNI's default for an unset POD_SECURITY_GROUP_ENFORCING_MODE is strict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ambient_tui.checks.model import FAIL, PASS, SKIP, WARN, Check
from ambient_tui.engine.plan import ApiCall, Phase, Plan, Step

CHECK_ID = "vpc-cni"
TITLE = "VPC CNI and security groups for pods"
MODE_VAR = "POD_SECURITY_GROUP_ENFORCING_MODE"
DEFAULT_MODE = "strict"
BRANCH_ENI_ANNOTATION = "vpc.amazonaws.com/pod-eni"


@dataclass
class VpcCniFacts:
    aws_node: bool
    pod_eni: bool = False
    sgp_count: int = 0
    enforcing_mode: str | None = None  # None: unset, which the VPC CNI treats as strict
    managed: bool | None = None  # None: unknown (no AWS access)
    network_policy: bool = False
    ds_managers: list[str] = field(default_factory=list)  # aws-node's field managers
    cluster: str | None = None
    region: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return (self.enforcing_mode or DEFAULT_MODE).strip().lower()


def env_of(daemonset) -> dict[str, str]:
    """Env vars of the aws-node container of a V1DaemonSet (or a dict)."""
    if isinstance(daemonset, dict):
        containers = daemonset["spec"]["template"]["spec"]["containers"]
        c = next((c for c in containers if c.get("name") == "aws-node"), containers[0])
        return {e["name"]: e.get("value") or "" for e in c.get("env") or []}
    containers = daemonset.spec.template.spec.containers
    c = next((c for c in containers if c.name == "aws-node"), containers[0])
    return {e.name: e.value or "" for e in c.env or []}


def nodeagent_network_policy(daemonset) -> bool:
    """True when the aws-eks-nodeagent container runs with --enable-network-policy=true."""
    if isinstance(daemonset, dict):
        cs = [(c.get("name"), c.get("args") or []) for c in daemonset["spec"]["template"]["spec"]["containers"]]
    else:
        cs = [(c.name, c.args or []) for c in daemonset.spec.template.spec.containers]
    return any(n == "aws-eks-nodeagent" and "--enable-network-policy=true" in args for n, args in cs)


def fix_text(facts: VpcCniFacts) -> str:
    if facts.managed:
        cfg = json.dumps({"env": {MODE_VAR: "standard"}})
        return (f"aws eks update-addon --cluster-name {facts.cluster or 'CLUSTER'} --addon-name vpc-cni "
                f"--configuration-values '{cfg}' --resolve-conflicts PRESERVE "
                "(managed add-on: not kubectl set env, which the next add-on update reverts); "
                "then restart pods with branch ENIs")
    return (f"kubectl -n kube-system set env daemonset/aws-node {MODE_VAR}=standard; "
            "then restart pods with branch ENIs")


def decide(facts: VpcCniFacts, release, version: str) -> Check:
    """The vpc-cni check from gathered facts (pure: unit-tested)."""
    if not facts.aws_node:
        return Check(CHECK_ID, TITLE, SKIP, "no daemonset kube-system/aws-node: not the Amazon VPC CNI")
    kind = {True: "EKS managed add-on", False: "self-managed", None: "managed/self-managed unknown"}[facts.managed]
    parts = [f"aws-node present ({kind})", f"ENABLE_POD_ENI={'true' if facts.pod_eni else 'false'}",
             f"SecurityGroupPolicies: {facts.sgp_count}",
             f"{MODE_VAR}={facts.enforcing_mode if facts.enforcing_mode else 'unset (strict)'}",
             f"enableNetworkPolicy={'true' if facts.network_policy else 'false'}"]
    parts += facts.notes
    status, fix = PASS, ""
    sg_active = facts.pod_eni and facts.sgp_count > 0
    if sg_active and facts.mode == "strict":
        fix = fix_text(facts)
        if release.has_branch_eni_probe_fix(version):
            status = WARN
            parts.append(f"strict mode with security groups for pods: Istio {version} routes branch-ENI "
                         "probes over the veth (AMBIENT_ENABLE_AWS_BRANCH_ENI_PROBE), so this is no "
                         "longer fatal; standard mode is still recommended")
        else:
            status = FAIL
            parts.append(f"strict mode with security groups for pods breaks ztunnel's kubelet probes on "
                         f"Istio {version} (no branch-ENI probe fix; it arrived in 1.28.7, 1.29.3, 1.30.0); "
                         "set standard mode or choose a newer Istio")
    if facts.network_policy:
        if status == PASS:
            status = WARN
        parts.append("the VPC CNI network policy agent enforces NetworkPolicies: allow TCP 15008 (HBONE) into "
                     "enrolled pods and kubelet probes from 169.254.7.127/32")
    return Check(CHECK_ID, TITLE, status, "; ".join(parts), fix,
                 data={"managed": facts.managed, "pod_eni": facts.pod_eni, "sgp_count": facts.sgp_count,
                       "enforcing_mode": facts.enforcing_mode, "network_policy": facts.network_policy,
                       "ds_managers": facts.ds_managers})


def gather(kube, cluster: str | None = None, region: str | None = None, aws: bool = False) -> VpcCniFacts:
    """Read the facts from the cluster (and EKS when `aws` and a cluster name are given)."""
    ds = kube.get_daemonset("kube-system", "aws-node")
    if ds is None:
        return VpcCniFacts(aws_node=False)
    env = env_of(ds)
    facts = VpcCniFacts(aws_node=True, pod_eni=env.get("ENABLE_POD_ENI", "false").lower() == "true",
                        enforcing_mode=env.get(MODE_VAR) or None,
                        network_policy=nodeagent_network_policy(ds), cluster=cluster, region=region,
                        ds_managers=sorted({m.get("manager", "?") for m in (
                            (ds.get("metadata") or {}).get("managedFields") or [] if isinstance(ds, dict)
                            else [])}))
    facts.sgp_count = len(kube.list_security_group_policies())
    if aws and cluster:
        from ambient_tui.aws import eks
        try:
            addon = eks.describe_vpc_cni_addon(cluster, region)
            facts.managed = addon is not None
            cfg = eks.addon_config(addon)
            if str(cfg.get("enableNetworkPolicy", "")).lower() == "true":
                facts.network_policy = True
        except eks.AwsError as e:
            facts.notes.append(f"add-on unknown: {e}")
    else:
        facts.notes.append("no AWS access: managed add-on or self-managed unknown")
    return facts


# -- the fix, as engine steps ---------------------------------------------------------------

# The field manager the EKS managed add-on applies aws-node with.
EKS_MANAGER = "eks"


def fix_target(check: Check | None, results: dict) -> tuple[dict | None, str]:
    """(arguments for enforcing_mode_fix_steps, why) when the vpc-cni check's fix can run as
    steps; (None, why not) otherwise. The one rule for the install command and the TUI.

    A managed add-on is changed with UpdateAddon (needs the EKS cluster name); a self-managed
    aws-node through the DaemonSet. When AWS cannot say which (no AWS access), the DaemonSet
    path is taken only if no EKS add-on manages aws-node's fields: patching a managed add-on's
    DaemonSet would be reverted by its next update."""
    if check is None or check.id != CHECK_ID or check.status not in (FAIL, WARN) or not check.fix:
        return None, "no enforcing-mode fix is needed"
    if not (check.data.get("pod_eni") and check.data.get("sgp_count")):
        return None, "the warning is about network policies, not the enforcing mode"
    managed = check.data.get("managed")
    if managed is None:
        if EKS_MANAGER in (check.data.get("ds_managers") or []):
            return None, ("aws-node is applied by the EKS add-on (field manager eks) but AWS cannot "
                          "be asked (no AWS access): give AWS credentials (AWS_PROFILE) so the fix "
                          "goes through UpdateAddon")
        return {"managed": False, "cluster": None, "region": None}, (
            "no AWS access and no EKS add-on manages aws-node: treated as self-managed (DaemonSet env)")
    if not managed:
        return {"managed": False, "cluster": None, "region": None}, "self-managed: DaemonSet env"
    aws = results.get("aws-eks")
    cluster = aws.data.get("cluster") if aws is not None else None
    if not cluster:
        return None, "managed add-on, but the EKS cluster name is unknown (aws-eks check did not pass)"
    return {"managed": True, "cluster": cluster, "region": aws.data.get("region")}, "managed add-on: UpdateAddon"

def _selector_matches(selector: dict | None, labels: dict | None) -> bool:
    want = (selector or {}).get("matchLabels") or {}
    labels = labels or {}
    return all(labels.get(k) == v for k, v in want.items())


def pods_needing_restart(kube) -> list[str]:
    """ns/name of pods with a branch ENI, or selected by a SecurityGroupPolicy."""
    sgps = kube.list_security_group_policies()
    by_ns: dict[str, list[dict]] = {}
    for p in sgps:
        by_ns.setdefault(p["metadata"]["namespace"], []).append(p)
    out = []
    for pod in kube.list_pods():
        meta = pod.metadata
        if (meta.annotations or {}).get(BRANCH_ENI_ANNOTATION) or any(
                _selector_matches((p.get("spec") or {}).get("podSelector"), meta.labels)
                for p in by_ns.get(meta.namespace, [])):
            out.append(f"{meta.namespace}/{meta.name}")
    return sorted(out)


# Output line of the fix step that records what it changed, so an uninstall can put it back.
# It lands in the journal's step-end `tail`; `parse_record` reads it back.
RECORD_PREFIX = "revert-record "
FIX_STEP_ID = "fix-sg-enforcing-mode"
REVERT_STEP_ID = "revert-sg-enforcing-mode"


@dataclass(frozen=True)
class EnforcingModeChange:
    """What the fix step changed: the value before (None: unset) and where it lives."""

    previous: str | None
    managed: bool
    cluster: str | None = None
    region: str | None = None
    # The add-on's configurationValues exactly as they were (managed), and aws-node's env for
    # the keys they name (JSON): --revert-cni puts both back as they were.
    addon_config: str | None = None
    ds_env: str | None = None

    @property
    def shown(self) -> str:
        return self.previous if self.previous is not None else "unset (the VPC CNI default, strict)"

    @property
    def where(self) -> str:
        return (f"EKS managed add-on vpc-cni of {self.cluster}" if self.managed
                else "self-managed DaemonSet kube-system/aws-node")


def record_lines(change: EnforcingModeChange) -> list[str]:
    data = {"var": MODE_VAR, "previous": change.previous, "managed": change.managed,
            "cluster": change.cluster, "region": change.region}
    if change.addon_config is not None:
        data["addon_config"] = change.addon_config
        data["ds_env"] = change.ds_env
    return [f"{MODE_VAR} was {change.shown} ({change.where})",
            RECORD_PREFIX + json.dumps(data, sort_keys=True)]


def parse_record(lines) -> EnforcingModeChange | None:
    """The change recorded in a fix step's output lines, or None."""
    for line in lines or ():
        if isinstance(line, str) and line.startswith(RECORD_PREFIX):
            try:
                data = json.loads(line[len(RECORD_PREFIX):])
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("var") == MODE_VAR:
                prev = data.get("previous")
                return EnforcingModeChange(None if prev is None else str(prev), bool(data.get("managed")),
                                           data.get("cluster"), data.get("region"), data.get("addon_config"),
                                           data.get("ds_env"))
    return None


def unreverted_change(records) -> EnforcingModeChange | None:
    """The change to undo from journal records in time order: the value before the first
    succeeded fix since the last succeeded revert (a second fix would record `standard`)."""
    pending: EnforcingModeChange | None = None
    for rec in records:
        if rec.get("type") != "step-end" or rec.get("state") != "succeeded":
            continue
        if rec.get("step") == FIX_STEP_ID and pending is None:
            pending = parse_record(rec.get("tail"))
        elif rec.get("step") == REVERT_STEP_ID:
            pending = None
    return pending


def _record(kube, change: "EnforcingModeChange | None") -> list[str]:
    """Into the in-cluster install record first, so any machine can revert it. Best effort:
    the journal keeps the same record, and the line says when the cluster's could not."""
    from ambient_tui.plans import install_record

    try:
        install_record.record_cni_change(kube, json.loads(record_lines(change)[1][len(RECORD_PREFIX):])
                                         if change is not None else None)
    except Exception as e:  # noqa: BLE001 - e.g. no right to write ConfigMaps in kube-system
        return [f"could not update the in-cluster record {install_record.NAMESPACE}/{install_record.NAME}: {e}"]
    return []


def _daemonset_mode(kube) -> str | None:
    ds = kube.get_daemonset("kube-system", "aws-node")
    if ds is None:
        raise RuntimeError("daemonset kube-system/aws-node is not there: not the Amazon VPC CNI")
    return env_of(ds).get(MODE_VAR) or None


def enforcing_mode_fix_steps(kube, managed: bool, cluster: str | None = None,
                             region: str | None = None) -> list[Step]:
    """Set POD_SECURITY_GROUP_ENFORCING_MODE=standard the right way, then list pods to restart.

    The set step first reads the current value and prints it as a revert record, so
    `ambient-tui uninstall --revert-cni` can restore exactly what was there."""
    if managed:
        if not cluster:
            raise ValueError("the managed add-on fix needs the EKS cluster name")
        from ambient_tui.aws import eks
        cfg = json.dumps({"env": {MODE_VAR: "standard"}})

        def update() -> list[str]:
            # What is in force is the DaemonSet's env: the add-on's configurationValues can
            # say otherwise (set outside EKS). Only the mode changes; a key whose add-on
            # value differs from what aws-node runs with is left out of the update (PRESERVE
            # keeps the running value) instead of being written back over it.
            previous = _daemonset_mode(kube)
            addon = eks.describe_vpc_cni_addon(cluster, region)
            if addon is None:
                raise RuntimeError(f"vpc-cni is not a managed add-on of {cluster}; patch the DaemonSet instead")
            before_cfg = addon.get("configurationValues") or ""
            running = env_of(kube.get_daemonset("kube-system", "aws-node"))
            cfg = eks.addon_config(addon)
            keys = sorted(set(cfg.get("env") or {}) | {MODE_VAR})  # what the add-on can roll out
            env = {k: v for k, v in (cfg.get("env") or {}).items() if k == MODE_VAR or running.get(k) == str(v)}
            dropped = sorted(set(cfg.get("env") or {}) - set(env))
            env[MODE_VAR] = "standard"
            cfg["env"] = env
            change = EnforcingModeChange(previous, True, cluster, region, addon_config=before_cfg,
                                         ds_env=json.dumps({k: running.get(k) for k in keys}, sort_keys=True))
            lines = _record(kube, change) + [eks.put_vpc_cni_config(cluster, region, cfg)]
            if dropped:
                lines.append("left to what aws-node runs with (the add-on said otherwise): " + ", ".join(
                    f"{k}={running.get(k, 'unset')}" for k in dropped))
            return record_lines(change) + lines
        set_step = Step(
            FIX_STEP_ID, f"vpc-cni add-on: {MODE_VAR}=standard (UpdateAddon)",
            api=ApiCall(f"EKS UpdateAddon {cluster}/vpc-cni configurationValues merge {cfg}", update), kind="fix",
            timeout=120)
    else:
        def patch() -> list[str]:
            previous = _daemonset_mode(kube)  # read first: --revert-cni puts it back
            noted = _record(kube, EnforcingModeChange(previous, False))
            kube.set_daemonset_env("kube-system", "aws-node", "aws-node", {MODE_VAR: "standard"})
            return (record_lines(EnforcingModeChange(previous, False)) + noted
                    + [f"patched daemonset kube-system/aws-node: {MODE_VAR}=standard"])
        set_step = Step(
            FIX_STEP_ID, f"aws-node: {MODE_VAR}=standard (DaemonSet env)",
            api=ApiCall(f"PATCH apps/v1 DaemonSet kube-system/aws-node env {MODE_VAR}=standard", patch),
            timeout=60, kind="fix")

    def restart_list() -> list[str]:
        pods = pods_needing_restart(kube)
        if not pods:
            return ["no pods with branch ENIs need a restart"]
        return [f"restart to apply standard mode: {p}" for p in pods] + [
            "e.g. kubectl -n NS rollout restart deployment/NAME for their owners"]

    list_step = Step("list-pods-to-restart", "pods with branch ENIs that need a restart",
                     api=ApiCall("LIST v1 Pods (annotation vpc.amazonaws.com/pod-eni or SecurityGroupPolicy "
                                 "podSelector)", restart_list), timeout=60, kind="fix")
    return [set_step, list_step]


def _restore_env(kube, want: dict) -> list[str]:
    """Put aws-node's env back to `want` (None: unset), after the add-on rolled its own."""
    now = env_of(kube.get_daemonset("kube-system", "aws-node"))
    sets = {k: v for k, v in want.items() if v is not None and now.get(k) != v}
    drops = [k for k, v in want.items() if v is None and k in now]
    if sets:
        kube.set_daemonset_env("kube-system", "aws-node", "aws-node", sets)
    if drops:
        body = {"spec": {"template": {"spec": {"containers": [
            {"name": "aws-node", "env": [{"name": k, "$patch": "delete"} for k in drops]}]}}}}
        kube.call("patching daemonset kube-system/aws-node", kube.apps.patch_namespaced_daemon_set,
                  "aws-node", "kube-system", body, field_manager="ambient-tui")
    after = env_of(kube.get_daemonset("kube-system", "aws-node"))
    wrong = [k for k, v in want.items() if after.get(k) != v and not (v is None and k not in after)]
    if wrong:
        raise RuntimeError("aws-node env not restored: " + ", ".join(f"{k}={after.get(k)}" for k in wrong))
    return [f"aws-node env as before: " + ", ".join(f"{k}={v if v is not None else 'unset'}"
                                                     for k, v in sorted(want.items()))]


def revert_description(change: EnforcingModeChange) -> str:
    if change.managed and change.addon_config is not None:
        return (f"EKS UpdateAddon {change.cluster}/vpc-cni configurationValues back to "
                f"{change.addon_config or '(none)'}; aws-node env back to {change.ds_env}")
    if change.managed:
        what = (f"{MODE_VAR}={change.previous}" if change.previous is not None
                else f"{MODE_VAR} removed from configurationValues")
        return f"EKS UpdateAddon {change.cluster}/vpc-cni configurationValues env {what}"
    what = (f"env {MODE_VAR}={change.previous}" if change.previous is not None
            else f"env {MODE_VAR} removed")
    return f"PATCH apps/v1 DaemonSet kube-system/aws-node {what}"


def revert_command(change: EnforcingModeChange) -> str:
    """The same revert by hand, for the leftover report."""
    if change.managed:
        return (f"aws eks update-addon --cluster-name {change.cluster} --addon-name vpc-cni "
                "--configuration-values '<current values with env."
                + (f"{MODE_VAR}={change.previous}" if change.previous is not None else f"{MODE_VAR} removed")
                + ">' --resolve-conflicts PRESERVE")
    return (f"kubectl -n kube-system set env daemonset/aws-node "
            + (f"{MODE_VAR}={change.previous}" if change.previous is not None else f"{MODE_VAR}-"))


def revert_enforcing_mode_steps(kube_factory, change: EnforcingModeChange) -> list[Step]:
    """Put POD_SECURITY_GROUP_ENFORCING_MODE back to what the fix step found (or remove it).

    `kube_factory` returns a cluster.client.KubeClient when the step runs (not when the plan
    is built), so a plan can be shown without a cluster."""
    if change.managed:
        if not change.cluster:
            raise ValueError("the recorded managed add-on change has no EKS cluster name")
        from ambient_tui.aws import eks

        def update() -> list[str]:
            if change.addon_config is None:  # recorded by an older version: the one variable
                lines = eks.restore_vpc_cni_env_var(change.cluster, change.region, MODE_VAR, change.previous)
            else:
                lines = [eks.put_vpc_cni_config_text(change.cluster, change.region, change.addon_config),
                         f"configurationValues restored exactly: {change.addon_config or '(none)'}"]
                kube = kube_factory()
                lines += _restore_env(kube, json.loads(change.ds_env or "{}"))
            return lines + _record(kube_factory(), None)
        call = ApiCall(revert_description(change), update)
    else:
        def patch() -> list[str]:
            kube = kube_factory()
            ds = kube.get_daemonset("kube-system", "aws-node")
            if ds is None:
                raise RuntimeError("daemonset kube-system/aws-node is not there any more")
            if change.previous is not None:
                kube.set_daemonset_env("kube-system", "aws-node", "aws-node", {MODE_VAR: change.previous})
            elif MODE_VAR in env_of(ds):
                # Strategic merge: env entries merge by name; $patch delete removes this one.
                body = {"spec": {"template": {"spec": {"containers": [
                    {"name": "aws-node", "env": [{"name": MODE_VAR, "$patch": "delete"}]}]}}}}
                kube.call("patching daemonset kube-system/aws-node", kube.apps.patch_namespaced_daemon_set,
                          "aws-node", "kube-system", body, field_manager="ambient-tui")
            now = _daemonset_mode(kube)
            if now != change.previous:
                raise RuntimeError(f"aws-node still has {MODE_VAR}={now or 'unset'} after the patch")
            return [f"daemonset kube-system/aws-node: {MODE_VAR} is {change.shown} again"] + _record(kube, None)
        call = ApiCall(revert_description(change), patch)
    return [Step(REVERT_STEP_ID, f"revert VPC CNI enforcing mode to {change.shown}", api=call, timeout=120,
                 note="pods with branch ENIs need a restart to pick the mode up")]


def enforcing_mode_fix_plan(kube, managed: bool, cluster: str | None = None, region: str | None = None) -> Plan:
    return Plan(title="Security groups for pods: standard enforcing mode",
                phases=[Phase("fix-vpc-cni", "VPC CNI enforcing mode",
                              enforcing_mode_fix_steps(kube, managed, cluster, region))],
                meta={"managed_addon": str(managed).lower()})
