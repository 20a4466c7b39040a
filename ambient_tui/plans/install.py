"""The install plan: the guide's steps, corrected by the facts and read from the catalogue.

Helm method: base + Gateway API CRDs (if absent) together -> istiod -> istio-cni + ztunnel
together (safe once istiod is Ready: neither depends on the other) -> optional gateway. Every helm step
is `upgrade --install`, so running the plan on an installed cluster changes nothing.
istiod is installed with `--wait`: the node agents need it Ready. istio-cni and ztunnel are not:
the Verify phase's `kubectl rollout status` watches their rollouts and returns as they finish,
where `helm --wait` checks every 2 s (on a fast cluster that was most of each step) and keeps
the release pending-install while it waits, which a dropped terminal leaves stuck.
There is no `istioctl verify-install` step: it was removed in Istio 1.24.
"""

from __future__ import annotations

import os
from functools import partial

from ambient_tui import catalog
from ambient_tui.engine.plan import Phase, Plan, Step
from ambient_tui.settings import Settings

# (release name, chart name, chart dir inside an istio source tree, extra --set values)
COMPONENTS = [
    ("istio-base", "base", "base", []),
    ("istiod", "istiod", "istio-control/istio-discovery", ["profile=ambient"]),
    ("istio-cni", "cni", "istio-cni", ["profile=ambient"]),
    ("ztunnel", "ztunnel", "ztunnel", []),
    ("istio-ingress", "gateway", "gateway", []),
]
COMPONENT_KEYS = {"base": "istio-base", "istiod": "istiod", "cni": "istio-cni",
                  "ztunnel": "ztunnel", "gateway": "istio-ingress"}


def chart_ref(settings: Settings, cat: catalog.Catalog, chart: str, chart_dir: str) -> tuple[str, list[str]]:
    """Chart argument and version flags for the chosen source."""
    src = settings.chart_source
    if src in ("blob", "gcs_legacy"):
        return f"{cat.chart_repo(src)}", ["--repo"]
    if src == "oci":
        return f"{cat.chart_repo('oci')}/{chart}", []
    # A local folder holding either chart names (base, istiod, ...) or the istio source layout.
    for candidate in (os.path.join(src, chart), os.path.join(src, chart_dir)):
        if os.path.isdir(candidate):
            return candidate, []
    return os.path.join(src, chart), []


NO_WAIT_NOTES = {
    "istio-ingress": "no --wait: a LoadBalancer address may never come (e.g. no cloud LB controller)",
    "istio-cni": "no --wait: the Verify phase waits for the istio-cni-node rollout (kubectl rollout status)",
    "ztunnel": "no --wait: the Verify phase waits for the ztunnel rollout (kubectl rollout status)",
}


def _helm_step(settings: Settings, cat: catalog.Catalog, version: str, release: str,
               chart: str, chart_dir: str, sets: list[str], namespace: str, wait: bool,
               group: str | None = None) -> Step:
    ref, repo_flag = chart_ref(settings, cat, chart, chart_dir)
    argv = ["helm", "upgrade", "--install", release]
    if repo_flag:
        argv += [chart, "--repo", ref]
    else:
        argv.append(ref)
    argv += ["--namespace", namespace]
    if release in ("istio-base", "istio-ingress"):
        argv.append("--create-namespace")
    if settings.chart_source in ("blob", "oci", "gcs_legacy"):
        argv += ["--version", version]
    for s in sets:
        argv += ["--set", s]
    if settings.chart_source not in ("blob", "oci", "gcs_legacy") and release != "istio-base":
        # Charts from a source tree default to development images on moving tags
        # (registry.istio.io/testing, latest): pin the release's official ones.
        hub = cat.images.get("official_hub", "docker.io/istio")
        argv += ["--set", f"global.hub={hub}", "--set", f"global.tag={version}"]
        if release == "ztunnel":  # ztunnel's chart reads its own hub and tag
            argv += ["--set", f"hub={hub}", "--set", f"tag={version}"]
    component = next((k for k, v in COMPONENT_KEYS.items() if v == release), release)
    if component in settings.values:
        argv += ["--values", settings.values[component]]
    if wait:
        argv += ["--wait", "--timeout", "10m"]
    note = "" if wait else NO_WAIT_NOTES[release]
    return Step(id=f"helm-{release}", title=f"helm: {release} ({chart})", argv=argv,
                timeout=900, undo=["helm", "uninstall", release, "--namespace", namespace],
                group=group, note=note)


def gateway_api_step(settings: Settings, cat: catalog.Catalog, rel: catalog.Release) -> Step:
    gw = rel.gateway_api
    source = settings.gateway_api_file or gw.url(cat.gateway_api_url)
    argv = ["kubectl", "apply"]
    if gw.server_side:
        # HTTPRoute's CRD is over the 256 KiB last-applied annotation limit.
        argv += ["--server-side", "--force-conflicts"]
    argv += ["-f", source]
    if settings.gateway_api_file and os.path.isdir(settings.gateway_api_file):
        argv.append("--recursive")
    return Step(id="gateway-api-crds",
                title=f"Gateway API CRDs {gw.version} ({gw.channel}{', server-side' if gw.server_side else ''})",
                argv=argv, timeout=300, undo=["kubectl", "delete", "-f", source])


def build_install_plan(settings: Settings, cat: catalog.Catalog | None = None) -> Plan:
    cat = cat or catalog.load()
    rel, version = cat.resolve(settings.istio_version)
    ns = settings.namespace
    plan = Plan(title=f"Install Istio {version} ambient ({settings.method})",
                meta={"istio_version": version, "method": settings.method,
                      "gateway_api": rel.gateway_api.version,
                      "eol": str(rel.eol) if rel.is_eol() else "",
                      "chart_source": settings.chart_source})
    crds = [] if settings.gateway_api_present else [gateway_api_step(settings, cat, rel)]

    if settings.method == "istioctl":
        plan.phases.append(Phase("crds", "Gateway API CRDs", crds))
        argv = ["istioctl", "install", "--set", "profile=ambient", "--skip-confirmation"]
        if settings.gateway:
            argv += ["--set", "components.ingressGateways[0].name=istio-ingressgateway",
                     "--set", "components.ingressGateways[0].enabled=true"]
        plan.phases.append(Phase("install", "Install with istioctl", [
            Step("istioctl-install", f"istioctl install (profile ambient) {version}", argv=argv,
                 timeout=900, undo=["istioctl", "uninstall", "--purge", "-y"])]))
    elif settings.method == "helm":
        by_name = {c[0]: c for c in COMPONENTS}

        def step(name: str, wait: bool = True, group: str | None = None, namespace: str = ns) -> Step:
            release, chart, chart_dir, sets = by_name[name]
            return _helm_step(settings, cat, version, release, chart, chart_dir, sets, namespace, wait, group)

        # Istio's CRDs and the Gateway API's are independent: they are applied together.
        for s in crds:
            s.group = "crds"
        plan.phases.append(Phase("crds", "CRDs: Istio base and Gateway API",
                                 [step("istio-base", group="crds" if crds else None), *crds]))
        plan.phases.append(Phase("control-plane", "istiod (profile ambient)", [step("istiod")]))
        plan.phases.append(Phase("data-plane", "istio-cni and ztunnel", [
            step("istio-cni", wait=False, group="node-agents"), step("ztunnel", wait=False, group="node-agents")]))
        if settings.gateway:
            plan.phases.append(Phase("gateway", "Ingress gateway", [
                step("istio-ingress", wait=False, namespace=settings.gateway_namespace)]))
    else:
        raise ValueError(f"unknown method {settings.method!r}; use helm or istioctl")

    # The three readiness checks only read: they run together. The node agents' checks get the 10
    # minutes their helm steps would have waited (a DaemonSet on many nodes takes a while).
    plan.phases.append(Phase("verify", "Verify", [
        Step("verify-istiod", "istiod Ready", timeout=300, group="verify",
             argv=["kubectl", "rollout", "status", "deployment/istiod", "-n", ns, "--timeout=5m"]),
        Step("verify-istio-cni", "istio-cni Ready on every node", timeout=660, group="verify",
             argv=["kubectl", "rollout", "status", "daemonset/istio-cni-node", "-n", ns, "--timeout=10m"]),
        Step("verify-ztunnel", "ztunnel Ready on every node", timeout=660, group="verify",
             argv=["kubectl", "rollout", "status", "daemonset/ztunnel", "-n", ns, "--timeout=10m"]),
    ]))
    if settings.enroll:
        plan.phases.append(Phase("enroll", "Enrol namespaces", [
            Step(f"enroll-{n}", f"enrol namespace {n}", timeout=60,
                 argv=["kubectl", "label", "namespace", n, "istio.io/dataplane-mode=ambient", "--overwrite"],
                 undo=["kubectl", "label", "namespace", n, "istio.io/dataplane-mode-"])
            for n in settings.enroll]))
        plan.phases.append(Phase("post-check", "Post-check", [
            Step(f"ztunnel-workloads-{n}", f"ztunnel carries {n}'s workloads over HBONE", timeout=60,
                 warn_only=True, argv=["istioctl", "ztunnel-config", "workloads", "--workload-namespace", n],
                 verify=partial(hbone_problem, namespace=n))
            for n in settings.enroll]))
    plan.phases = [p for p in plan.phases if p.steps]
    return plan


def pin_context(plan: Plan, kube_context: str) -> None:
    """helm and kubectl follow the kubeconfig's current-context, which can change under a long
    run; pin every step to the chosen one."""
    for s in plan.steps:
        if s.argv and s.argv[0] == "helm":
            s.argv += ["--kube-context", kube_context]
        elif s.argv and s.argv[0] in ("kubectl", "istioctl"):
            s.argv[1:1] = ["--context", kube_context]


def hbone_problem(lines: list[str], namespace: str) -> str:
    """The post-check's verdict on `istioctl ztunnel-config workloads` output: every workload
    of an enrolled namespace should use PROTOCOL HBONE (TCP means it is not in the mesh)."""
    from ambient_tui.checks.parsers import parse_ztunnel_workloads

    rows = [r for r in parse_ztunnel_workloads("\n".join(lines)) if r.get("NAMESPACE") == namespace]
    if not rows:
        return f"ztunnel lists no workload in {namespace}: no pods yet, or the namespace is not captured"
    plain = [r.get("POD NAME", "?") for r in rows if r.get("PROTOCOL") != "HBONE"]
    if plain:
        return (f"{len(plain)} of {len(rows)} workloads in {namespace} are not on HBONE: "
                f"{', '.join(plain[:5])}{' ...' if len(plain) > 5 else ''} (restart them, or check "
                "the istio-cni node agent on their nodes)")
    return ""
