"""The `istioctl x precheck` check, decided from output recorded from the real istioctl 1.31.0
against the sandbox (see the comments for how each was produced)."""

from types import SimpleNamespace

from ambient_tui.checks import core, precheck
from ambient_tui.checks.model import FAIL, PASS, WARN
from ambient_tui.settings import Settings

# A GatewayClass CRD that serves only v1alpha2 (kubectl apply of a hand-made CRD), then
# `istioctl x precheck`: exit 1, findings on stdout with the level word coloured even into a file.
OLD_GWAPI_STDOUT = (
    "\x1b[1;31mError\x1b[0m [IST0156] (CustomResourceDefinition gatewayclasses.gateway.networking.k8s.io) "
    "The Gateway API CRD version v1alpha2 is lower than the minimum version: v1beta1\n"
    "\x1b[33mWarning\x1b[0m [IST0172] (CustomResourceDefinition gatewayclasses.gateway.networking.k8s.io) "
    "The Gateway API CRD version v1alpha2 is lower than the minimum version: v1\n")
OLD_GWAPI_STDERR = (
    "Error: Issues found when checking the cluster. Istio may not be safe to install or upgrade.\n"
    "See https://istio.io/v1.31/docs/reference/config/analysis for more information about causes "
    "and resolutions.\n")
# A clean sandbox: exit 0, nothing on stdout.
CLEAN_STDERR = ("✔ No issues found when checking the cluster. Istio is safe to install or upgrade!\n"
                "  To get started, check out https://istio.io/latest/docs/setup/getting-started/.\n")
# The sandbox's restricted user: precheck cannot even list CRDs; exit 1, no findings.
RESTRICTED_STDERR = ('Error: customresourcedefinitions.apiextensions.k8s.io is forbidden: User "restricted" '
                     'cannot list resource "customresourcedefinitions" in API group "apiextensions.k8s.io" '
                     "at the cluster scope\n")


def test_recorded_error_and_warning_make_a_fail_with_codes_and_fix():
    c = precheck.decide(1, OLD_GWAPI_STDOUT, OLD_GWAPI_STDERR, "kubectl apply --server-side -f X")
    assert c.status == FAIL and c.id == "istioctl-precheck"
    assert c.detail.startswith("1 error(s), 1 warning(s)")
    assert "error IST0156 (CustomResourceDefinition gatewayclasses.gateway.networking.k8s.io)" in c.detail
    assert "\x1b" not in c.detail
    assert c.fix.startswith("kubectl apply --server-side -f X")
    assert "analysis/ist0156/" in c.fix and "analysis/ist0172/" in c.fix
    assert [f["code"] for f in c.data["findings"]] == ["IST0156", "IST0172"]


def test_warnings_only_is_a_warn_and_no_gateway_fix_for_other_codes():
    only_warning = OLD_GWAPI_STDOUT.splitlines()[1].replace("IST0172", "IST0103")
    c = precheck.decide(1, only_warning, OLD_GWAPI_STDERR, "kubectl apply X")
    assert c.status == WARN and "kubectl apply" not in c.fix and "ist0103" in c.fix


def test_clean_cluster_passes():
    c = precheck.decide(0, "", CLEAN_STDERR)
    assert c.status == PASS and "no issues found" in c.detail and c.fix == ""


def test_precheck_that_cannot_run_is_a_warning_with_its_reason():
    c = precheck.decide(1, "", RESTRICTED_STDERR)
    assert c.status == WARN
    assert 'User "restricted" cannot list resource "customresourcedefinitions"' in c.detail
    assert "cluster-admin" in c.fix


def test_argv_pins_kubeconfig_context_and_namespace():
    argv = precheck.precheck_argv("/bin/istioctl", "/k/config", "ctx-a", "istio-system")
    assert argv == ["/bin/istioctl", "x", "precheck", "--istioNamespace", "istio-system",
                    "--kubeconfig", "/k/config", "--context", "ctx-a"]
    assert "--kubeconfig" not in precheck.precheck_argv("istioctl", None, None, "ns")


def test_precheck_is_one_of_the_preflight_checks():
    assert precheck.CHECK_ID in [c[0] for c in core.ALL]


def _istioctl_check(monkeypatch, method: str, istioctl_version: str, istio: str):
    from ambient_tui import catalog
    from ambient_tui.tools import versions

    monkeypatch.setattr(versions, "detect", lambda name, env=None: versions.ToolVersion(
        name, "/stub/istioctl", istioctl_version))  # stub: no istioctl of another minor here
    cat = catalog.load()
    rel, ver = cat.resolve(istio)
    ctx = SimpleNamespace(settings=Settings(method=method), env=None, release=rel, version=ver, catalog=cat)
    return core.istioctl_tool(ctx)


def test_istioctl_minor_mismatch_fails_the_istioctl_method_and_warns_for_helm(monkeypatch):
    c = _istioctl_check(monkeypatch, "istioctl", "1.31.0", "1.30.0")
    assert c.status == FAIL and "installs istioctl's own version" in c.detail
    assert "ISTIO_VERSION=1.30.0" in c.fix
    c = _istioctl_check(monkeypatch, "helm", "1.31.0", "1.30.0")
    assert c.status == WARN and "precheck and verification" in c.detail
    assert _istioctl_check(monkeypatch, "istioctl", "1.31.1", "1.31.0").status == PASS
