"""The preflight checks. Each is a blocking function (ctx) -> Check, run in a thread."""

from __future__ import annotations

import json
import subprocess

from ambient_tui.catalog import parse_version
from ambient_tui.checks import parsers, precheck, scheduling, vpc_cni
from ambient_tui.checks.model import FAIL, PASS, SKIP, WARN, Check, CheckContext, Skip

ISTIOD_REQUESTS = {"cpu": 0.5, "memory": 2 * 2**30}  # istiod chart default requests
SUPPORTED_ARCH = {"amd64", "arm64"}


def cluster_access(ctx: CheckContext) -> Check:
    """The pinned target answers, and not anonymously: /version is public, so the check also
    asks who the API server thinks this is (SelfSubjectReview)."""
    t = "Cluster access"
    fixes = {"unknown-context": "kubectl config get-contexts; pass --context NAME or "
                                "`aws eks update-kubeconfig --name CLUSTER`",
             "no-kubeconfig": "aws eks update-kubeconfig --name CLUSTER --region REGION",
             "unauthorized": "aws eks update-kubeconfig --name CLUSTER (refresh the token)",
             "unreachable": "check VPN/network and the cluster endpoint access (public/private)"}
    try:
        c = ctx.client()
        who = c.whoami()
    except Exception as e:  # noqa: BLE001
        kind = getattr(e, "kind", "error")
        if kind == "forbidden" and ctx.target is not None:
            return Check("cluster-access", t, FAIL, f"{ctx.target.describe()}: the API server answers, "
                         "but not to this user (403 on SelfSubjectReview: no credentials, anonymous)",
                         "give the kubeconfig user a token, certificate or exec plugin "
                         "(`aws eks update-kubeconfig --name CLUSTER`)", data={"kind": "anonymous"})
        return Check("cluster-access", t, FAIL, getattr(e, "message", None) or str(e),
                     getattr(e, "fix", "") or fixes.get(kind, ""), data={"kind": kind})
    if who == "system:anonymous":
        return Check("cluster-access", t, FAIL, f"{ctx.target.describe()}: the API server sees "
                     "system:anonymous: the kubeconfig user gives no credentials",
                     "give the kubeconfig user a token, certificate or exec plugin", data={"kind": "anonymous"})
    as_who = f" as {who}" if who else ""
    return Check("cluster-access", t, PASS, f"context {c.context} at {c.server} answers{as_who} "
                 f"(Kubernetes {ctx.server_version})",
                 data={"context": c.context, "server": c.server, "user": who})


def kubernetes_version(ctx: CheckContext) -> Check:
    t = "Kubernetes version"
    ctx.cluster()
    v = ctx.server_version or ""
    lo, hi = ctx.release.kubernetes
    detail = f"server {v}; Istio {ctx.version} supports Kubernetes {lo}-{hi}"
    if ctx.release.is_eol():
        detail += f"; note: Istio {ctx.release.minor} reached end of life on {ctx.release.eol}"
    detail += _eks_platform_note(ctx)
    if ctx.release.supports_kubernetes(v):
        return Check("kubernetes-version", t, PASS, detail)
    newer = [r.minor for r in ctx.catalog.releases if r.supports_kubernetes(v)]
    return Check("kubernetes-version", t, FAIL, detail,
                 f"choose an Istio release that supports {v}: {', '.join(newer) or 'none in the catalogue'}"
                 " (--istio-version), or upgrade the cluster")


def _eks_platform_note(ctx: CheckContext) -> str:
    """A note like "; EKS 1.34 platform eks.5" when AWS is configured and the context is EKS.

    No minimum platform version is documented for Istio ambient, so this only reports it.
    """
    from ambient_tui.aws import eks

    try:
        ref, cl = _eks_cluster(ctx)
    except Skip:
        return ""
    except eks.AwsError as e:
        return f"; EKS platform version unknown ({e})"
    return f"; EKS {cl.get('version')} platform {cl.get('platformVersion') or 'unknown'}"


def helm_tool(ctx: CheckContext) -> Check:
    from ambient_tui.tools.versions import ToolError, detect

    t = "helm"
    need = ctx.settings.method == "helm"
    try:
        tv = detect("helm", ctx.env)
    except ToolError as e:
        return Check("helm", t, FAIL if need else WARN, str(e), "install helm >= 3.6: https://helm.sh/docs/intro/install/")
    detail = f"helm {tv.version} at {tv.path}"
    if tv.parsed < (3, 6):
        return Check("helm", t, FAIL if need else WARN, detail + "; helm >= 3.6 is needed",
                     "install helm >= 3.6: https://helm.sh/docs/intro/install/")
    if tv.parsed[0] >= 4 and not ctx.release.helm4_supported:
        return Check("helm", t, FAIL if need else WARN,
                     detail + f"; Helm 4 is supported from Istio 1.30, not {ctx.version}",
                     "use helm 3 (>= 3.6), or choose Istio >= 1.30")
    fixed = ctx.release.quirks.get("helm4_fixed_in")
    if tv.parsed[0] >= 4 and fixed and parse_version(ctx.version) < parse_version(fixed):
        return Check("helm", t, WARN, detail + f"; Helm 4 webhook failurePolicy conflicts are fixed in {fixed}",
                     f"use Istio {fixed} or helm 3")
    return Check("helm", t, PASS, detail)


def istioctl_tool(ctx: CheckContext) -> Check:
    from ambient_tui.tools.versions import ToolError, detect

    t = "istioctl"
    need = ctx.settings.method == "istioctl"
    url = f"curl -sL https://istio.io/downloadIstio | ISTIO_VERSION={ctx.version} sh -"
    try:
        tv = detect("istioctl", ctx.env)
    except ToolError as e:
        return Check("istioctl", t, FAIL if need else WARN,
                     f"{e} (needed for the istioctl method and for verification)", url)
    detail = f"istioctl {tv.version} at {tv.path}; release {ctx.version}"
    if tv.parsed[:2] != parse_version(ctx.version)[:2]:
        # The istioctl method installs the manifests built into istioctl: another minor would
        # install the wrong Istio. With helm the charts decide; istioctl only verifies.
        if need:
            return Check("istioctl", t, FAIL, detail + "; the minor versions differ and the istioctl "
                         "method installs istioctl's own version", url, data={"version": tv.version})
        return Check("istioctl", t, WARN, detail + "; the minor versions differ (helm installs the "
                     "charts; istioctl is used only for precheck and verification)", url,
                     data={"version": tv.version})
    return Check("istioctl", t, PASS, detail, data={"version": tv.version})


def _aws_target(ctx: CheckContext):
    """(context name, its server URL, ClusterRef) from the kubeconfig alone: the AWS calls need
    no Kubernetes client, so they run while the other checks are still connecting."""
    from ambient_tui.aws import eks

    if not eks.aws_configured():
        raise Skip("no AWS configuration (credentials/profile); EKS checks skipped")
    name, server = ctx.kube_context()
    ref = eks.cluster_from_context(name, ctx.target.config)
    if ref is None:
        raise Skip(f"context {name} names no EKS cluster (not an EKS ARN, no --cluster-name)")
    if ref.region is None and ctx.target.aws_region:
        ref = eks.ClusterRef(ref.name, ctx.target.aws_region)
    return name, server, ref


def _eks_cluster(ctx: CheckContext):
    """(ClusterRef, DescribeCluster) once per preflight; Skip without AWS/EKS."""
    from ambient_tui.aws import eks

    _, _, ref = _aws_target(ctx)
    return ref, ctx.memo("eks-describe-cluster", lambda: eks.describe_cluster(ref.name, ref.region))


def aws_eks(ctx: CheckContext) -> Check:
    from ambient_tui.aws import eks

    t = "AWS identity and EKS cluster"
    _, server, ref = _aws_target(ctx)
    try:
        ident = eks.identity(ref.region)
        _, cl = _eks_cluster(ctx)
    except eks.AwsError as e:
        profile = eks.current_profile()
        return Check("aws-eks", t, FAIL, str(e) + (f" (profile {profile})" if profile else ""),
                     "check AWS credentials (aws sts get-caller-identity"
                     + (f" --profile {profile}" if profile else "") + ") and the cluster name/region")
    endpoint = (cl.get("endpoint") or "").rstrip("/")
    profile = eks.current_profile()
    via = f" (profile {profile}, from the kubeconfig's exec env)" if profile else ""
    detail = (f"identity {ident.get('Arn')}{via}; EKS {ref.name} ({ref.region}) Kubernetes {cl.get('version')} "
              f"platform {cl.get('platformVersion')}, status {cl.get('status')}")
    if endpoint.lower() != (server or "").rstrip("/").lower():
        return Check("aws-eks", t, FAIL, detail + f"; EKS endpoint {endpoint} differs from the kube "
                     f"context server {server}", f"aws eks update-kubeconfig --name {ref.name} --region {ref.region}")
    return Check("aws-eks", t, PASS, detail + "; endpoint matches the kube context",
                 data={"cluster": ref.name, "region": ref.region,
                       "platform_version": cl.get("platformVersion")})


def vpc_cni_check(ctx: CheckContext) -> Check:
    from ambient_tui.aws import eks

    kube = ctx.cluster()
    cluster = region = None
    aws = False
    try:
        _, _, ref = _aws_target(ctx)
        cluster, region, aws = ref.name, ref.region, True
    except Skip:
        pass
    del eks
    facts = vpc_cni.gather(kube, cluster, region, aws)
    return vpc_cni.decide(facts, ctx.release, ctx.version)


def start_helm_list(env: dict | None, kubeconfig: str | None = None,
                    context: str | None = None) -> subprocess.Popen:
    """`helm list -A -a -o json`, started; finish_helm_list() collects it."""
    from ambient_tui.tools import helm

    return helm.start(["list", "-A", "-a", "-o", "json"], env, kubeconfig, context)


def finish_helm_list(proc: subprocess.Popen, timeout: float = 20) -> list[dict]:
    from ambient_tui.tools import helm

    return parsers.parse_helm_list(helm.finish(proc, "list", timeout))


def helm_list(env: dict | None, kubeconfig: str | None = None, context: str | None = None,
              timeout: float = 20) -> list[dict]:
    return finish_helm_list(start_helm_list(env, kubeconfig, context), timeout)


def existing_istio(ctx: CheckContext) -> Check:
    t = "Existing Istio"
    # helm list starts from the kubeconfig alone, as precheck does, while the client connects.
    context, _server = ctx.kube_context()
    try:
        proc = start_helm_list(ctx.env, ctx.kubeconfig, context)
    except Exception as e:  # noqa: BLE001 - reported below as unknown releases
        proc, start_error = None, e
    try:
        kube = ctx.cluster()
    except Skip:
        if proc is not None:
            proc.kill()
            proc.communicate()
        raise
    notes, status, fix = [], PASS, ""
    try:
        if proc is None:
            raise start_error
        releases = parsers.istio_releases(finish_helm_list(proc))
    except Exception as e:  # noqa: BLE001
        releases = []
        notes.append(f"helm releases unknown ({e})")
        status = WARN
    ns = kube.get_namespace(ctx.settings.namespace)
    crds = [c.metadata.name for c in kube.list_crds() if c.metadata.name.endswith(".istio.io")]
    sidecar = [n.metadata.name for n in kube.list_namespaces()
               if (n.metadata.labels or {}).get("istio-injection") == "enabled"
               or "istio.io/rev" in (n.metadata.labels or {})]
    pending = [r for r in releases if r["status"].startswith("pending") or r["status"] == "failed"]
    if releases:
        notes.append("helm releases: " + ", ".join(f"{r['namespace']}/{r['name']} {r['chart']}-"
                                                   f"{r['chart_version']} {r['status']}" for r in releases))
    notes.append(f"namespace {ctx.settings.namespace}: {'present' if ns is not None else 'absent'}")
    notes.append(f"Istio CRDs: {len(crds)}")
    if sidecar:
        status = WARN
        notes.append("sidecar injection labels on: " + ", ".join(sidecar)
                     + " (sidecar and ambient pods can coexist; do not enrol these namespaces in ambient too)")
    if any(r["chart"] == "ambient" for r in releases):
        status = FAIL
        notes.append("installed with the istio/ambient wrapper chart: upgrade or remove it through that chart")
        fix = "helm upgrade/uninstall the release that uses istio/ambient"
    if pending:
        from ambient_tui.plans import repair

        status = FAIL
        try:
            histories = repair.stuck_releases(pending, ctx.env, ctx.kubeconfig, context)
        except Exception as e:  # noqa: BLE001 - then the advice is uninstall-and-retry
            histories = {}
            notes.append(f"helm history unknown ({e})")
        repairs = repair.find_repairs(None, pending, histories)
        fix = "; ".join(r.advice() for r in repairs)
        notes.append("stuck releases: " + ", ".join(f"{r['name']} ({r['status']})" for r in pending))
    istiod_mode = istiod_dataplane_mode(kube, ctx.settings.namespace)
    if istiod_mode and istiod_mode != "ambient":
        status = FAIL
        notes.append(f"istiod in {ctx.settings.namespace} runs in {istiod_mode} mode "
                     "(no PILOT_ENABLE_AMBIENT=true): installing ambient over it is a migration")
        fix = (f"the install refuses to turn this istiod into ambient: migrate by hand (see istio.io "
               f"'Migrate to ambient'), or uninstall it first (ambient-tui uninstall)")
    mode = "upgrade" if releases else ("unmanaged Istio resources present" if crds else "fresh install")
    notes.insert(0, f"mode: {mode}")
    return Check("existing-istio", t, status, "; ".join(notes), fix,
                 data={"releases": releases, "namespace": ns is not None, "crds": len(crds), "mode": mode,
                       "istiod_mode": istiod_mode})


def istiod_dataplane_mode(kube, namespace: str) -> str | None:
    """"ambient" when istiod runs with PILOT_ENABLE_AMBIENT=true, "sidecar" when it runs
    without, None when there is no istiod Deployment."""
    from ambient_tui.cluster.client import ClusterAccessError

    try:
        d = kube.get_json(f"/apis/apps/v1/namespaces/{namespace}/deployments/istiod", "reading istiod")
    except ClusterAccessError as e:
        if e.kind in ("not-found", "forbidden"):  # absent, or not ours to read: the RBAC check says so
            return None
        raise
    containers = (((d.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    c = next((c for c in containers if c.get("name") == "discovery"), containers[0] if containers else {})
    env = {e.get("name"): str(e.get("value", "")) for e in c.get("env") or []}
    return "ambient" if env.get("PILOT_ENABLE_AMBIENT", "").lower() == "true" else "sidecar"


# (verb, group, resource, namespaced)
RBAC_NEEDS = [
    ("create", "apiextensions.k8s.io", "customresourcedefinitions", False),
    ("update", "apiextensions.k8s.io", "customresourcedefinitions", False),
    ("create", "rbac.authorization.k8s.io", "clusterroles", False),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", False),
    ("create", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", False),
    ("create", "admissionregistration.k8s.io", "validatingwebhookconfigurations", False),
    ("create", "", "namespaces", False),
    ("patch", "", "namespaces", False),
    ("create", "apps", "daemonsets", True),
    ("create", "apps", "deployments", True),
    ("create", "", "serviceaccounts", True),
    ("create", "", "services", True),
    ("create", "", "configmaps", True),
    ("create", "", "secrets", True),
]


def rbac(ctx: CheckContext) -> Check:
    t = "RBAC for the install"
    kube = ctx.cluster()
    missing = []
    for verb, group, res, namespaced in RBAC_NEEDS:
        ok, _ = kube.can_i(verb, res, group, ctx.settings.namespace if namespaced else None)
        if not ok:
            where = f" in {ctx.settings.namespace}" if namespaced else ""
            missing.append(f"{verb} {res}{'.' + group if group else ''}{where}")
    if missing:
        return Check("rbac", t, FAIL, f"context {kube.context} may not: " + "; ".join(missing),
                     "use a cluster-admin identity (EKS access entry with AmazonEKSClusterAdminPolicy)")
    return Check("rbac", t, PASS, f"all {len(RBAC_NEEDS)} permissions the install needs are granted")


GATEWAY_API_SUFFIXES = (".gateway.networking.k8s.io", ".gateway.networking.x-k8s.io")
MANAGED_BY = "app.kubernetes.io/managed-by"
TOOL = "ambient-tui"


def gateway_api_ownership(crds) -> dict:
    """What the installed Gateway API CRDs are and who owns them, from their metadata:
    bundle-version and channel annotations, Helm's ownership annotations, field managers,
    and this tool's managed-by label (pure: unit-tested)."""
    mine = [c for c in crds if c.metadata.name.endswith(GATEWAY_API_SUFFIXES)]
    names = sorted(c.metadata.name for c in mine)
    anchor = next((c for c in mine if c.metadata.name == "gateways.gateway.networking.k8s.io"),
                  mine[0] if mine else None)
    ann = (anchor.metadata.annotations or {}) if anchor is not None else {}
    helm = sorted({f"{(c.metadata.annotations or {}).get('meta.helm.sh/release-namespace', '?')}/"
                   f"{(c.metadata.annotations or {})['meta.helm.sh/release-name']}"
                   for c in mine if "meta.helm.sh/release-name" in (c.metadata.annotations or {})})
    # Who wrote the spec (the API server's own status writes do not make an owner).
    managers = sorted({m.get("manager", "?") for c in mine for m in (c.metadata.managed_fields or [])
                       if m.get("subresource") != "status"})
    ours = sorted(c.metadata.name for c in mine if (c.metadata.labels or {}).get(MANAGED_BY) == TOOL)
    channels = sorted({(c.metadata.annotations or {}).get("gateway.networking.k8s.io/channel", "unknown")
                       for c in mine})
    if helm:
        owner = "Helm release " + ", ".join(helm)
    elif names and len(ours) == len(names):
        owner = TOOL
    else:
        owner = ("field managers " + ", ".join(managers)) if managers else "unknown"
    return {"present": bool(names), "names": names, "ours": ours,
            "version": ann.get("gateway.networking.k8s.io/bundle-version", "unknown"),
            "channel": ann.get("gateway.networking.k8s.io/channel", channels[0] if channels else "unknown"),
            "channels": channels, "owner": owner, "managers": managers, "helm": helm}


def gateway_api_older(have: str, want: str) -> bool | None:
    """True/False, or None when the installed version cannot be read."""
    try:
        return parse_version(have) < parse_version(want)
    except Exception:  # noqa: BLE001 - "unknown" or a malformed annotation
        return None


def gateway_api(ctx: CheckContext) -> Check:
    t = "Gateway API CRDs"
    kube = ctx.cluster()
    want = ctx.release.gateway_api
    data = gateway_api_ownership(kube.list_crds())
    data.update(want_version=want.version, want_channel=want.channel)
    if not data["present"]:
        return Check("gateway-api", t, PASS, f"absent; the install applies {want.version} ({want.channel})",
                     data=data)
    have, channel = data["version"], data["channel"]
    detail = (f"present: {len(data['names'])} CRDs {have} ({channel}), owner {data['owner']}; "
              f"Istio {ctx.version} documents {want.version} ({want.channel})")
    older = gateway_api_older(have, want.version)
    data["older"] = bool(older)
    if older:
        return Check("gateway-api", t, WARN, detail + "; installed CRDs are older",
                     f"ambient-tui install --upgrade-gateway-api upgrades them to {want.version} in their "
                     f"own channel ({channel}); or upgrade them where they come from ({data['owner']})",
                     data=data)
    if older is None:
        return Check("gateway-api", t, WARN, detail + "; their version is unknown: they are left as they are",
                     data=data)
    return Check("gateway-api", t, PASS, detail + "; new enough: left untouched", data=data)


def nodes(ctx: CheckContext) -> Check:
    t = "Nodes"
    kube = ctx.cluster()
    items = kube.list_nodes()
    if not items:
        return Check("nodes", t, FAIL, "no nodes", "add a node group")
    archs, fit = {}, 0
    for n in items:
        arch = (n.metadata.labels or {}).get("kubernetes.io/arch") or (n.status.node_info.architecture
                                                                    if n.status.node_info else "unknown")
        archs[arch] = archs.get(arch, 0) + 1
        alloc = n.status.allocatable or {}
        if (parsers.parse_quantity(alloc.get("cpu")) >= ISTIOD_REQUESTS["cpu"]
                and parsers.parse_quantity(alloc.get("memory")) >= ISTIOD_REQUESTS["memory"]):
            fit += 1
    detail = (f"{len(items)} nodes ({', '.join(f'{k}: {v}' for k, v in sorted(archs.items()))}); "
              f"{fit} can fit istiod's requests (500m CPU, 2Gi memory)")
    bad = [a for a in archs if a not in SUPPORTED_ARCH]
    if fit == 0:
        return Check("nodes", t, FAIL, detail, "add a node with >= 500m CPU and 2Gi memory allocatable, "
                     "or lower istiod's requests with --values istiod=FILE")
    if bad:
        return Check("nodes", t, WARN, detail + f"; no Istio images for {', '.join(bad)}", "")
    return Check("nodes", t, PASS, detail)


ALL = [
    ("cluster-access", "Cluster access", cluster_access, 20),
    ("kubernetes-version", "Kubernetes version", kubernetes_version, 20),
    ("helm", "helm", helm_tool, 20),
    ("istioctl", "istioctl", istioctl_tool, 20),
    ("aws-eks", "AWS identity and EKS cluster", aws_eks, 30),
    ("vpc-cni", vpc_cni.TITLE, vpc_cni_check, 30),
    ("existing-istio", "Existing Istio", existing_istio, 30),
    ("rbac", "RBAC for the install", rbac, 30),
    ("gateway-api", "Gateway API CRDs", gateway_api, 20),
    ("nodes", "Nodes", nodes, 20),
    (precheck.CHECK_ID, precheck.TITLE, precheck.istioctl_precheck, 60),
    *scheduling.CHECKS,  # the rendered components against nodes, admission, quotas, images
]
# Checks that spend their time waiting on helm or istioctl: the runner starts them first.
STARTS_FIRST = {precheck.CHECK_ID, "helm", "istioctl", "existing-istio"}
