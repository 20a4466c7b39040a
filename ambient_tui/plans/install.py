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
from dataclasses import dataclass, field
from functools import partial

from ambient_tui import catalog
from ambient_tui.engine.plan import Phase, Plan, Step
from ambient_tui.settings import Settings

# What a helm step's rollout wait watches (Step.watches), by release.
WATCHES = {"istiod": ("istiod",), "istio-cni": ("istio-cni-node",), "ztunnel": ("ztunnel",)}


@dataclass(frozen=True)
class GatewayApiAction:
    """What the plan does with the Gateway API CRDs (decided from what is installed).

    apply: none are installed; apply the catalogue's channel, and mark them as this tool's.
    keep: new enough; not touched. upgrade: older; re-apply the newer version in the channel
    they were installed from (never another one), after the person agreed."""

    action: str  # apply | keep | upgrade
    version: str
    channel: str
    source: str = ""  # file, folder or URL of the CRDs to apply
    previous: str = ""  # the installed bundle-version (upgrade, keep)
    owner: str = ""  # who manages the installed ones (field managers, Helm release)
    existing: tuple[str, ...] = ()  # Gateway API CRDs present before: never marked as ours


@dataclass
class ClusterFacts:
    """What the install session found, in the form the plan builder needs. None: the plan is
    built without a cluster (`ambient-tui plan`), as for a fresh install."""

    gateway_api: GatewayApiAction | None = None
    # Releases that exist: their upgrade keeps the user's values (--reset-then-reuse-values).
    reuse_values: frozenset[str] = frozenset()
    # release -> one line of the values diff, shown in the step's note.
    values_notes: dict[str, str] = field(default_factory=dict)
    # Writes the in-cluster record after the CRDs (plans/install_record.py); None: no cluster.
    record_step: Step | None = None
    # release -> the hub keys (global.hub, hub) its current values set to another registry than
    # the official one: the user's choice (a private mirror), which the image pin of local charts keeps.
    user_images: dict[str, frozenset[str]] = field(default_factory=dict)

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


HUB_KEYS = ("global.hub", "hub")


def image_pins(settings: Settings, cat: catalog.Catalog, version: str, release: str,
               user_set: frozenset[str] = frozenset()) -> list[str]:
    """The --set values pinning the official images of a release from a local chart folder.

    Charts from a source tree default to development images on moving tags
    (registry.istio.io/testing, latest): pin the release's official ones, as the published
    charts would give. A hub the existing release sets (`user_set`, e.g. a private mirror) is
    the user's: it is kept. The tag is always the version installed (a tag in the release's
    values may be this tool's pin of the previous version: keeping it would not upgrade)."""
    if settings.chart_source in ("blob", "oci", "gcs_legacy") or release == "istio-base":
        return []
    hub = cat.images.get("official_hub", "docker.io/istio")
    pins = {"global.hub": hub, "global.tag": version}
    if release == "ztunnel":  # ztunnel's chart reads its own hub and tag
        pins.update({"hub": hub, "tag": version})
    return [f"{k}={v}" for k, v in pins.items() if k not in user_set]


def _helm_step(settings: Settings, cat: catalog.Catalog, version: str, release: str,
               chart: str, chart_dir: str, sets: list[str], namespace: str, wait: bool,
               group: str | None = None, facts: ClusterFacts | None = None) -> Step:
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
    reuse = facts is not None and release in facts.reuse_values
    if reuse:
        # An upgrade keeps what the user set (hub, meshConfig, resources, ...): the new chart's
        # defaults, then the release's current values, then what the tool must set.
        argv.append("--reset-then-reuse-values")
    for s in sets:
        argv += ["--set", s]
    user_set = facts.user_images.get(release, frozenset()) if reuse else frozenset()
    for s in image_pins(settings, cat, version, release, user_set):
        argv += ["--set", s]
    component = next((k for k, v in COMPONENT_KEYS.items() if v == release), release)
    if component in settings.values:
        argv += ["--values", settings.values[component]]
    if wait:
        argv += ["--wait", "--timeout", "10m"]
    notes = [] if wait else [NO_WAIT_NOTES[release]]
    if reuse:
        notes.insert(0, (facts.values_notes.get(release) if facts else "") or "upgrade: keeps the release's values")
    return Step(id=f"helm-{release}", title=f"helm: {release} ({chart})" + (" upgrade" if reuse else ""),
                argv=argv, timeout=900, undo=["helm", "uninstall", release, "--namespace", namespace],
                group=group, note="; ".join(notes), kind="helm-release", watches=WATCHES.get(release, ()))


def gateway_api_step(settings: Settings, cat: catalog.Catalog, rel: catalog.Release,
                     action: GatewayApiAction | None = None) -> Step | None:
    """The CRD step, or None when the installed CRDs are kept as they are."""
    gw = rel.gateway_api
    if action is None:  # no cluster read: as for a fresh install
        action = GatewayApiAction("apply", gw.version, gw.channel,
                                  settings.gateway_api_file or gw.url(cat.gateway_api_url))
    if action.action == "keep":
        return None
    source = action.source
    # Server-side: HTTPRoute's CRD is over the 256 KiB last-applied annotation limit (from
    # v1.4). An upgrade also takes the fields over from the manager shown in the note.
    server_side = gw.server_side or action.action == "upgrade"
    argv = ["kubectl", "apply"]
    if server_side:
        argv += ["--server-side", "--force-conflicts"]
    argv += ["-f", source]
    if os.path.isdir(source):
        argv.append("--recursive")
    if action.action == "upgrade":
        return Step(id="gateway-api-crds", kind="crds", argv=argv, timeout=300,
                    title=f"upgrade Gateway API CRDs {action.previous} -> {action.version} ({action.channel})",
                    note=(f"installed {action.previous} ({action.channel}) owned by {action.owner or 'unknown'}; "
                          f"upgraded in their own channel, after you agreed; they stay theirs (not marked "
                          "as this tool's, kept by uninstall)"))
    return Step(id="gateway-api-crds", kind="crds", argv=argv, timeout=300,
                title=f"Gateway API CRDs {action.version} ({action.channel}{', server-side' if server_side else ''})",
                undo=["kubectl", "delete", "-f", source],
                note="none installed: applied and marked app.kubernetes.io/managed-by=ambient-tui")


def build_install_plan(settings: Settings, cat: catalog.Catalog | None = None,
                       facts: ClusterFacts | None = None) -> Plan:
    cat = cat or catalog.load()
    rel, version = cat.resolve(settings.istio_version)
    ns = settings.namespace
    plan = Plan(title=f"Install Istio {version} ambient ({settings.method})",
                meta={"istio_version": version, "method": settings.method,
                      "gateway_api": rel.gateway_api.version,
                      "eol": str(rel.eol) if rel.is_eol() else "",
                      "chart_source": settings.chart_source})
    gw_step = gateway_api_step(settings, cat, rel, facts.gateway_api if facts else None)
    crds = [gw_step] if gw_step is not None else []
    record = [facts.record_step] if facts is not None and facts.record_step is not None else []

    if settings.method == "istioctl":
        plan.phases.append(Phase("crds", "Gateway API CRDs", crds + record))
        argv = ["istioctl", "install", "--set", "profile=ambient", "--skip-confirmation"]
        if settings.gateway:
            argv += ["--set", "components.ingressGateways[0].name=istio-ingressgateway",
                     "--set", "components.ingressGateways[0].enabled=true"]
        plan.phases.append(Phase("install", "Install with istioctl", [
            Step("istioctl-install", f"istioctl install (profile ambient) {version}", argv=argv,
                 timeout=900, undo=["istioctl", "uninstall", "--purge", "-y"], kind="istioctl-install",
                 watches=("istiod", "istio-cni-node", "ztunnel"))]))
    elif settings.method == "helm":
        by_name = {c[0]: c for c in COMPONENTS}

        def step(name: str, wait: bool = True, group: str | None = None, namespace: str = ns) -> Step:
            release, chart, chart_dir, sets = by_name[name]
            return _helm_step(settings, cat, version, release, chart, chart_dir, sets, namespace, wait,
                              group, facts)

        # Istio's CRDs and the Gateway API's are independent: they are applied together.
        for s in crds:
            s.group = "crds"
        plan.phases.append(Phase("crds", "CRDs: Istio base and Gateway API",
                                 [step("istio-base", group="crds" if crds else None), *crds, *record]))
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
        Step("verify-istiod", "istiod Ready", timeout=300, group="verify", kind="verify", watches=("istiod",),
             argv=["kubectl", "rollout", "status", "deployment/istiod", "-n", ns, "--timeout=5m"]),
        Step("verify-istio-cni", "istio-cni Ready on every node", timeout=660, group="verify", kind="verify",
             watches=("istio-cni-node",),
             argv=["kubectl", "rollout", "status", "daemonset/istio-cni-node", "-n", ns, "--timeout=10m"]),
        Step("verify-ztunnel", "ztunnel Ready on every node", timeout=660, group="verify", kind="verify",
             watches=("ztunnel",),
             argv=["kubectl", "rollout", "status", "daemonset/ztunnel", "-n", ns, "--timeout=10m"]),
    ]))
    if settings.enroll:
        from ambient_tui.netpol.gate import gate_argv

        # Each enrolment is preceded by a lint of the namespace's live NetworkPolicies
        # (`ambient-tui netpol gate`): a blocking finding stops it unless --force-enroll.
        plan.phases.append(Phase("enroll", "Enrol namespaces", [s for n in settings.enroll for s in (
            Step(f"netpol-gate-{n}", f"check {n}'s NetworkPolicies allow HBONE and probes", timeout=60,
                 argv=gate_argv(settings, n)),
            Step(f"enroll-{n}", f"enrol namespace {n}", timeout=60, kind="enroll",
                 argv=["kubectl", "label", "namespace", n, "istio.io/dataplane-mode=ambient", "--overwrite"],
                 undo=["kubectl", "label", "namespace", n, "istio.io/dataplane-mode-"]))]))
        plan.phases.append(Phase("post-check", "Post-check", [
            Step(f"ztunnel-workloads-{n}", f"ztunnel carries {n}'s workloads over HBONE", timeout=60,
                 warn_only=True, argv=["istioctl", "ztunnel-config", "workloads", "--workload-namespace", n],
                 verify=partial(hbone_problem, namespace=n))
            for n in settings.enroll]))
    plan.phases = [p for p in plan.phases if p.steps]
    return plan


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
