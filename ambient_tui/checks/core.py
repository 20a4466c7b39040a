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
    t = "Cluster access"
    try:
        c = ctx.client()
    except Exception as e:  # noqa: BLE001
        kind = getattr(e, "kind", "error")
        fixes = {"unknown-context": "kubectl config get-contexts; pass --context NAME or "
                                    "`aws eks update-kubeconfig --name CLUSTER`",
                 "no-kubeconfig": "aws eks update-kubeconfig --name CLUSTER --region REGION",
                 "unauthorized": "aws eks update-kubeconfig --name CLUSTER (refresh the token)",
                 "unreachable": "check VPN/network and the cluster endpoint access (public/private)"}
        return Check("cluster-access", t, FAIL, str(e), fixes.get(kind, ""), data={"kind": kind})
    return Check("cluster-access", t, PASS, f"context {c.context} at {c.server} answers "
                 f"(Kubernetes {ctx.server_version})", data={"context": c.context, "server": c.server})


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
    from ambient_tui.cluster.client import kubeconfig_path, read_kubeconfig

    if not eks.aws_configured():
        raise Skip("no AWS configuration (credentials/profile); EKS checks skipped")
    name, server = ctx.kube_context()
    ref = eks.cluster_from_context(name, read_kubeconfig(kubeconfig_path(ctx.kubeconfig)))
    if ref is None:
        raise Skip(f"context {name} names no EKS cluster (not an EKS ARN, no --cluster-name)")
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
        return Check("aws-eks", t, FAIL, str(e), "check AWS credentials (aws sts get-caller-identity) "
                     "and the cluster name/region")
    endpoint = (cl.get("endpoint") or "").rstrip("/")
    detail = (f"identity {ident.get('Arn')}; EKS {ref.name} ({ref.region}) Kubernetes {cl.get('version')} "
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
    import os
    import shutil
    full_env = {**os.environ, **(env or {})}
    exe = shutil.which("helm", path=full_env.get("PATH"))
    if not exe:
        raise RuntimeError("helm not found on PATH")
    argv = [exe, "list", "-A", "-a", "-o", "json"]
    if kubeconfig:
        argv += ["--kubeconfig", kubeconfig]
    if context:
        argv += ["--kube-context", context]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env)


def finish_helm_list(proc: subprocess.Popen, timeout: float = 20) -> list[dict]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"helm list did not answer within {timeout:g}s") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"helm list failed: {err.strip()[:200]}")
    return parsers.parse_helm_list(out)


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
        status = FAIL
        r = pending[0]
        fix = (f"helm rollback {r['name']} -n {r['namespace']} (or helm uninstall {r['name']} -n "
               f"{r['namespace']} and retry)")
        notes.append("stuck releases: " + ", ".join(f"{r['name']} ({r['status']})" for r in pending))
    mode = "upgrade" if releases else ("unmanaged Istio resources present" if crds else "fresh install")
    notes.insert(0, f"mode: {mode}")
    return Check("existing-istio", t, status, "; ".join(notes), fix,
                 data={"releases": releases, "namespace": ns is not None, "crds": len(crds), "mode": mode})


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


def gateway_api(ctx: CheckContext) -> Check:
    t = "Gateway API CRDs"
    kube = ctx.cluster()
    want = ctx.release.gateway_api
    crd = kube.get_crd("gateways.gateway.networking.k8s.io")
    if crd is None:
        return Check("gateway-api", t, PASS, f"absent; the install applies {want.version} ({want.channel})",
                     data={"present": False})
    ann = crd.metadata.annotations or {}
    have = ann.get("gateway.networking.k8s.io/bundle-version", "unknown")
    channel = ann.get("gateway.networking.k8s.io/channel", "unknown")
    detail = f"present: {have} ({channel}); Istio {ctx.version} documents {want.version} ({want.channel})"
    try:
        older = parse_version(have) < parse_version(want.version)
    except Exception:  # noqa: BLE001
        older = False
    if older:
        return Check("gateway-api", t, WARN, detail + "; installed CRDs are older", 
                     f"kubectl apply --server-side -f {want.url(ctx.catalog.gateway_api_url)}",
                     data={"present": True, "version": have})
    return Check("gateway-api", t, PASS, detail, data={"present": True, "version": have})


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
