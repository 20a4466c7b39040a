"""The uninstall: discover what is there, say exactly what goes, remove it in reverse order.

Order: unenrol namespaces -> delete waypoints -> helm uninstall gateway, ztunnel, istio-cni,
istiod, base (those that exist), or `istioctl uninstall --purge` for an istioctl install ->
optional purge of the Istio CRDs -> optional removal of the Gateway API CRDs (only when this tool
installed them and nothing uses them) -> the NetworkPolicies this tool created -> the
istio-system namespace (and a gateway namespace the gateway release was the last thing in) ->
optional revert of the VPC CNI enforcing-mode change this tool made.

Discovery is a plain dataclass snapshot, so the plan is a pure function of it and can be tested
without a cluster. `kubernetes` is imported inside functions so the CLI starts without it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ambient_tui.checks.vpc_cni import (EnforcingModeChange, revert_command,
                                        revert_enforcing_mode_steps, unreverted_change)
from ambient_tui.cluster import crd_cleanup
from ambient_tui.engine.plan import ApiCall, Phase, Plan, Step

ISTIO_NAMESPACE = "istio-system"
AMBIENT_LABEL = "istio.io/dataplane-mode"
# Namespace labels that only mean something to Istio; removed when a namespace is unenrolled.
NAMESPACE_LABELS = (AMBIENT_LABEL, "istio.io/use-waypoint")
WAYPOINT_CLASS = "istio-waypoint"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
GATEWAY_API_GROUPS = (GATEWAY_API_GROUP, "gateway.networking.x-k8s.io")
GATEWAY_API_STEP = "gateway-api-crds"  # the install plan's step id
MANAGED_BY, TOOL = "app.kubernetes.io/managed-by", "ambient-tui"  # = plans.install_record
# Removal rank by chart name: gateway first, base last.
CHART_ORDER = {"gateway": 0, "ztunnel": 1, "cni": 2, "istiod": 3, "base": 4}
RELEASE_NAMES = {"istio-ingress": "gateway", "ztunnel": "ztunnel", "istio-cni": "cni",
                 "istiod": "istiod", "istio-base": "base"}
ISTIO_RELEASE_NAMESPACES = (ISTIO_NAMESPACE, "istio-ingress")
# What `istioctl install` labels every object with (checked on istioctl 1.31); helm installs
# of the same charts carry it too, but also helm's release annotation.
ISTIOCTL_LABEL = "operator.istio.io/component"
HELM_RELEASE_ANNOTATION = "meta.helm.sh/release-name"
# Objects every namespace has, or that istiod copies into it: not a reason to keep it.
NAMESPACE_DEFAULTS = {("ConfigMap", "kube-root-ca.crt"), ("ConfigMap", "istio-ca-root-cert"),
                      ("ServiceAccount", "default")}


class DiscoveryError(RuntimeError):
    """Discovery could not read the cluster; the message says what and why."""


@dataclass(frozen=True, order=True)
class Obj:
    kind: str
    name: str
    namespace: str = ""
    api_version: str = ""

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    chart: str  # chart name without version, e.g. "istiod"
    version: str = ""
    status: str = ""
    # What `helm uninstall` deletes (objects kept by helm.sh/resource-policy=keep excluded).
    resources: tuple[Obj, ...] = ()
    kept: tuple[Obj, ...] = ()

    @property
    def rank(self) -> int:
        return CHART_ORDER.get(self.chart, CHART_ORDER.get(RELEASE_NAMES.get(self.name, ""), -1))


@dataclass
class Discovery:
    cluster: str = ""
    releases: list[Release] = field(default_factory=list)
    istio_crds: list[str] = field(default_factory=list)
    gateway_api_crds: list[str] = field(default_factory=list)
    # Gateway API objects that would lose their CRDs (waypoints excluded: they go first).
    gateway_api_users: list[Obj] = field(default_factory=list)
    # The Gateway API CRDs this tool created: labelled app.kubernetes.io/managed-by=ambient-tui
    # or named in its in-cluster record (plans/install_record.py). Only these are ever deleted.
    gateway_api_owned: list[str] = field(default_factory=list)
    # The Gateway API release's own admission policies (safe-upgrades), removed with its CRDs.
    gateway_api_policies: list[Obj] = field(default_factory=list)
    # enrolled namespace -> the Istio labels it carries
    enrolled_namespaces: dict[str, list[str]] = field(default_factory=dict)
    opted_out_pods: list[Obj] = field(default_factory=list)
    waypoints: list[Obj] = field(default_factory=list)
    netpols: list[Obj] = field(default_factory=list)
    istio_namespace: str = ISTIO_NAMESPACE
    istio_namespace_exists: bool = False
    namespaces_seen: list[str] = field(default_factory=list)
    # Istio objects that no helm release owns (an istioctl install), and its CRDs, which
    # `istioctl uninstall --purge` deletes too.
    istioctl_resources: list[Obj] = field(default_factory=list)
    istioctl_crds: list[str] = field(default_factory=list)
    # Release namespaces other than istio-system (e.g. istio-ingress): those whose only
    # content is Istio releases are deleted; the others are kept, with the reason.
    release_namespaces_to_delete: list[str] = field(default_factory=list)
    release_namespaces_kept: dict[str, str] = field(default_factory=dict)
    # The VPC CNI enforcing-mode change this tool made and has not reverted (from the journal).
    cni_change: EnforcingModeChange | None = None
    # The in-cluster record kube-system/ambient-tui-install exists (it is deleted last).
    install_record: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def gateway_api_by_tool(self) -> bool:
        return bool(self.gateway_api_owned)

    @property
    def istioctl_install(self) -> bool:
        """Uninstall through `istioctl uninstall --purge` (no helm release to remove)."""
        return not self.releases and bool(self.istioctl_resources)


@dataclass
class Options:
    purge_crds: bool = False
    keep_namespace_labels: bool = False
    revert_cni: bool = False


# --- discovery -----------------------------------------------------------------------------

def cluster_name(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The cluster the person must type: the EKS name from the context's cluster ARN, else the
    context's cluster name, else the context name."""
    from kubernetes.config import kube_config

    try:
        contexts, active = kube_config.list_kube_config_contexts(config_file=kubeconfig_file(kubeconfig))
    except Exception as e:  # ConfigException, missing file
        raise DiscoveryError(f"cannot read kubeconfig: {e}") from None
    ctx = next((c for c in contexts if c["name"] == context), None) if context else active
    if ctx is None:
        raise DiscoveryError(f"context {context!r} is not in the kubeconfig")
    cluster = (ctx.get("context") or {}).get("cluster") or ctx["name"]
    m = re.match(r"arn:aws[\w-]*:eks:[^:]*:\d*:cluster/(.+)$", cluster)
    return m.group(1) if m else cluster


def kubeconfig_file(kubeconfig: str | None = None) -> str:
    """The kubeconfig to read now: the kubernetes client reads $KUBECONFIG once, at import."""
    import os

    if kubeconfig:
        return kubeconfig
    env = os.environ.get("KUBECONFIG")
    return env.split(os.pathsep)[0] if env else os.path.expanduser("~/.kube/config")


def api_client(kubeconfig: str | None = None, context: str | None = None):
    try:
        from ambient_tui.cluster.client import new_api_client  # exec plugins run captured
        return new_api_client(kubeconfig, context)
    except Exception as e:
        raise DiscoveryError(f"cannot load kubeconfig: {e}") from None


def _kube_flags(kubeconfig: str | None, context: str | None, tool: str) -> list[str]:
    if tool == "helm":
        from ambient_tui.tools.helm import target_flags

        return target_flags(kubeconfig, context)
    out = []
    if kubeconfig:
        out += ["--kubeconfig", kubeconfig]
    if context:
        out += ["--context", context]
    return out


def _helm(args: list[str], helm: str, env: dict | None) -> str:
    from ambient_tui.tools import helm as helm_tool

    try:
        # env is the whole environment here (as subprocess takes it); the wrapper merges.
        return helm_tool.run(args, env, timeout=120, helm=helm)
    except helm_tool.HelmError as e:
        raise DiscoveryError(f"{e}; it is needed to list the Istio releases"
                             if "not found" in str(e) else str(e)) from None


def split_chart(chart: str) -> tuple[str, str]:
    """'istiod-1.31.0' -> ('istiod', '1.31.0')."""
    m = re.match(r"^(.*?)-(v?\d+\.\d+.*)$", chart or "")
    return (m.group(1), m.group(2)) if m else (chart or "", "")


def is_istio_release(item: dict) -> bool:
    chart, _ = split_chart(item.get("chart", ""))
    name, ns = item.get("name", ""), item.get("namespace", "")
    if RELEASE_NAMES.get(name) == chart:
        return True
    return chart in CHART_ORDER and ns in ISTIO_RELEASE_NAMESPACES


def manifest_objects(manifest: str) -> tuple[list[Obj], list[Obj]]:
    """(objects helm uninstall deletes, objects it keeps) from `helm get manifest` output."""
    import yaml

    from ambient_tui.yaml_loader import SAFE_LOADER

    deleted, kept = [], []
    # helm's own output: libyaml reads istiod's 160 KB manifest in ~6 ms, pure Python in ~85 ms.
    for doc in yaml.load_all(manifest or "", Loader=SAFE_LOADER):
        if not isinstance(doc, dict) or not doc.get("kind"):
            continue
        meta = doc.get("metadata") or {}
        obj = Obj(doc["kind"], meta.get("name", ""), meta.get("namespace", ""), doc.get("apiVersion", ""))
        keep = (meta.get("annotations") or {}).get("helm.sh/resource-policy") == "keep"
        (kept if keep else deleted).append(obj)
    return deleted, kept


def list_releases(helm: str = "helm", kubeconfig: str | None = None, context: str | None = None,
                  env: dict | None = None, with_manifests: bool = True) -> list[Release]:
    flags = _kube_flags(kubeconfig, context, "helm")
    items = json.loads(_helm(["list", "-A", "-a", "-o", "json", *flags], helm, env) or "[]")
    out = []
    for item in items or []:
        if not is_istio_release(item):
            continue
        chart, version = split_chart(item.get("chart", ""))
        deleted: list[Obj] = []
        kept: list[Obj] = []
        if with_manifests:
            manifest = _helm(["get", "manifest", item["name"], "-n", item["namespace"], *flags], helm, env)
            deleted, kept = (
                [o if o.namespace or not _namespaced_kind(o.kind)
                 else Obj(o.kind, o.name, item["namespace"], o.api_version) for o in objs]
                for objs in manifest_objects(manifest))
        out.append(Release(item["name"], item["namespace"], chart, version, item.get("status", ""),
                           tuple(deleted), tuple(kept)))
    return sorted(out, key=lambda r: (r.rank, r.namespace, r.name))


CLUSTER_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                 "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
                 "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "PriorityClass",
                 "StorageClass", "PersistentVolume", "GatewayClass", "APIService"}


def _namespaced_kind(kind: str) -> bool:
    return kind not in CLUSTER_KINDS


def _api_error(e: Exception, what: str) -> DiscoveryError:
    status = getattr(e, "status", None)
    if status == 403:
        return DiscoveryError(f"forbidden: cannot {what}; the uninstall needs cluster-admin rights")
    if status == 401:
        return DiscoveryError(f"unauthorized: cannot {what}; the kubeconfig's credentials were refused")
    reason = getattr(e, "reason", None) or str(e).splitlines()[0]
    return DiscoveryError(f"cannot {what}: {reason}")


def _list_custom(custom, group: str, version: str, plural: str) -> list[dict]:
    from kubernetes.client.rest import ApiException

    try:
        return custom.list_cluster_custom_object(group, version, plural).get("items", [])
    except ApiException as e:
        if e.status == 404:
            return []
        raise _api_error(e, f"list {plural}.{group}") from None


def _served_version(crd) -> str:
    versions = crd.spec.versions or []
    for v in versions:
        if v.storage:
            return v.name
    return versions[0].name if versions else "v1"


def journal_records(paths) -> list[dict]:
    """Records of several journals (the install journals under the context name, the
    uninstall under the cluster name), merged in time order."""
    from ambient_tui.engine.journal import Journal

    if paths is None:
        return []
    if isinstance(paths, (str, Path)):
        paths = [paths]
    recs: list[dict] = []
    for path in dict.fromkeys(Path(x) for x in paths):
        recs += Journal.read(path).records
    return sorted(recs, key=lambda r: r.get("ts") or 0)  # stable: a file's own order is kept


def tool_installed_gateway_api(journal_path) -> bool:
    """True when the journal(s) record a succeeded (not dry-run) `gateway-api-crds` step."""
    return any(rec.get("type") == "step-end" and rec.get("step") == GATEWAY_API_STEP
               and rec.get("state") == "succeeded" for rec in journal_records(journal_path))


def journal_paths(cluster: str, kubeconfig: str | None = None, context: str | None = None) -> list[Path]:
    """Where this tool journals for this cluster: the uninstall's (cluster name) first, then the
    install's and the TUI's (the kube context name)."""
    from ambient_tui.engine.journal import journal_path

    paths = [journal_path(cluster)]
    try:
        paths.append(journal_path(context or current_context(kubeconfig)))
    except DiscoveryError:
        pass
    return list(dict.fromkeys(paths))


def current_context(kubeconfig: str | None = None) -> str:
    from kubernetes.config import kube_config

    try:
        _, active = kube_config.list_kube_config_contexts(config_file=kubeconfig_file(kubeconfig))
    except Exception as e:  # ConfigException, missing file
        raise DiscoveryError(f"cannot read kubeconfig: {e}") from None
    return active["name"]


def discover(kubeconfig: str | None = None, context: str | None = None, helm: str = "helm",
             env: dict | None = None, journal_path: Path | list[Path] | None = None,
             cluster: str = "") -> Discovery:
    """A snapshot of everything Istio-related the uninstall could touch."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api = api_client(kubeconfig, context)
    core, ext = client.CoreV1Api(api), client.ApiextensionsV1Api(api)
    custom, net, apps = client.CustomObjectsApi(api), client.NetworkingV1Api(api), client.AppsV1Api(api)
    from ambient_tui.netpol.templates import MANAGED_SELECTOR

    d = Discovery(cluster=cluster)
    try:
        crds = ext.list_custom_resource_definition().items
    except ApiException as e:
        raise _api_error(e, "list CustomResourceDefinitions") from None
    except Exception as e:
        raise DiscoveryError(f"cannot reach the cluster: {e}") from None
    d.istio_crds = sorted(c.metadata.name for c in crds
                          if c.spec.group == "istio.io" or c.spec.group.endswith(".istio.io"))
    gw_crds = [c for c in crds if c.spec.group in GATEWAY_API_GROUPS]
    d.gateway_api_crds = sorted(c.metadata.name for c in gw_crds)

    try:
        for ns in core.list_namespace().items:
            labels = ns.metadata.labels or {}
            d.namespaces_seen.append(ns.metadata.name)
            if ns.metadata.name == d.istio_namespace:
                d.istio_namespace_exists = True
            if labels.get(AMBIENT_LABEL) == "ambient":
                d.enrolled_namespaces[ns.metadata.name] = [k for k in NAMESPACE_LABELS if k in labels]
        pods = core.list_pod_for_all_namespaces(label_selector=f"{AMBIENT_LABEL}=none").items
        # Istio's own pods opt out too; they go with their releases.
        d.opted_out_pods = sorted(Obj("Pod", p.metadata.name, p.metadata.namespace) for p in pods
                                  if p.metadata.namespace not in ISTIO_RELEASE_NAMESPACES)
    except ApiException as e:
        raise _api_error(e, "list namespaces and pods") from None
    try:
        d.netpols = sorted(Obj("NetworkPolicy", p.metadata.name, p.metadata.namespace,
                               "networking.k8s.io/v1")
                           for p in net.list_network_policy_for_all_namespaces(
                               label_selector=MANAGED_SELECTOR).items)
    except ApiException as e:
        raise _api_error(e, "list NetworkPolicies") from None

    # Waypoints, and every other Gateway API object (they would lose their CRDs).
    for crd in gw_crds:
        version, kind, plural = _served_version(crd), crd.spec.names.kind, crd.spec.names.plural
        for item in _list_custom(custom, crd.spec.group, version, plural):
            meta = item.get("metadata", {})
            obj = Obj(kind, meta.get("name", ""), meta.get("namespace", ""), f"{crd.spec.group}/{version}")
            spec = item.get("spec") or {}
            if kind == "Gateway" and spec.get("gatewayClassName") == WAYPOINT_CLASS:
                d.waypoints.append(obj)
            elif kind == "GatewayClass" and str(spec.get("controllerName", "")).startswith("istio.io/"):
                continue  # istiod's own classes: they go with Istio
            else:
                d.gateway_api_users.append(obj)
    d.waypoints.sort()
    d.gateway_api_users.sort()
    # Ownership from the cluster, not from this machine's journal: the same list from anywhere.
    record = read_record(core)
    d.install_record = bool(record)
    named = record.get("gateway-api-crds") if isinstance(record.get("gateway-api-crds"), dict) else {}
    d.gateway_api_owned = sorted(c.metadata.name for c in gw_crds
                                 if (c.metadata.labels or {}).get(MANAGED_BY) == TOOL
                                 or named.get(c.metadata.name) == c.metadata.uid)
    records = journal_records(journal_path)
    d.cni_change = unreverted_change(records) or _recorded_cni_change(record)
    adm = client.AdmissionregistrationV1Api(api)
    for kind, lister in (("ValidatingAdmissionPolicyBinding", adm.list_validating_admission_policy_binding),
                         ("ValidatingAdmissionPolicy", adm.list_validating_admission_policy)):
        try:
            items = lister().items
        except ApiException as e:
            if e.status == 404:
                continue
            raise _api_error(e, f"list {kind}s") from None
        d.gateway_api_policies += [Obj(kind, i.metadata.name, "", "admissionregistration.k8s.io/v1")
                                   for i in items if i.metadata.name.endswith("." + GATEWAY_API_GROUP)]

    d.releases = list_releases(helm, kubeconfig, context, env)

    _discover_istioctl(d, apps, core, ext_crds=crds, api=api)
    _discover_release_namespaces(d, core, apps, kubeconfig, context, helm, env)
    return d


def _istioctl_owned(meta) -> bool:
    labels, ann = meta.labels or {}, meta.annotations or {}
    return bool(labels.get(ISTIOCTL_LABEL)) and HELM_RELEASE_ANNOTATION not in ann


def _discover_istioctl(d: Discovery, apps, core, ext_crds, api) -> None:
    """What an `istioctl install` left: objects labelled operator.istio.io/component that no
    helm release annotates."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    d.istioctl_crds = sorted(c.metadata.name for c in ext_crds
                             if c.metadata.name in d.istio_crds and _istioctl_owned(c.metadata))
    rbac, adm = client.RbacAuthorizationV1Api(api), client.AdmissionregistrationV1Api(api)
    ns, sel = d.istio_namespace, ISTIOCTL_LABEL
    listers = [("MutatingWebhookConfiguration", "admissionregistration.k8s.io/v1", "",
                lambda: adm.list_mutating_webhook_configuration(label_selector=sel)),
               ("ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1", "",
                lambda: adm.list_validating_webhook_configuration(label_selector=sel)),
               ("ClusterRole", "rbac.authorization.k8s.io/v1", "",
                lambda: rbac.list_cluster_role(label_selector=sel)),
               ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "",
                lambda: rbac.list_cluster_role_binding(label_selector=sel))]
    if d.istio_namespace_exists:
        listers = [("Deployment", "apps/v1", ns, lambda: apps.list_namespaced_deployment(ns, label_selector=sel)),
                   ("DaemonSet", "apps/v1", ns, lambda: apps.list_namespaced_daemon_set(ns, label_selector=sel)),
                   ("Service", "v1", ns, lambda: core.list_namespaced_service(ns, label_selector=sel)),
                   ("ConfigMap", "v1", ns, lambda: core.list_namespaced_config_map(ns, label_selector=sel)),
                   ("ServiceAccount", "v1", ns,
                    lambda: core.list_namespaced_service_account(ns, label_selector=sel))] + listers
    found: list[Obj] = []
    for kind, api_version, namespace, lister in listers:
        try:
            items = lister().items
        except ApiException as e:
            raise _api_error(e, f"list {kind}s labelled {ISTIOCTL_LABEL}") from None
        found += [Obj(kind, i.metadata.name, namespace, api_version) for i in items if _istioctl_owned(i.metadata)]
    # Workloads decide: webhooks or roles alone (a half-removed install) still count.
    d.istioctl_resources = found


def _discover_release_namespaces(d: Discovery, core, apps, kubeconfig, context, helm, env) -> None:
    """A namespace holding Istio releases other than istio-system (istio-ingress): delete it
    when the releases are the last thing in it; keep it, and say why, otherwise."""
    from kubernetes.client.rest import ApiException

    namespaces = sorted({r.namespace for r in d.releases} - {d.istio_namespace})
    if not namespaces:
        return
    others: dict[str, list[str]] = {}
    try:
        items = json.loads(_helm(["list", "-A", "-a", "-o", "json", *_kube_flags(kubeconfig, context, "helm")],
                                 helm, env) or "[]") or []
    except DiscoveryError:
        items = []
    istio = {(r.namespace, r.name) for r in d.releases}
    for item in items:
        if (item.get("namespace"), item.get("name")) not in istio:
            others.setdefault(item.get("namespace", ""), []).append(item.get("name", ""))
    for ns in namespaces:
        owned = {(o.kind, o.name) for r in d.releases if r.namespace == ns for o in r.resources}
        if ns in d.enrolled_namespaces:
            d.release_namespaces_kept[ns] = "it is enrolled in the mesh, so it holds workloads"
            continue
        if others.get(ns):
            d.release_namespaces_kept[ns] = f"it also holds helm release(s) {', '.join(sorted(others[ns]))}"
            continue
        try:
            found = ([("Deployment", x) for x in apps.list_namespaced_deployment(ns).items]
                     + [("StatefulSet", x) for x in apps.list_namespaced_stateful_set(ns).items]
                     + [("DaemonSet", x) for x in apps.list_namespaced_daemon_set(ns).items]
                     + [("Service", x) for x in core.list_namespaced_service(ns).items]
                     + [("ConfigMap", x) for x in core.list_namespaced_config_map(ns).items]
                     + [("ServiceAccount", x) for x in core.list_namespaced_service_account(ns).items]
                     + [("Secret", x) for x in core.list_namespaced_secret(ns).items]
                     + [("Pod", x) for x in core.list_namespaced_pod(ns).items])
        except ApiException as e:
            if e.status == 404:
                continue
            raise _api_error(e, f"list what is in namespace {ns}") from None
        extra = []
        for kind, x in found:
            meta = x.metadata
            if (kind, meta.name) in owned or (kind, meta.name) in NAMESPACE_DEFAULTS:
                continue
            if kind == "Secret" and (x.type == "helm.sh/release.v1" or x.type ==
                                     "kubernetes.io/service-account-token"):
                continue
            if kind == "Pod" and any(ref.kind in ("ReplicaSet", "DaemonSet", "StatefulSet")
                                     for ref in meta.owner_references or []):
                continue  # a workload's pod: the workload itself decides
            extra.append(f"{kind} {meta.name}")
        if extra:
            shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
            d.release_namespaces_kept[ns] = f"it also holds {shown}"
        else:
            d.release_namespaces_to_delete.append(ns)


def read_record(core) -> dict:
    """The install record's fields ({} when absent or unreadable: then only labels count)."""
    from kubernetes.client.rest import ApiException

    from ambient_tui.plans import install_record

    try:
        cm = core.read_namespaced_config_map(install_record.NAME, install_record.NAMESPACE)
    except ApiException as e:
        if e.status in (403, 404):
            return {}
        raise _api_error(e, f"read configmap {install_record.NAMESPACE}/{install_record.NAME}") from None
    return install_record.decode(cm.data)


def _recorded_cni_change(record: dict) -> EnforcingModeChange | None:
    from ambient_tui.checks.vpc_cni import RECORD_PREFIX, parse_record

    data = record.get("vpc-cni")
    return parse_record([RECORD_PREFIX + json.dumps(data)]) if isinstance(data, dict) else None


# --- the plan ------------------------------------------------------------------------------

def gateway_api_decision(d: Discovery, opts: Options) -> tuple[bool, str]:
    """(remove the Gateway API CRDs?, why or why not). Removal is part of --purge-crds."""
    if not d.gateway_api_crds:
        return False, "no Gateway API CRDs are installed"
    if not opts.purge_crds:
        return False, "Gateway API CRDs are kept (pass --purge-crds to consider removing them)"
    if not d.gateway_api_by_tool:
        return False, ("Gateway API CRDs are kept: this tool did not install them (none is labelled "
                       f"{MANAGED_BY}={TOOL} or named in its record), so something else owns them")
    if d.gateway_api_users:
        shown = ", ".join(o.ref for o in d.gateway_api_users[:5])
        more = f" and {len(d.gateway_api_users) - 5} more" if len(d.gateway_api_users) > 5 else ""
        return False, (f"Gateway API CRDs are kept: {len(d.gateway_api_users)} object(s) still use "
                       f"them ({shown}{more}); deleting the CRDs would delete those objects")
    return True, "installed by this tool and nothing uses them"


def _slug(*parts: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", "-".join(p for p in parts if p).lower()).strip("-")


def wait_crds_gone(names: list[str], kubeconfig: str | None = None, context: str | None = None,
                   timeout: float = 240.0) -> ApiCall:
    """Poll until the CRDs are gone. (`kubectl delete crd` with its own wait can hang after the
    CRDs are already gone, so the delete step runs with --wait=false and this step waits.)"""
    def func() -> list[str]:
        from kubernetes import client

        ext = client.ApiextensionsV1Api(api_client(kubeconfig, context))
        seen = crd_cleanup.wait_crds_gone(ext, names, timeout)
        return [f"{len(names)} CRDs gone", *seen.summary()]

    return ApiCall(f"GET apiextensions.k8s.io/v1 CustomResourceDefinition until gone: {', '.join(names)}"
                   f" (a stalled clean-up gets its {crd_cleanup.RETRY_ANNOTATION} annotation bumped)", func)


def wait_objects_gone(objs: list[Obj], crds: list[str], kubeconfig: str | None = None,
                      context: str | None = None, timeout: float = 240.0) -> ApiCall:
    """Poll until these objects and CRDs are gone (404 on each read)."""
    def func() -> list[str]:
        import time

        from kubernetes import client
        from kubernetes.client.rest import ApiException

        api = api_client(kubeconfig, context)
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        rbac, adm = client.RbacAuthorizationV1Api(api), client.AdmissionregistrationV1Api(api)
        # The kinds istioctl install creates (see _discover_istioctl).
        readers = {"Deployment": apps.read_namespaced_deployment, "DaemonSet": apps.read_namespaced_daemon_set,
                   "Service": core.read_namespaced_service, "ConfigMap": core.read_namespaced_config_map,
                   "ServiceAccount": core.read_namespaced_service_account,
                   "ClusterRole": rbac.read_cluster_role, "ClusterRoleBinding": rbac.read_cluster_role_binding,
                   "MutatingWebhookConfiguration": adm.read_mutating_webhook_configuration,
                   "ValidatingWebhookConfiguration": adm.read_validating_webhook_configuration}

        def exists(o: Obj) -> bool:
            read = readers.get(o.kind)
            if read is None:
                return False
            try:
                read(o.name, o.namespace, _request_timeout=15) if o.namespace else read(o.name, _request_timeout=15)
            except ApiException as e:
                if e.status == 404:
                    return False
                raise
            return True

        deadline = time.monotonic() + timeout
        while left := [o.ref for o in objs if exists(o)]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"still present after {timeout:g}s: {', '.join(left[:10])}")
            time.sleep(1)
        ext = client.ApiextensionsV1Api(api)
        seen = crd_cleanup.wait_crds_gone(ext, crds, max(deadline - time.monotonic(), 0.0))
        return [f"{len(objs)} objects and {len(crds)} CRDs gone", *seen.summary()]

    return ApiCall(f"GET {len(objs)} istioctl-installed objects and {len(crds)} CRDs until gone", func)


def build_uninstall_plan(d: Discovery, opts: Options | None = None, context: str | None = None,
                         kubeconfig: str | None = None) -> Plan:
    opts = opts or Options()
    # The kubeconfig is passed on: the steps must act on the cluster that was discovered.
    kcfg = ["--kubeconfig", kubeconfig] if kubeconfig else []
    kctl = ["kubectl", *kcfg, *(["--context", context] if context else [])]
    helm = ["helm", *kcfg, *(["--kube-context", context] if context else [])]
    plan = Plan(title=f"Uninstall Istio ambient from {d.cluster or 'the cluster'}",
                meta={"cluster": d.cluster, "purge_crds": str(opts.purge_crds).lower(),
                      "keep_namespace_labels": str(opts.keep_namespace_labels).lower()})

    if not opts.keep_namespace_labels and d.enrolled_namespaces:
        plan.phases.append(Phase("unenrol", "Unenrol namespaces (their traffic loses mTLS)", [
            Step(f"unenrol-{_slug(ns)}", f"unenrol namespace {ns}", timeout=60,
                 argv=[*kctl, "label", "namespace", ns, *[f"{k}-" for k in labels or [AMBIENT_LABEL]]],
                 note="traffic in this namespace is no longer encrypted with mTLS")
            for ns, labels in sorted(d.enrolled_namespaces.items())]))
    if d.waypoints:
        plan.phases.append(Phase("waypoints", "Delete waypoints", [
            Step(f"waypoint-{_slug(w.namespace, w.name)}", f"delete waypoint {w.namespace}/{w.name}",
                 timeout=120, argv=[*kctl, "delete", f"gateways.{GATEWAY_API_GROUP}", w.name,
                                    "-n", w.namespace, "--ignore-not-found"])
            for w in d.waypoints]))
    if d.releases:
        names = [r.name for r in d.releases]
        plan.phases.append(Phase("releases", "Remove Istio (gateway, ztunnel, istio-cni, istiod, base)", [
            Step(f"helm-uninstall-{_slug(r.name) if names.count(r.name) == 1 else _slug(r.namespace, r.name)}",
                 f"helm uninstall {r.name} ({r.chart}) in {r.namespace}", timeout=600,
                 argv=[*helm, "uninstall", r.name, "--namespace", r.namespace, "--wait", "--timeout", "5m"])
            for r in sorted(d.releases, key=lambda r: (r.rank, r.namespace, r.name))]))
    elif d.istioctl_install:
        plan.phases.append(Phase("istioctl", "Remove the istioctl install", [
            Step("istioctl-uninstall", "istioctl uninstall --purge (also removes its Istio CRDs)",
                 timeout=600, argv=["istioctl", "uninstall", "--purge", "-y", *kcfg,
                                    *(["--context", context] if context else [])],
                 note="every Istio custom resource in the cluster is deleted with its CRD"),
            # istioctl returns while the deletions are still in progress.
            Step("wait-istioctl-gone", "wait until the istioctl install is gone", timeout=300,
                 api=wait_objects_gone(d.istioctl_resources, d.istioctl_crds, kubeconfig, context))]))
    purge = [n for n in d.istio_crds if not (d.istioctl_install and n in d.istioctl_crds)]
    if opts.purge_crds and purge:
        plan.phases.append(Phase("istio-crds", "Purge the Istio CRDs", [
            Step("purge-istio-crds", f"delete {len(purge)} Istio CRDs", timeout=300,
                 argv=[*kctl, "delete", "customresourcedefinition", *purge, "--ignore-not-found",
                       "--wait=false"],
                 note="every Istio custom resource in the cluster is deleted with its CRD"),
            Step("wait-istio-crds", "wait until the Istio CRDs are gone", timeout=300,
                 api=wait_crds_gone(purge, kubeconfig, context))]))
    remove_gw, _ = gateway_api_decision(d, opts)
    if remove_gw:
        plan.phases.append(Phase("gateway-api-crds", "Remove the Gateway API CRDs", [
            Step("delete-gateway-api-crds", f"delete {len(d.gateway_api_owned)} Gateway API CRDs this tool created",
                 timeout=300, argv=[*kctl, "delete", "customresourcedefinition", *d.gateway_api_owned,
                                    "--ignore-not-found", "--wait=false"]),
             Step("wait-gateway-api-crds", "wait until the Gateway API CRDs are gone", timeout=300,
                  api=wait_crds_gone(d.gateway_api_owned, kubeconfig, context))]
            + ([Step("delete-gateway-api-policies", "delete the Gateway API admission policies", timeout=60,
                     argv=[*kctl, "delete", ",".join(sorted({f"{resource_of(o)[1]}.{resource_of(o)[0]}"
                                                             for o in d.gateway_api_policies})),
                           *sorted({o.name for o in d.gateway_api_policies}), "--ignore-not-found"])]
               if d.gateway_api_policies else [])))
    if d.netpols:
        plan.phases.append(Phase("netpols", "Delete NetworkPolicies created by ambient-tui", [
            Step(f"netpol-{_slug(p.namespace, p.name)}", f"delete NetworkPolicy {p.namespace}/{p.name}",
                 timeout=60, argv=[*kctl, "delete", "networkpolicy", p.name, "-n", p.namespace,
                                   "--ignore-not-found"])
            for p in d.netpols]))
    namespaces = [*d.release_namespaces_to_delete, *([d.istio_namespace] if d.istio_namespace_exists else [])]
    if namespaces:
        plan.phases.append(Phase("namespace", f"Delete the {' and '.join(namespaces)} namespace"
                                 + ("s" if len(namespaces) > 1 else ""), [
            Step(f"namespace-{_slug(ns)}", f"delete namespace {ns}", timeout=300,
                 argv=[*kctl, "delete", "namespace", ns, "--ignore-not-found",
                       "--wait=true", "--timeout=5m"])
            for ns in namespaces]))
    if opts.revert_cni and d.cni_change is not None:
        from ambient_tui.cluster.client import load_client

        plan.phases.append(Phase("revert-cni", "Revert the VPC CNI change", revert_enforcing_mode_steps(
            lambda: load_client(kubeconfig, context), d.cni_change)))
    if d.install_record:
        plan.phases.append(Phase("record", "This tool's install record", [
            forget_record_step(kubeconfig, context, keep_cni=d.cni_change is not None and not opts.revert_cni)]))
    return plan


def forget_record_step(kubeconfig: str | None, context: str | None, keep_cni: bool) -> Step:
    """Delete kube-system/ambient-tui-install; keep only its VPC CNI entry while that change is
    still in force (a later `uninstall --revert-cni` from any machine needs it)."""
    from ambient_tui.plans import install_record as rec

    def func() -> list[str]:
        from ambient_tui.cluster.client import load_client

        kube = load_client(kubeconfig, context)
        if keep_cni:
            cni = rec.read(kube).get("vpc-cni")
            fields = {k: None for k in rec.read(kube) if k != "vpc-cni"}
            rec.update(kube, **fields, **({"vpc-cni": cni} if cni else {}))
            return [f"configmap {rec.NAMESPACE}/{rec.NAME}: only the VPC CNI change is kept (not reverted)"]
        rec.delete(kube)
        return [f"configmap {rec.NAMESPACE}/{rec.NAME} deleted"]

    what = ("keep only the VPC CNI entry of" if keep_cni else "delete")
    return Step("forget-install-record", f"{what} ConfigMap {rec.NAMESPACE}/{rec.NAME}", timeout=60,
                kind="record", api=ApiCall(f"{'PUT' if keep_cni else 'DELETE'} v1 ConfigMap "
                                           f"{rec.NAMESPACE}/{rec.NAME}", func))


def deletion_list(d: Discovery, opts: Options | None = None) -> list[str]:
    """Exactly what the plan removes, one `Kind name` (or label change) a line, in plan order."""
    opts = opts or Options()
    out: list[str] = []
    if not opts.keep_namespace_labels:
        for ns, labels in sorted(d.enrolled_namespaces.items()):
            out.append(f"label {','.join(labels or [AMBIENT_LABEL])} on Namespace {ns} "
                       "(its traffic loses mTLS)")
    out += [f"{w.ref} (waypoint)" for w in d.waypoints]
    for r in sorted(d.releases, key=lambda r: (r.rank, r.namespace, r.name)):
        out.append(f"HelmRelease {r.namespace}/{r.name} ({r.chart} {r.version})".rstrip())
        out += [f"  {o.ref}" for o in r.resources]
    if d.istioctl_install:
        out.append("istioctl install (istioctl uninstall --purge):")
        out += [f"  {o.ref}" for o in d.istioctl_resources]
        out += [f"  CustomResourceDefinition {n}" for n in d.istioctl_crds]
    if opts.purge_crds:
        out += [f"CustomResourceDefinition {n}" for n in d.istio_crds
                if not (d.istioctl_install and n in d.istioctl_crds)]
    if gateway_api_decision(d, opts)[0]:
        out += [f"CustomResourceDefinition {n}" for n in d.gateway_api_owned]
        out += [o.ref for o in d.gateway_api_policies]
    out += [p.ref for p in d.netpols]
    out += [f"Namespace {ns} (the gateway release was the last thing in it)"
            for ns in d.release_namespaces_to_delete]
    if d.istio_namespace_exists:
        out.append(f"Namespace {d.istio_namespace} (and everything left in it)")
    if opts.revert_cni and d.cni_change is not None:
        out.append(f"revert VPC CNI enforcing mode to {d.cni_change.shown} ({d.cni_change.where})")
    if d.install_record and not (d.cni_change is not None and not opts.revert_cni):
        out.append("ConfigMap kube-system/ambient-tui-install (this tool's install record)")
    return out


def kept_list(d: Discovery, opts: Options | None = None) -> list[str]:
    """What stays, and why: shown next to the deletion list."""
    opts = opts or Options()
    out = []
    if opts.keep_namespace_labels and d.enrolled_namespaces:
        out.append("namespace labels kept (--keep-namespace-labels): " + ", ".join(sorted(d.enrolled_namespaces)))
    kept_crds = [n for n in d.istio_crds if not (d.istioctl_install and n in d.istioctl_crds)]
    if kept_crds and not opts.purge_crds:
        out.append(f"{len(kept_crds)} Istio CRDs kept (pass --purge-crds to delete them)")
    if d.gateway_api_crds:
        remove, why = gateway_api_decision(d, opts)
        if not remove:
            out.append(why)
    out += [f"namespace {ns} is kept: {why}" for ns, why in sorted(d.release_namespaces_kept.items())]
    if d.cni_change is not None and not opts.revert_cni:
        out.append(f"VPC CNI enforcing mode stays standard (this tool changed it from {d.cni_change.shown}; "
                   "pass --revert-cni to put it back)")
    if d.opted_out_pods:
        out.append(f"{len(d.opted_out_pods)} pod(s) keep their {AMBIENT_LABEL}=none label "
                   "(harmless without Istio): " + ", ".join(p.ref for p in d.opted_out_pods[:5]))
    return out


# --- permissions ---------------------------------------------------------------------------

# Irregular plurals; the rest is kind.lower() + "s" / "ies" / "es".
_PLURALS = {"Endpoints": "endpoints", "NetworkPolicy": "networkpolicies",
            "PodDisruptionBudget": "poddisruptionbudgets"}


def resource_of(obj: Obj) -> tuple[str, str]:
    """(API group, plural resource) of an object."""
    group = obj.api_version.rpartition("/")[0] if "/" in obj.api_version else ""
    k = obj.kind
    plural = _PLURALS.get(k) or (k.lower()[:-1] + "ies" if k.endswith("y") and k[-2:-1] not in "aeiou"
                                 else k.lower() + ("es" if k.endswith("s") else "s"))
    return group, plural


@dataclass(frozen=True)
class Permission:
    verb: str
    group: str
    resource: str
    namespace: str = ""
    name: str = ""

    def __str__(self) -> str:
        res = f"{self.resource}.{self.group}" if self.group else self.resource
        where = f" in namespace {self.namespace}" if self.namespace else " (cluster-wide)"
        return f"{self.verb} {res}{' ' + self.name if self.name else ''}{where}"


DISCOVERY_PERMISSIONS = [
    Permission("list", "apiextensions.k8s.io", "customresourcedefinitions"),
    Permission("list", "", "namespaces"),
    Permission("list", "", "pods"),
    Permission("list", "networking.k8s.io", "networkpolicies"),
    Permission("list", "", "secrets"),  # helm list -A reads the release secrets
]


def required_permissions(d: Discovery, opts: Options | None = None) -> list[Permission]:
    """Everything the plan will do, as access-review questions; asked before the first delete."""
    opts = opts or Options()
    perms: list[Permission] = []
    if not opts.keep_namespace_labels:
        perms += [Permission("patch", "", "namespaces", name=ns) for ns in sorted(d.enrolled_namespaces)]
    perms += [Permission("delete", GATEWAY_API_GROUP, "gateways", w.namespace, w.name) for w in d.waypoints]
    for r in d.releases:
        perms += [Permission("get", "", "secrets", r.namespace), Permission("delete", "", "secrets", r.namespace)]
        for o in r.resources:
            g, res = resource_of(o)
            perms.append(Permission("delete", g, res, o.namespace, o.name))
    if opts.purge_crds:
        perms += [Permission("delete", "apiextensions.k8s.io", "customresourcedefinitions", name=n)
                  for n in d.istio_crds]
    if gateway_api_decision(d, opts)[0]:
        perms += [Permission("delete", "apiextensions.k8s.io", "customresourcedefinitions", name=n)
                  for n in d.gateway_api_owned]
        perms += [Permission("delete", *resource_of(o), name=o.name) for o in d.gateway_api_policies]
    if d.istioctl_install:
        for o in d.istioctl_resources:
            perms.append(Permission("delete", *resource_of(o), o.namespace, o.name))
        perms += [Permission("delete", "apiextensions.k8s.io", "customresourcedefinitions", name=n)
                  for n in d.istioctl_crds]
    perms += [Permission("delete", "networking.k8s.io", "networkpolicies", p.namespace, p.name) for p in d.netpols]
    perms += [Permission("delete", "", "namespaces", name=ns) for ns in d.release_namespaces_to_delete]
    if d.istio_namespace_exists:
        perms.append(Permission("delete", "", "namespaces", name=d.istio_namespace))
    if opts.revert_cni and d.cni_change is not None and not d.cni_change.managed:
        perms.append(Permission("patch", "apps", "daemonsets", "kube-system", "aws-node"))
    return list(dict.fromkeys(perms))


def denied_permissions(api, perms: list[Permission]) -> list[Permission]:
    """The permissions a SelfSubjectAccessReview says the current user lacks."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    authz = client.AuthorizationV1Api(api)
    denied = []
    for p in perms:
        body = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                verb=p.verb, group=p.group, resource=p.resource,
                namespace=p.namespace or None, name=p.name or None)))
        try:
            if not authz.create_self_subject_access_review(body).status.allowed:
                denied.append(p)
        except ApiException as e:
            raise _api_error(e, "ask the API server what this user may do (SelfSubjectAccessReview)") from None
    return denied


# --- verification --------------------------------------------------------------------------

@dataclass(frozen=True)
class Leftover:
    what: str
    command: str


def verify(before: Discovery, after: Discovery, opts: Options | None = None,
           context: str | None = None, cni_mode_now: tuple[bool, str | None] | None = None) -> list[Leftover]:
    """What is still there of what the plan was asked to remove, each with the command to do it.

    `cni_mode_now` is (read?, value) of the enforcing mode after the run, for --revert-cni."""
    opts = opts or Options()
    k = "kubectl" + (f" --context {context}" if context else "")
    h = "helm" + (f" --kube-context {context}" if context else "")
    left = [Leftover(f"HelmRelease {r.namespace}/{r.name}", f"{h} uninstall {r.name} -n {r.namespace}")
            for r in after.releases]
    if after.istio_namespace_exists:
        left.append(Leftover(f"Namespace {after.istio_namespace}", f"{k} delete namespace {after.istio_namespace}"))
    if opts.purge_crds:
        left += [Leftover(f"CustomResourceDefinition {n}", f"{k} delete crd {n}") for n in after.istio_crds]
    if gateway_api_decision(before, opts)[0]:
        left += [Leftover(f"CustomResourceDefinition {n}", f"{k} delete crd {n}") for n in after.gateway_api_crds
                 if n in before.gateway_api_owned]
        left += [Leftover(o.ref, f"{k} delete {resource_of(o)[1]} {o.name}") for o in after.gateway_api_policies]
    if not opts.keep_namespace_labels:
        left += [Leftover(f"label {AMBIENT_LABEL} on Namespace {ns}",
                          f"{k} label namespace {ns} " + " ".join(f"{l}-" for l in labels or [AMBIENT_LABEL]))
                 for ns, labels in sorted(after.enrolled_namespaces.items())]
    left += [Leftover(f"{w.ref} (waypoint)", f"{k} delete gateways.{GATEWAY_API_GROUP} {w.name} -n {w.namespace}")
             for w in after.waypoints]
    left += [Leftover(p.ref, f"{k} delete networkpolicy {p.name} -n {p.namespace}") for p in after.netpols]
    if not after.releases:
        left += [Leftover(o.ref, "istioctl uninstall --purge -y") for o in after.istioctl_resources]
    if before.istioctl_install:
        left += [Leftover(f"CustomResourceDefinition {n}", f"{k} delete crd {n}")
                 for n in after.istio_crds if n in before.istioctl_crds and not opts.purge_crds]
    ns_left = {n for n in before.release_namespaces_to_delete} & after_namespaces(after)
    left += [Leftover(f"Namespace {n}", f"{k} delete namespace {n}") for n in sorted(ns_left)]
    change = before.cni_change
    if opts.revert_cni and change is not None and cni_mode_now is not None:
        read, now = cni_mode_now
        if not read or now != change.previous:
            left.append(Leftover(f"VPC CNI enforcing mode is {now if read else 'unknown'}, "
                                 f"not {change.shown}", revert_command(change)))
    return left


def after_namespaces(d: Discovery) -> set[str]:
    """Release namespaces that still exist, as discovery saw them."""
    return set(d.namespaces_seen)
