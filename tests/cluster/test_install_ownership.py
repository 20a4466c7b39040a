"""Ownership before change, on the real control plane with the built helm, charts and Gateway API
CRDs: foreign Gateway API CRDs are left byte for byte (install and uninstall --purge-crds);
older ones are upgraded in their own channel only with --upgrade-gateway-api; an existing
istiod keeps the user's values; a sidecar-mode istiod is named and refused; the TUI (Pilot)
and `install --dry-run` build the same plan from the same cluster; an uninstall from a machine
without a journal removes what the tool installed (its in-cluster record and labels) and keeps
the rest; `install --fix` then `uninstall --revert-cni` (no journal) restores aws-node's env and
the add-on's configurationValues exactly (the EKS add-on is the sandbox's moto front server).

Every test starts from and leaves a cluster without Istio or Gateway API CRDs (clean_slate).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from istio_cleanup import clean_cluster, sh  # same folder

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1500)]

ROOT = Path(__file__).parents[2]
MODE = "POD_SECURITY_GROUP_ENFORCING_MODE"
FOREIGN = "other-gateway-controller"
GW_SUFFIXES = (".gateway.networking.k8s.io", ".gateway.networking.x-k8s.io")


@pytest.fixture
def env(admin_env, tmp_path):
    return {**admin_env, "XDG_STATE_HOME": str(tmp_path / "state")}


@pytest.fixture(autouse=True)
def clean_slate(admin_env, control_plane):
    clean_cluster(admin_env)
    yield
    clean_cluster(admin_env)


def cli(env, *args, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ambient_tui.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL)


def install_args(tools, kubeconfig, *extra) -> list[str]:
    return ["install", "--yes", "--istio-version", "1.31.0", "--charts", str(tools.charts), "--kubeconfig",
            str(kubeconfig), "--gateway-api-file", str(Path(tools.gateway_api) / "experimental-install.yaml"),
            *extra]


def gw_crds(env) -> dict[str, dict]:
    """name -> the CRD's metadata as the API server has it."""
    items = json.loads(sh(env, "kubectl", "get", "crd", "-o", "json").stdout)["items"]
    return {c["metadata"]["name"]: c["metadata"] for c in items if c["metadata"]["name"].endswith(GW_SUFFIXES)}


def snapshot(env) -> dict[str, tuple]:
    return {n: (m["resourceVersion"], m["uid"], json.dumps(m.get("labels"), sort_keys=True),
                json.dumps(m.get("annotations"), sort_keys=True)) for n, m in gw_crds(env).items()}


def apply_foreign(env, path: Path) -> None:
    sh(env, "kubectl", "apply", "--server-side", f"--field-manager={FOREIGN}", "-f", str(path))
    sh(env, "kubectl", "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


def older_standard(tools, tmp_path) -> Path:
    """The built standard channel, annotated as v1.2.0 (only v1.5.1 is built on loopback)."""
    text = (Path(tools.gateway_api) / "standard-install.yaml").read_text()
    assert "gateway.networking.k8s.io/bundle-version: v1.5.1" in text
    f = tmp_path / "standard-v1.2.0.yaml"
    f.write_text(text.replace("gateway.networking.k8s.io/bundle-version: v1.5.1",
                              "gateway.networking.k8s.io/bundle-version: v1.2.0"))
    return f


def record(env) -> dict:
    p = sh(env, "kubectl", "get", "configmap", "ambient-tui-install", "-n", "kube-system", "-o", "json", check=False)
    if p.returncode != 0:
        return {}
    return {k: json.loads(v) for k, v in (json.loads(p.stdout).get("data") or {}).items()}


def releases(env) -> dict[str, str]:
    return {r["name"]: r["status"] for r in json.loads(sh(env, "helm", "list", "-A", "-a", "-o", "json").stdout or "[]")}


# -- Gateway API CRDs --------------------------------------------------------------------------

def test_foreign_standard_crds_stay_byte_for_byte_through_install_and_uninstall(env, tools, kubeconfig):
    apply_foreign(env, Path(tools.gateway_api) / "standard-install.yaml")
    before = snapshot(env)
    assert before and not any(n.endswith(".x-k8s.io") for n in before)

    p = cli(env, *install_args(tools, kubeconfig))
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert "v1.5.1 (standard) owned by field managers" in p.stdout and "left untouched" in p.stdout
    assert snapshot(env) == before  # not re-applied, not switched to experimental, not labelled
    assert record(env)["gateway-api-crds"] == {}

    u = cli(env, "uninstall", "--yes", "--purge-crds", "--kubeconfig", str(kubeconfig))
    assert u.returncode == 0, u.stdout[-4000:] + u.stderr[-2000:]
    assert "Gateway API CRDs are kept: this tool did not install them" in u.stdout + u.stderr
    assert snapshot(env) == before
    assert releases(env) == {} and record(env) == {}


def test_older_crds_are_upgraded_in_their_own_channel_only_with_the_flag(env, tools, kubeconfig, tmp_path):
    apply_foreign(env, older_standard(tools, tmp_path))
    before = snapshot(env)

    refused = cli(env, *install_args(tools, kubeconfig))
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert "pass --upgrade-gateway-api to upgrade them in their standard channel" in last, refused.stderr
    assert snapshot(env) == before and releases(env) == {}  # nothing changed

    p = cli(env, *install_args(tools, kubeconfig, "--upgrade-gateway-api"))
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert "upgrade Gateway API CRDs v1.2.0 -> v1.5.1 (standard)" in p.stdout
    after = gw_crds(env)
    assert set(after) == set(before)  # the standard channel's CRDs: no experimental x-k8s ones
    for name, meta in after.items():
        ann = meta.get("annotations") or {}
        assert ann["gateway.networking.k8s.io/bundle-version"] == "v1.5.1", name
        assert ann["gateway.networking.k8s.io/channel"] == "standard", name
        assert (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") != "ambient-tui", name
    assert record(env)["gateway-api-crds"] == {}  # upgraded, still theirs


def test_gateway_api_file_of_another_channel_does_not_silently_skip(env, tools, kubeconfig, tmp_path):
    apply_foreign(env, older_standard(tools, tmp_path))
    lone = tmp_path / "only-experimental" / "crds.yaml"  # no standard file beside it
    lone.parent.mkdir()
    lone.write_text((Path(tools.gateway_api) / "experimental-install.yaml").read_text())
    args = install_args(tools, kubeconfig, "--upgrade-gateway-api")
    args[args.index("--gateway-api-file") + 1] = str(lone)
    p = cli(env, *args)
    assert p.returncode == 1 and "holds the experimental channel; the installed Gateway API CRDs are standard" \
        in p.stderr, p.stderr
    assert releases(env) == {}


# -- existing istiod -------------------------------------------------------------------------------

USER_VALUES = {"global": {"hub": "registry.example.com/istio"},
               "meshConfig": {"accessLogFile": "/dev/stdout"},
               "resources": {"requests": {"cpu": "123m", "memory": "234Mi"}}}


def test_an_existing_istiod_keeps_the_users_values(env, tools, kubeconfig, tmp_path):
    values = tmp_path / "user-istiod.yaml"
    values.write_text(json.dumps({**USER_VALUES, "profile": "ambient"}))
    sh(env, "helm", "install", "istio-base", str(tools.charts / "base"), "-n", "istio-system", "--create-namespace")
    sh(env, "helm", "install", "istiod", str(tools.charts / "istiod"), "-n", "istio-system", "-f", str(values),
       "--wait", "--timeout", "5m")

    p = cli(env, *install_args(tools, kubeconfig))
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert "keeps its values: global.hub, meshConfig.accessLogFile, resources.requests" in p.stdout
    assert "sets global.tag=1.31.0 (was unset)" in p.stdout  # the only image pin: the hub is the user's
    kept = json.loads(sh(env, "helm", "get", "values", "istiod", "-n", "istio-system", "-o", "json").stdout)
    # The user's values, plus what the tool must set: the official tag instead of the local chart's
    # moving development default (latest). The user's hub (a private mirror) is not pinned over.
    assert kept["global"] == {**USER_VALUES["global"], "tag": "1.31.0"}, kept
    for key in set(USER_VALUES) - {"global"}:
        assert kept[key] == USER_VALUES[key], kept
    assert kept["profile"] == "ambient"
    history = json.loads(sh(env, "helm", "history", "istiod", "-n", "istio-system", "-o", "json").stdout)
    assert len(history) == 2  # upgraded in place
    d = json.loads(sh(env, "kubectl", "get", "deploy", "istiod", "-n", "istio-system", "-o", "json").stdout)
    c = d["spec"]["template"]["spec"]["containers"][0]
    assert c["image"].startswith("registry.example.com/istio/") and ":1.31.0" in c["image"], c["image"]
    assert c["resources"]["requests"] == {"cpu": "123m", "memory": "234Mi"}


def test_a_sidecar_istiod_is_named_and_the_install_refused(env, tools, kubeconfig):
    sh(env, "helm", "install", "istio-base", str(tools.charts / "base"), "-n", "istio-system", "--create-namespace")
    sh(env, "helm", "install", "istiod", str(tools.charts / "istiod"), "-n", "istio-system",
       "--wait", "--timeout", "5m")  # the default profile: sidecar mode
    p = cli(env, *install_args(tools, kubeconfig))
    assert p.returncode == 1
    assert "istiod in istio-system runs in sidecar mode" in p.stdout  # preflight names it
    assert "refused" in p.stderr and "runs in sidecar mode" in p.stderr and "nothing was changed" in p.stderr
    history = json.loads(sh(env, "helm", "history", "istiod", "-n", "istio-system", "-o", "json").stdout)
    assert len(history) == 1  # untouched


# -- one session, two front ends -----------------------------------------------------------------

def journal_plan(env) -> list[tuple[str, list | None]]:
    from ambient_tui.engine.journal import Journal

    files = sorted((Path(env["XDG_STATE_HOME"]) / "ambient-tui" / "journal").glob("*.jsonl"))
    assert len(files) == 1, files
    return [(r["step"], r.get("argv")) for r in Journal.read(files[0]).records if r.get("type") == "step-start"]


@pytest.mark.asyncio
async def test_install_and_the_tui_build_the_same_plan(env, tools, kubeconfig, tmp_path, monkeypatch):
    from ambient_tui.checks.model import CheckContext
    from ambient_tui.engine.journal import Journal
    from ambient_tui.engine.runner import Runner
    from ambient_tui.plans.install_session import InstallSession
    from ambient_tui.settings import Settings
    from screens.app import AmbientApp

    # A state with decisions to make: foreign CRDs (kept) and an existing istio-base (upgraded).
    apply_foreign(env, Path(tools.gateway_api) / "standard-install.yaml")
    sh(env, "helm", "install", "istio-base", str(tools.charts / "base"), "-n", "istio-system", "--create-namespace")
    p = cli(env, *install_args(tools, kubeconfig, "--dry-run"))
    assert p.returncode == 0 and "dry run: nothing was changed" in p.stdout, p.stdout[-3000:] + p.stderr[-2000:]
    headless = journal_plan(env)

    for k, v in env.items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    # The same machine: the pinned kubeconfig copy (cluster/target.py) is in the same state folder.
    monkeypatch.setenv("XDG_STATE_HOME", env["XDG_STATE_HOME"])
    settings = Settings(istio_version="1.31.0", chart_source=str(tools.charts),
                        gateway_api_file=str(Path(tools.gateway_api) / "experimental-install.yaml"))
    session = InstallSession(settings, kubeconfig=str(kubeconfig), env=env)
    plan = session.initial_plan()
    assert "gateway-api-crds" in [s.id for s in plan.steps]  # before preflight: as for a fresh cluster
    app = AmbientApp(plan, Runner(plan, journal=Journal(tmp_path / "tui.jsonl"), env=env), context="sandbox",
                     keymap_path=tmp_path / "none.yaml", kubeconfig=str(kubeconfig), install_session=session,
                     check_context_factory=lambda: CheckContext(settings, kubeconfig=str(kubeconfig), env=env))
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 300
        while app.screen.outcome is None:
            assert time.monotonic() < deadline, "the TUI never planned"
            await asyncio.sleep(0.2)
        await pilot.pause(0.2)
        tui = [(s.id, s.argv) for s in plan.steps]
        title = plan.title
        shown = app.screen.buffers.lines(plan.steps[0].id)
        await pilot.press("q")
    assert tui == headless
    assert "gateway-api-crds" not in [i for i, _ in tui]
    assert title.endswith("· upgrade")
    assert any("left untouched" in line for line in shown) and any("upgrade istio-system/istio-base" in line
                                                                   for line in shown)
    assert releases(env) == {"istio-base": "deployed"}  # neither front end ran anything


# -- uninstall from another machine ------------------------------------------------------------

def test_uninstall_without_a_journal_removes_what_the_tool_installed_and_keeps_the_rest(
        env, tools, kubeconfig, tmp_path):
    foreign_crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": "widgets.example.com"},
                   "spec": {"group": "example.com", "scope": "Namespaced",
                            "names": {"kind": "Widget", "plural": "widgets"},
                            "versions": [{"name": "v1", "served": True, "storage": True,
                                          "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    f = tmp_path / "widget-crd.json"
    f.write_text(json.dumps(foreign_crd))
    sh(env, "kubectl", "apply", "-f", str(f))
    sh(env, "kubectl", "create", "configmap", "someone-elses", "-n", "kube-system", "--from-literal=a=b")
    try:
        p = cli(env, *install_args(tools, kubeconfig))
        assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
        created = gw_crds(env)
        assert created and all((m.get("labels") or {}).get("app.kubernetes.io/managed-by") == "ambient-tui"
                               for m in created.values())
        assert set(record(env)["gateway-api-crds"]) == set(created)

        here = cli(env, "uninstall", "--dry-run", "--purge-crds", "--kubeconfig", str(kubeconfig))
        other = {**env, "XDG_STATE_HOME": str(tmp_path / "another-machine")}
        there = cli(other, "uninstall", "--dry-run", "--purge-crds", "--kubeconfig", str(kubeconfig))
        assert here.returncode == there.returncode == 0, there.stdout[-3000:] + there.stderr[-2000:]

        def deletions(out: str) -> list[str]:
            return [line for line in out.splitlines() if "CustomResourceDefinition" in line
                    or "HelmRelease" in line or "ConfigMap kube-system/ambient-tui-install" in line]
        assert deletions(here.stdout) == deletions(there.stdout) and deletions(there.stdout)

        u = cli(other, "uninstall", "--yes", "--purge-crds", "--kubeconfig", str(kubeconfig))
        assert u.returncode == 0, u.stdout[-4000:] + u.stderr[-2000:]
        assert releases(env) == {} and gw_crds(env) == {} and record(env) == {}
        assert sh(env, "kubectl", "get", "crd", "widgets.example.com", check=False).returncode == 0
        assert sh(env, "kubectl", "get", "configmap", "someone-elses", "-n", "kube-system",
                  check=False).returncode == 0
    finally:
        sh(env, "kubectl", "delete", "-f", str(f), "--ignore-not-found", check=False)
        sh(env, "kubectl", "delete", "configmap", "someone-elses", "-n", "kube-system", "--ignore-not-found",
           check=False)


# -- --fix and --revert-cni ----------------------------------------------------------------------

def addon_config(aws_local) -> str:
    import boto3

    eks = boto3.client("eks", region_name=aws_local.region, endpoint_url=aws_local.endpoint,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    return eks.describe_addon(clusterName=aws_local.cluster, addonName="vpc-cni")["addon"].get(
        "configurationValues") or ""


ADDON_SEED = json.dumps({"env": {"ENABLE_POD_ENI": "false", MODE: "standard"}})  # the sandbox's own


def set_addon_config(aws_local, text: str) -> None:
    """The add-on's configurationValues, as its own test needs them: the add-on is session-wide
    (another test may have left it changed). It also rolls its env onto aws-node."""
    import boto3

    eks = boto3.client("eks", region_name=aws_local.region, endpoint_url=aws_local.endpoint,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    eks.update_addon(clusterName=aws_local.cluster, addonName="vpc-cni", configurationValues=text,
                     resolveConflicts="PRESERVE")


def test_fix_then_revert_cni_restores_the_exact_env_and_addon_configuration(
        env, tools, kubeconfig, control_plane, aws_local, tmp_path):
    set_addon_config(aws_local, ADDON_SEED)  # first: it rolls its env onto aws-node
    control_plane.set_aws_node_env(ENABLE_POD_ENI="true", **{MODE: "strict"})
    sgp = "/apis/vpcresources.k8s.aws/v1beta1/namespaces/default/securitygrouppolicies/sgp-own"
    control_plane.api().request("DELETE", sgp)
    control_plane.create_security_group_policy("default", "sgp-own", ["sg-0123456789abcdef0"], {"app": "pay"})
    try:
        env_before = control_plane.aws_node_env()
        cfg_before = addon_config(aws_local)
        assert json.loads(cfg_before)["env"]["ENABLE_POD_ENI"] == "false"  # the add-on says otherwise

        args = install_args(tools, kubeconfig, "--fix")
        args[args.index("1.31.0")] = "1.28.6"  # no branch-ENI probe fix: strict mode fails preflight
        p = cli(env, *args)
        assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
        now = control_plane.aws_node_env()
        assert now[MODE] == "standard" and now["ENABLE_POD_ENI"] == "true"  # only the mode changed
        sent = [c for c in aws_local.calls() if c["op"] == "UpdateAddon"][-1]["request"]
        assert json.loads(sent["configurationValues"]) == {"env": {MODE: "standard"}}
        assert record(env)["vpc-cni"]["addon_config"] == cfg_before

        # From a machine with no journal: the in-cluster record says what to put back.
        other = {**env, "XDG_STATE_HOME": str(tmp_path / "another-machine")}
        u = cli(other, "uninstall", "--yes", "--revert-cni", "--kubeconfig", str(kubeconfig))
        assert u.returncode == 0, u.stdout[-4000:] + u.stderr[-2000:]
        after = control_plane.aws_node_env()
        assert {k: after.get(k) for k in env_before} == env_before
        assert addon_config(aws_local) == cfg_before
    finally:
        set_addon_config(aws_local, ADDON_SEED)
        control_plane.set_aws_node_env(ENABLE_POD_ENI="false", **{MODE: "standard"})
        control_plane.api().request("DELETE", sgp)
