"""Acceptance for the local control plane (issue 3): real helm, istioctl, charts, boto3."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ambient_tui.sandbox import build
from ambient_tui.sandbox.aws_local import CLIENT_ENV_UNSET
from ambient_tui.sandbox.control_plane import NODES, ControlPlane, SandboxError

pytestmark = pytest.mark.cluster

ISTIO_NS = "istio-system"
FAKE_NODES = {n for n, _ in NODES}


def run(args, env, timeout=300, check=True):
    p = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{args[0]} {' '.join(map(str, args[1:4]))} ... exit {p.returncode}\n"
                             f"stdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}")
    return p


def kubectl_json(tools, env, *args):
    return json.loads(run([tools.kubectl, *args, "-o", "json"], env).stdout)


# --- the cluster itself --------------------------------------------------------------------

def test_versions_are_stamped(tools, admin_env):
    v = kubectl_json(tools, admin_env, "version")
    assert v["serverVersion"]["gitVersion"] == build.KUBE_VERSION
    assert v["clientVersion"]["gitVersion"] == build.KUBE_VERSION
    assert v["serverVersion"]["minor"] == build.KUBE_VERSION.split(".")[1]
    h3 = run([tools.helm, "version", "--short"], admin_env).stdout
    h4 = run([tools.helm4, "version", "--short"], admin_env).stdout
    assert h3.startswith(build.HELM3_VERSION) and h4.startswith(build.HELM4_VERSION)


def test_nodes_look_like_eks(tools, admin_env):
    nodes = kubectl_json(tools, admin_env, "get", "nodes")["items"]
    assert {n["metadata"]["name"] for n in nodes} == FAKE_NODES
    for n in nodes:
        labels = n["metadata"]["labels"]
        assert labels["eks.amazonaws.com/nodegroup"] == "ng-default"
        assert labels["topology.kubernetes.io/zone"].startswith("us-west-2")
        assert labels["node.kubernetes.io/instance-type"] == "m5.xlarge"
        assert labels["kubernetes.io/arch"] == "amd64"
        assert n["status"]["allocatable"]["cpu"] == "4"
        assert n["status"]["allocatable"]["memory"] == "16Gi"
        assert not n["spec"].get("taints")
        ready = {c["type"]: c["status"] for c in n["status"]["conditions"]}["Ready"]
        assert ready == "True"


def test_aws_node_env_and_sgp_crd(control_plane, tools, admin_env):
    ds = kubectl_json(tools, admin_env, "-n", "kube-system", "get", "daemonset", "aws-node")
    env = {e["name"]: e.get("value") for e in ds["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ENABLE_POD_ENI"] == "false"
    assert env["POD_SECURITY_GROUP_ENFORCING_MODE"] == "standard"
    control_plane.set_aws_node_env(ENABLE_POD_ENI="true", POD_SECURITY_GROUP_ENFORCING_MODE="strict")
    out = run([tools.kubectl, "-n", "kube-system", "set", "env", "daemonset/aws-node", "--list"],
              admin_env).stdout
    assert "ENABLE_POD_ENI=true" in out and "POD_SECURITY_GROUP_ENFORCING_MODE=strict" in out
    control_plane.set_aws_node_env(ENABLE_POD_ENI="false", POD_SECURITY_GROUP_ENFORCING_MODE="standard")

    run([tools.kubectl, "get", "crd", "securitygrouppolicies.vpcresources.k8s.aws"], admin_env)
    control_plane.create_security_group_policy("default", "sgp-test", ["sg-0123456789abcdef0"],
                                               {"app": "web"})
    sgps = kubectl_json(tools, admin_env, "get", "sgp", "-A")["items"]
    assert [s["spec"]["securityGroups"]["groupIds"] for s in sgps] == [["sg-0123456789abcdef0"]]
    run([tools.kubectl, "delete", "sgp", "sgp-test", "-n", "default"], admin_env)

    # The aws-node pods run on the fake nodes, like on EKS.
    ds = _wait_daemonset(tools, admin_env, "kube-system", "aws-node")
    assert ds["status"]["numberReady"] == len(FAKE_NODES)


def test_restricted_user_is_refused_cluster_scope(tools, admin_env, restricted_kubeconfig):
    env = {**admin_env, "KUBECONFIG": str(restricted_kubeconfig)}
    p = run([tools.kubectl, "create", "clusterrole", "sneaky", "--verb=get", "--resource=pods"],
            env, check=False)
    assert p.returncode != 0
    assert "forbidden" in p.stderr.lower() and 'user "restricted"' in p.stderr.lower()
    # ... but may work in its own namespace.
    run([tools.kubectl, "create", "configmap", "mine", "--from-literal=a=b"], env)
    p = run([tools.kubectl, "auth", "can-i", "create", "clusterroles"], env, check=False)
    assert p.stdout.strip() == "no"


# --- AWS on loopback -------------------------------------------------------------------------

def test_boto3_through_local_servers(control_plane, aws_local, monkeypatch):
    import boto3

    for k, v in aws_local.env.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    # Plain clients: the endpoint comes from AWS_ENDPOINT_URL, as in the installer.
    ident = boto3.client("sts").get_caller_identity()
    assert ident["Account"] == "123456789012"
    eks = boto3.client("eks")
    cluster = eks.describe_cluster(name=aws_local.cluster)["cluster"]
    assert cluster["endpoint"] == control_plane.url
    assert cluster["version"] == "1.34"
    assert control_plane.admin_context == cluster["arn"]

    addon = eks.describe_addon(clusterName=aws_local.cluster, addonName="vpc-cni")["addon"]
    assert addon["status"] == "ACTIVE"
    assert json.loads(addon["configurationValues"])["env"]["ENABLE_POD_ENI"] == "false"
    assert eks.list_addons(clusterName=aws_local.cluster)["addons"] == ["vpc-cni"]

    new = {"env": {"ENABLE_POD_ENI": "true", "POD_SECURITY_GROUP_ENFORCING_MODE": "standard"}}
    upd = eks.update_addon(clusterName=aws_local.cluster, addonName="vpc-cni",
                           configurationValues=json.dumps(new), resolveConflicts="PRESERVE")["update"]
    assert upd["type"] == "AddonUpdate"
    done = eks.describe_update(name=aws_local.cluster, updateId=upd["id"], addonName="vpc-cni")
    assert done["update"]["status"] == "Successful"
    addon = eks.describe_addon(clusterName=aws_local.cluster, addonName="vpc-cni")["addon"]
    assert json.loads(addon["configurationValues"]) == new
    # Like the managed add-on, the new env reached the DaemonSet.
    assert control_plane.aws_node_env()["ENABLE_POD_ENI"] == "true"
    control_plane.set_aws_node_env(ENABLE_POD_ENI="false")
    calls = [c["op"] for c in aws_local.calls()]
    assert "UpdateAddon" in calls and "DescribeAddon" in calls

    with pytest.raises(eks.exceptions.ResourceNotFoundException):
        eks.describe_addon(clusterName=aws_local.cluster, addonName="coredns")


# --- Istio ambient with the real charts --------------------------------------------------------

def _wait_daemonset(tools, env, ns, name, timeout="120s"):
    run([tools.kubectl, "-n", ns, "rollout", "status", f"daemonset/{name}", f"--timeout={timeout}"],
        env, timeout=180)
    return kubectl_json(tools, env, "-n", ns, "get", "daemonset", name)


def test_istioctl_precheck_before_install(tools, admin_env):
    p = run([tools.istioctl, "x", "precheck"], admin_env, timeout=120, check=False)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "No issues found" in out, out


def _helm_install(tools, env, release, chart, *extra):
    hub = ["--set", "global.hub=docker.io/istio", "--set", f"global.tag={build.ISTIO_VERSION}"]
    run([tools.helm, "install", release, str(tools.charts / chart), "-n", ISTIO_NS,
         "--create-namespace", "--wait", "--timeout", "3m", *hub, *extra], env, timeout=240)


def test_helm_install_istio_ambient(tools, admin_env):
    env = admin_env
    _helm_install(tools, env, "istio-base", "base")
    # Gateway API CRDs, server-side (HTTPRoute is over the 256 KiB annotation limit).
    run([tools.kubectl, "apply", "--server-side", "-f",
         tools.gateway_api / "standard-install.yaml"], env)
    _helm_install(tools, env, "istiod", "istiod", "--set", "profile=ambient")
    _helm_install(tools, env, "istio-cni", "cni", "--set", "profile=ambient")
    _helm_install(tools, env, "ztunnel", "ztunnel",
                  "--set", "hub=docker.io/istio", "--set", f"tag={build.ISTIO_VERSION}")

    releases = json.loads(run([tools.helm, "list", "-n", ISTIO_NS, "-o", "json"], env).stdout)
    assert {r["name"]: r["status"] for r in releases} == {
        "istio-base": "deployed", "istiod": "deployed", "istio-cni": "deployed",
        "ztunnel": "deployed"}
    assert {r["chart"] for r in releases} >= {f"istiod-{build.ISTIO_VERSION}"}

    dep = kubectl_json(tools, env, "-n", ISTIO_NS, "get", "deployment", "istiod")
    assert dep["status"]["readyReplicas"] >= 1
    for ds_name in ("ztunnel", "istio-cni-node"):
        ds = _wait_daemonset(tools, env, ISTIO_NS, ds_name)
        assert ds["status"]["numberReady"] == len(FAKE_NODES), ds_name
    pods = kubectl_json(tools, env, "-n", ISTIO_NS, "get", "pods")["items"]
    by_app = {}
    for p in pods:
        labels = p["metadata"]["labels"]
        app = labels.get("app") or labels.get("k8s-app")  # istio-cni pods use k8s-app
        by_app.setdefault(app, []).append(p)
        assert p["status"]["phase"] == "Running", p["metadata"]["name"]
        assert p["spec"]["nodeName"] in FAKE_NODES
    assert len(by_app["ztunnel"]) == 3 and len(by_app["istio-cni-node"]) == 3
    assert len(by_app["istiod"]) >= 1
    img = by_app["istiod"][0]["spec"]["containers"][0]["image"]
    # The 1.31 charts default to the distroless variant (global.variant).
    assert img.startswith(f"docker.io/istio/pilot:{build.ISTIO_VERSION}"), img


def test_istioctl_version(tools, admin_env):
    p = run([tools.istioctl, "version", "-o", "json"], admin_env, timeout=120, check=False)
    m = re.search(r"\{.*\}", p.stdout, re.S)
    assert m, p.stdout + p.stderr
    info = json.loads(m.group(0))
    assert info["clientVersion"]["version"] == build.ISTIO_VERSION
    assert info["clientVersion"]["revision"] == build.ISTIO_MODULE_VERSION.rsplit("-", 1)[-1]
    # The mesh part needs a port-forward into istiod through a kubelet; kwok nodes have none,
    # so istioctl reports the failure and an empty (or real) list, but does not hang.
    assert isinstance(info.get("meshVersion", []), list)


def test_helm4_installs_gateway_chart(tools, admin_env):
    # Helm 4 (server-side apply) with the gateway chart; no --wait: its LoadBalancer Service
    # never gets an address here.
    hub = ["--set", "global.hub=docker.io/istio", "--set", f"global.tag={build.ISTIO_VERSION}"]
    run([tools.helm4, "install", "istio-ingress", tools.charts / "gateway", "-n", "istio-ingress",
         "--create-namespace", *hub], admin_env, timeout=120)
    run([tools.kubectl, "-n", "istio-ingress", "rollout", "status", "deployment/istio-ingress",
         "--timeout=90s"], admin_env, timeout=120)
    svc = kubectl_json(tools, admin_env, "-n", "istio-ingress", "get", "service", "istio-ingress")
    assert svc["spec"]["type"] == "LoadBalancer"
    rel = json.loads(run([tools.helm4, "list", "-n", "istio-ingress", "-o", "json"], admin_env).stdout)
    assert [(r["name"], r["status"]) for r in rel] == [("istio-ingress", "deployed")]


def test_helm_sees_release_versions(tools, admin_env):
    out = run([tools.helm, "status", "istiod", "-n", ISTIO_NS, "-o", "json"], admin_env).stdout
    assert json.loads(out)["info"]["status"] == "deployed"


# --- lifecycle: CLI up/down, stale pid files, ports --------------------------------------------

def _pgrep(pattern: str) -> list[str]:
    p = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return p.stdout.split()


def _sandbox_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ambient_tui.sandbox.commands", *args],
                          capture_output=True, text=True, timeout=180, env=env)


def test_cli_up_status_env_down_leaves_nothing(tmp_path):
    sd = tmp_path / "cli-sandbox"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    up = _sandbox_cli("up", "--state-dir", str(sd), "--no-build", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    st = _sandbox_cli("status", "--state-dir", str(sd), env=env)
    assert st.returncode == 0 and " up" in st.stdout, st.stdout
    ev = _sandbox_cli("env", "--state-dir", str(sd), env=env)
    assert f"export KUBECONFIG={sd / 'kubeconfig'}" in ev.stdout
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:" in ev.stdout
    path_line = next(ln for ln in ev.stdout.splitlines() if ln.startswith("export PATH="))
    assert path_line.split("=", 1)[1].strip("'").startswith(str(build.bin_path("kubectl").parent))
    assert len(_pgrep(str(sd))) == 6  # etcd, apiserver, kcm, scheduler, kwok, aws

    down = _sandbox_cli("down", "--state-dir", str(sd), env=env)
    assert down.returncode == 0, down.stderr
    assert _pgrep(str(sd)) == []
    assert not sd.exists()
    st = _sandbox_cli("status", "--state-dir", str(sd), env=env)
    assert st.returncode == 1 and "not running" in st.stdout


def test_latency_relay_sandbox_passes_preflight_and_stops_clean(tmp_path):
    """`sandbox up --latency-ms`: kubeconfig and AWS_ENDPOINT_URL lead through the relay, the
    EKS endpoint names the relay (so aws-eks still matches), and `down` stops the relay too."""
    sd = tmp_path / "slow-sandbox"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    up = _sandbox_cli("up", "--state-dir", str(sd), "--no-build", "--latency-ms", "30", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        st = _sandbox_cli("status", "--state-dir", str(sd), env=env)
        assert re.search(r"latency\s+pid \d+", st.stdout), st.stdout
        assert "through a relay adding 30 ms round trip" in st.stdout
        info = json.loads((sd / "state.json").read_text())
        server = json.loads((sd / "kubeconfig").read_text())["clusters"][0]["cluster"]["server"]
        assert server == info["client_url"] != info["url"]
        components = json.loads((sd / "components.kubeconfig").read_text())
        assert components["clusters"][0]["cluster"]["server"] == info["url"]  # the sandbox goes direct
        assert info["aws_endpoint"].endswith(f":{info['ports']['aws-relay']}")
        assert len(_pgrep(str(sd))) == 7  # the six components and the relay

        cp = ControlPlane(state_dir=sd)
        cenv = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV_UNSET}
        cenv.update(cp.env())
        cenv["HOME"] = str(sd)
        cenv["PYTHONPATH"] = env["PYTHONPATH"]
        # Local charts: the sandbox has no network, and preflight's chart-source renders them.
        p = subprocess.run([sys.executable, "-m", "ambient_tui.cli", "preflight", "--json",
                            "--istio-version", "1.31.0", "--charts", str(build.charts_dir())],
                           env=cenv, capture_output=True, text=True, timeout=120)
        c = {x["id"]: x for x in json.loads(p.stdout)["checks"]}
        assert p.returncode == 0, json.dumps(c, indent=1)
        assert f"at {server} answers" in c["cluster-access"]["detail"]
        assert "endpoint matches the kube context" in c["aws-eks"]["detail"]
        assert c["istioctl-precheck"]["status"] == "pass"
    finally:
        down = _sandbox_cli("down", "--state-dir", str(sd), env=env)
    assert down.returncode == 0 and "latency" in down.stderr, down.stderr
    assert _pgrep(str(sd)) == []


def test_stale_pid_files_are_cleaned_and_taken_port_is_reported(tmp_path):
    sd = tmp_path / "stale"
    (sd / "pids").mkdir(parents=True)
    # A killed run: pid files whose processes are gone.
    dead = subprocess.Popen(["true"])
    dead.wait()
    (sd / "pids" / "kube-apiserver.pid").write_text(f"{dead.pid}\n{sd}\n")
    (sd / "pids" / "etcd.pid").write_text(f"999999\n{sd}\n")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        msgs = []
        cp = ControlPlane(state_dir=sd, apiserver_port=taken, with_aws=False,
                          out=type("W", (), {"write": lambda self, t: msgs.append(t),
                                             "flush": lambda self: None})())
        with pytest.raises(SandboxError, match=f"port {taken} .* already in use"):
            cp.start()
    assert any("stale pid files" in m for m in msgs), msgs
    assert not sd.exists()  # the failed start cleaned up after itself
    assert _pgrep(str(sd)) == []
