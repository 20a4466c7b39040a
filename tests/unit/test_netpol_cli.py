"""`ambient-tui netpol lint|template`: exit codes 0/1/2, --json shape, no tracebacks."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ambient_tui.commands import netpol as cmd

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "assets" / "netpol" / "guide"
DENY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: demo}
spec: {podSelector: {}, policyTypes: [Ingress]}
"""


def run(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="ambient-tui")
    cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    if args.func is cmd.run_lint:
        code = cmd.run_lint(args, out, err, io.StringIO())
    else:
        code = cmd.run_template(args, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def write(tmp_path):
    def _write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return _write


def test_exit_1_on_error_finding(write):
    code, out, _ = run("netpol", "lint", write("deny.yaml", DENY))
    assert code == 1 and "hbone-blocked" in out and "probe-blocked" in out


def test_exit_0_when_union_is_fine_across_files(write):
    hbone = run("netpol", "template", "allow-hbone", "--namespace", "demo")[1]
    code, out, _ = run("netpol", "lint", write("deny.yaml", DENY), write("hbone.yaml", hbone))
    assert code == 0, out


def test_exit_0_with_warnings_only():
    code, out, _ = run("netpol", "lint", str(GUIDE / "8.2-allow-ztunnel-to-ztunnel.yaml"))
    assert code == 0 and "warning meaningless-port" in out


def test_not_enrolled_skips_ambient_errors(write):
    assert run("netpol", "lint", "--not-enrolled", write("deny.yaml", DENY))[0] == 0


def test_exit_2_on_non_yaml(write):
    code, _, err = run("netpol", "lint", write("bad.yaml", "a: [\n"))
    assert code == 2 and "bad.yaml: document 1: line 2" in err


def test_other_kinds_are_counted_and_skipped(write):
    path = write("mixed.yaml", DENY + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    code, out, _ = run("netpol", "lint", path)
    assert code == 1  # the deny policy is still linted
    assert "note: skipped 1 document(s) of other kinds: 1 ConfigMap" in out
    assert "1 policies" in out


def test_exit_2_on_a_document_that_is_no_object(write):
    path = write("mixed.yaml", DENY + "---\n- just a list\n")
    code, _, err = run("netpol", "lint", path)
    assert code == 2 and f"{path}: document 2: line" in err and "not a Kubernetes object" in err


def test_exit_2_on_missing_file(tmp_path):
    code, _, err = run("netpol", "lint", str(tmp_path / "nope.yaml"))
    assert code == 2 and "cannot read" in err


def test_json_shape(write):
    code, out, _ = run("netpol", "lint", "--json", write("deny.yaml", DENY))
    data = json.loads(out)
    assert code == 1 and set(data) == {"findings", "policies", "notes"}
    for f in data["findings"]:
        assert set(f) == {"file", "policy", "namespace", "rule", "severity", "line", "message",
                          "fix"}
    assert {f["rule"] for f in data["findings"]} == {"hbone-blocked", "probe-blocked"}
    assert data["findings"][0]["fix"]["kind"] == "append"


def test_json_with_bad_input_still_json(write):
    code, out, _ = run("netpol", "lint", "--json", write("bad.yaml", "- [\n"))
    data = json.loads(out)
    assert code == 2 and data["findings"] == [] and data["errors"][0]["document"] == 1


def test_template_output_parses_and_lints_clean():
    code, out, _ = run("netpol", "template", "allow-egress-to-config-server", "--namespace",
                       "demo", "--port", "8080", "--selector", "app=web", "--to-namespace", "cfg")
    doc = yaml.safe_load(out)
    assert code == 0 and doc["spec"]["podSelector"] == {"matchLabels": {"app": "web"}}
    # 15008 too: a meshed client reaches a meshed config server through HBONE.
    assert doc["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 8080},
                                                 {"protocol": "TCP", "port": 15008}]


def test_template_bad_selector_is_exit_2():
    code, _, err = run("netpol", "template", "allow-dns", "--selector", "novalue")
    assert code == 2 and "novalue" in err


def test_guide_examples_explained():
    code, out, _ = run("netpol", "lint", *sorted(str(p) for p in GUIDE.glob("*.yaml")))
    assert code == 1
    for needle in ("15441", "15006", "app=ztunnel", "placeholder"):
        assert needle in out
    # 8.1 keeps the guide's <placeholders>: it fails the schema, so it gets no HBONE verdict.
    assert "schema [allow-app-to-ztunnel]" in out
    assert "hbone-blocked [allow-app-to-ztunnel]" not in out


@pytest.mark.parametrize("content", ["a: [\n", "- 1\n", "\xff"])
def test_no_traceback_as_a_process(tmp_path, content):
    path = tmp_path / "in.yaml"
    path.write_text(content, encoding="latin-1")
    proc = subprocess.run([sys.executable, "-m", "ambient_tui.commands.netpol", "lint", str(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and str(path) in proc.stderr


def test_install_plan_gates_each_enrolment():
    # The enrol phase runs `netpol gate NS` before labelling NS; --force-enroll is passed on.
    from ambient_tui.plans.install import build_install_plan
    from ambient_tui.settings import Settings

    settings = Settings(enroll=["shop", "web"])
    ids = [s.id for s in build_install_plan(settings).steps if s.id.endswith(("shop", "web"))]
    assert ids[:4] == ["netpol-gate-shop", "enroll-shop", "netpol-gate-web", "enroll-web"]
    gate = build_install_plan(settings).step("netpol-gate-shop")
    assert gate.argv[-5:] == ["netpol", "gate", "shop", "--istio-namespace", "istio-system"]
    settings.force_enroll = True
    assert build_install_plan(settings).step("netpol-gate-shop").argv[-1] == "--force"


def test_lint_without_input_or_cluster_is_usage_error():
    code, _, err = run("netpol", "lint")
    assert code == 2 and "--cluster" in err


def test_live_pod_reads_host_network_ips_and_named_ports():
    # The API's own JSON shape for a Pod (as list_namespaced_pod returns it).
    from ambient_tui.netpol.live import pod_of

    item = {"metadata": {"name": "web-1", "labels": {"app": "web"}},
            "spec": {"hostNetwork": True, "containers": [
                {"name": "c", "ports": [{"name": "http", "containerPort": 8080},
                                        {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                        {"containerPort": 9000}]}]},
            "status": {"podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}}
    pod = pod_of(item)
    assert (pod.name, pod.labels, pod.host_network) == ("web-1", {"app": "web"}, True)
    assert pod.ips == ("10.0.0.5", "fd00::5")
    assert pod.ports == {"http": {("TCP", 8080)}, "dns": {("UDP", 53)}}
