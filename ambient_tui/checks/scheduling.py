"""Preflight that predicts what the install's waits would run into: the components rendered
with `helm template` and the user's values, judged against the cluster's nodes, Pod Security
labels, quotas, LimitRanges and image sources.

`node_refusals` (pure) says why one node would not take a pod; watch/diagnose.py uses it too,
for the nodes a DaemonSet skips.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
from dataclasses import dataclass

from ambient_tui.checks import parsers
from ambient_tui.checks.model import FAIL, PASS, SKIP, WARN, Check, CheckContext, Skip

FARGATE = ("eks.amazonaws.com/compute-type", "fargate")
# Taints a DaemonSet's pods tolerate without asking (the DaemonSet controller adds these).
DS_AUTO_TOLERATED = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
                     "node.kubernetes.io/disk-pressure", "node.kubernetes.io/memory-pressure",
                     "node.kubernetes.io/pid-pressure", "node.kubernetes.io/unschedulable",
                     "node.kubernetes.io/network-unavailable")
# The releases whose pods preflight renders, with the workload each makes.
RENDERED = {"istiod": "istiod", "istio-cni": "istio-cni-node", "ztunnel": "ztunnel",
            "istio-ingress": "istio-ingress"}
PSA_LABEL = "pod-security.kubernetes.io/enforce"
FARGATE_PLACED = "Fargate node: runs no DaemonSet pods, but this DaemonSet would be placed there"


@dataclass
class Workload:
    release: str
    kind: str          # Deployment or DaemonSet
    name: str
    namespace: str
    replicas: int
    pod: dict          # the pod template's spec


# --- pure judgements -----------------------------------------------------------------------

def _tolerates(tolerations: list[dict], taint: dict) -> bool:
    for t in tolerations or []:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator", "Equal")
        if op == "Exists" and (not t.get("key") or t.get("key") == taint.get("key")):
            return True
        if op == "Equal" and t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _expr_ok(expr: dict, labels: dict) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    have = labels.get(key)
    return {"In": have in values, "NotIn": have not in values, "Exists": key in labels,
            "DoesNotExist": key not in labels,
            "Gt": have is not None and values and have.isdigit() and int(have) > int(values[0]),
            "Lt": have is not None and values and have.isdigit() and int(have) < int(values[0]),
            }.get(op, False)


def _affinity_ok(pod: dict, node: dict) -> bool:
    req = ((((pod.get("affinity") or {}).get("nodeAffinity") or {})
            .get("requiredDuringSchedulingIgnoredDuringExecution")) or {})
    terms = req.get("nodeSelectorTerms") or []
    if not terms:
        return True
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    return any(all(_expr_ok(e, labels) for e in t.get("matchExpressions") or [])
               and all(_expr_ok(e, fields) for e in t.get("matchFields") or []) for t in terms)


def pod_requests(pod: dict) -> dict[str, float]:
    """CPU (cores) and memory (bytes) a pod asks for: its containers' sum, or an init container's
    largest request if higher."""
    def total(cs):
        out = {"cpu": 0.0, "memory": 0.0}
        for c in cs or []:
            req = (c.get("resources") or {}).get("requests") or {}
            for k in out:
                out[k] += parsers.parse_quantity(req.get(k)) if req.get(k) else 0.0
        return out
    main = total(pod.get("containers"))
    for ic in pod.get("initContainers") or []:
        one = total([ic])
        main = {k: max(main[k], one[k]) for k in main}
    return main


def node_refusals(pod: dict, node: dict, daemonset: bool = False,
                  requested: dict[str, float] | None = None) -> list[str]:
    """Why `node` would not run `pod` (a pod spec); [] when it would (pure: unit-tested)."""
    why = []
    labels = node["metadata"].get("labels") or {}
    if daemonset and labels.get(FARGATE[0]) == FARGATE[1]:
        # Fargate runs one pod per micro-VM and never a DaemonSet's: a pod bound there waits.
        if _affinity_ok(pod, node) and all(labels.get(k) == v for k, v in (pod.get("nodeSelector") or {}).items()):
            why.append(FARGATE_PLACED)
        else:
            return ["Fargate node, kept off by the DaemonSet's affinity/nodeSelector"]
    for t in (node.get("spec") or {}).get("taints") or []:
        if t.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if daemonset and t.get("key") in DS_AUTO_TOLERATED:
            continue
        if not _tolerates(pod.get("tolerations"), t):
            why.append(f"untolerated taint {t.get('key')}={t.get('value', '')}:{t.get('effect')}")
    missing = {k: v for k, v in (pod.get("nodeSelector") or {}).items() if labels.get(k) != v}
    if missing:
        why.append("nodeSelector " + ", ".join(f"{k}={v}" for k, v in missing.items()) + " not on the node")
    if not _affinity_ok(pod, node):
        why.append("required node affinity does not match the node's labels")
    alloc = (node.get("status") or {}).get("allocatable") or {}
    need = pod_requests(pod)
    used = requested or {}
    for k, unit in (("cpu", "CPU"), ("memory", "memory")):
        free = parsers.parse_quantity(alloc.get(k)) - used.get(k, 0.0) if alloc.get(k) else None
        if free is not None and need[k] > free:
            why.append(f"insufficient {unit} (asks {_fmt(k, need[k])}, {_fmt(k, max(free, 0))} free)")
    return why


def untolerated_taints(pod: dict, nodes: list[dict]) -> list[tuple[str, str, str]]:
    """(key, value, effect) of the NoSchedule/NoExecute taints `pod` does not tolerate, over `nodes`."""
    out: list[tuple[str, str, str]] = []
    for n in nodes:
        for t in (n.get("spec") or {}).get("taints") or []:
            item = (t.get("key", ""), t.get("value", "") or "", t.get("effect", ""))
            if item[2] in ("NoSchedule", "NoExecute") and not _tolerates(pod.get("tolerations"), t) \
                    and item not in out:
                out.append(item)
    return out


def _fmt(kind: str, v: float) -> str:
    return f"{v * 1000:.0f}m" if kind == "cpu" else f"{v / 2**20:.0f}Mi"


def judge_placement(workloads: list[Workload], nodes: list[dict],
                    requested: dict[str, dict[str, float]]) -> list[tuple[str, str, str]]:
    """(status, line, fix) per workload: Deployments need a node, DaemonSets list skipped nodes."""
    out = []
    for w in workloads:
        refusals = {n["metadata"]["name"]: node_refusals(w.pod, n, w.kind == "DaemonSet",
                                                          requested.get(n["metadata"]["name"]))
                    for n in nodes}
        fits = [n for n, r in refusals.items() if not r]
        if w.kind == "Deployment":
            if not fits:
                reasons = sorted({r for rs in refusals.values() for r in rs})
                # Room can come (a cluster autoscaler adds a node): a warning, not a refusal.
                only_room = all(r.startswith("insufficient") for r in reasons)
                out.append((WARN if only_room else FAIL,
                            f"{w.name}: no node {'has room for it now' if only_room else 'can run it'} "
                            f"({'; '.join(reasons)})", _fix_for(w, reasons)))
            else:
                out.append((PASS, f"{w.name}: {len(fits)} of {len(nodes)} nodes can run it", ""))
        else:
            bad = {n: r for n, r in refusals.items() if r}
            fargate = {n: r for n, r in bad.items() if FARGATE_PLACED in r}
            if fargate:
                out.append((FAIL, f"{w.name}: would be placed on Fargate node(s) {', '.join(fargate)}, which "
                            "run no DaemonSets: the rollout never completes and pods there cannot join "
                            "the mesh", _fargate_fix(w)))
            elif bad:
                names = "; ".join(f"{n}: {', '.join(r)}" for n, r in list(bad.items())[:3])
                out.append((WARN, f"{w.name}: runs on {len(fits)} of {len(nodes)} nodes; skips {names} "
                            "(pods there cannot join the mesh)", _fix_for(w, [x for r in bad.values() for x in r])))
            else:
                out.append((PASS, f"{w.name}: runs on all {len(nodes)} nodes", ""))
    return out


VALUES_PREFIX: dict[str, str] = {}  # 1.2x+ charts take scheduling values at the top level
COMPONENT = {"istiod": "istiod", "istio-cni": "cni", "ztunnel": "ztunnel", "istio-ingress": "gateway"}


def values_snippet(release: str, block: str) -> str:
    prefix = VALUES_PREFIX.get(release, "")
    lines = block.splitlines()
    body = "\n".join(("  " + line) if prefix else line for line in lines)
    return (f"put in a file and pass --values {COMPONENT.get(release, release)}=FILE:\n"
            + (f"{prefix}:\n{body}" if prefix else body))


def _fix_for(w: Workload, reasons: list[str]) -> str:
    taints = sorted({r.split(" ", 2)[2] for r in reasons if r.startswith("untolerated taint")})
    if taints:
        key_val, _, effect = taints[0].rpartition(":")
        key, _, value = key_val.partition("=")
        return values_snippet(w.release, f"tolerations:\n- key: {key}\n  operator: Equal\n  value: {value}\n"
                                         f"  effect: {effect}")
    if any(r.startswith("nodeSelector") or "affinity" in r for r in reasons):
        return ("no node has the labels the values ask for: fix nodeSelector/affinity in your values, "
                "or label a node: kubectl label node NODE KEY=VALUE")
    if any(r.startswith("insufficient") for r in reasons):
        return ("add capacity, or lower the requests: "
                + values_snippet(w.release, "resources:\n  requests:\n    cpu: 100m\n    memory: 512Mi"))
    return ""


def _fargate_fix(w: Workload) -> str:
    k, v = FARGATE
    return (values_snippet(w.release, "affinity:\n  nodeAffinity:\n    requiredDuringSchedulingIgnoredDuring"
                                      f"Execution:\n      nodeSelectorTerms:\n      - matchExpressions:\n"
                                      f"        - key: {k}\n          operator: NotIn\n          values: [{v}]")
            + "\nThe Verify phase then waits only for the nodes the DaemonSet runs on.")


# --- rendering -----------------------------------------------------------------------------

def template_argv(step_argv: list[str]) -> list[str]:
    """A plan's `helm upgrade --install` argv as `helm template` with the same chart and values."""
    argv = ["helm", "template"]
    skip_next = False
    rest = step_argv[3:]  # drop helm upgrade --install
    for i, a in enumerate(rest):
        if skip_next:
            skip_next = False
            continue
        if a in ("--wait", "--create-namespace"):
            continue
        if a == "--timeout":
            skip_next = True
            continue
        argv.append(a)
    return argv


def workloads_of(manifest: str, release: str) -> list[Workload]:
    import yaml

    from ambient_tui.yaml_loader import SAFE_LOADER

    out = []
    for doc in yaml.load_all(manifest, Loader=SAFE_LOADER):
        if not isinstance(doc, dict) or doc.get("kind") not in ("Deployment", "DaemonSet"):
            continue
        spec = doc.get("spec") or {}
        out.append(Workload(release, doc["kind"], doc["metadata"]["name"],
                            doc["metadata"].get("namespace", ""), int(spec.get("replicas") or 1),
                            ((spec.get("template") or {}).get("spec")) or {}))
    return out


def render(ctx: CheckContext) -> tuple[list[Workload], list[str]]:
    """The install plan's components rendered (memoized per preflight): workloads, errors."""
    def go():
        from ambient_tui.plans.install import build_install_plan

        s = ctx.settings
        if s.method != "helm":
            raise Skip("rendered only for the helm method")
        plan = build_install_plan(s, ctx.catalog)
        steps = [st for st in plan.steps if st.id.removeprefix("helm-") in RENDERED]
        env = {**os.environ, **(ctx.env or {})}
        if ctx.kubeconfig:
            env["KUBECONFIG"] = str(ctx.kubeconfig)

        def one(st):
            argv = template_argv(st.argv)
            try:
                p = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env,
                                   stdin=subprocess.DEVNULL)
            except (OSError, subprocess.TimeoutExpired) as e:
                return [], f"{st.id.removeprefix('helm-')}: {e}"
            if p.returncode:
                return [], f"{st.id.removeprefix('helm-')}: {(p.stderr or p.stdout).strip().splitlines()[-1:]}"
            return workloads_of(p.stdout, st.id.removeprefix("helm-")), ""
        with concurrent.futures.ThreadPoolExecutor(len(steps) or 1) as ex:
            results = list(ex.map(one, steps))
        return [w for ws, _ in results for w in ws], [e for _, e in results if e]
    return ctx.memo("rendered-components", go)


def _cluster_state(ctx: CheckContext):
    def go():
        kube = ctx.cluster()
        nodes = kube.list_json("/api/v1/nodes", "listing nodes")
        pods = kube.list_json("/api/v1/pods", "listing pods", query=[("fieldSelector", "status.phase!=Succeeded,status.phase!=Failed")])
        requested: dict[str, dict[str, float]] = {}
        for p in pods:
            p = _plain(p)
            node = (p.get("spec") or {}).get("nodeName")
            if node:
                r = pod_requests(p.get("spec") or {})
                acc = requested.setdefault(node, {"cpu": 0.0, "memory": 0.0})
                for k in acc:
                    acc[k] += r[k]
        return [_plain(n) for n in nodes], requested
    return ctx.memo("scheduling-cluster", go)


def _plain(obj) -> dict:
    """raw.Obj (cluster/raw.py) is a dict already: read it with plain dict access."""
    return obj


# --- the checks ----------------------------------------------------------------------------

def _rendered(ctx: CheckContext) -> list[Workload]:
    workloads, errors = render(ctx)
    if errors and not workloads:
        raise Skip("could not render the charts; see chart-source")
    return workloads


def chart_source(ctx: CheckContext) -> Check:
    """The charts can be read before the first step: local folders exist, the repository answers
    (helm template fetches the same chart the install will)."""
    t = "Chart source"
    s = ctx.settings
    if s.chart_source not in ("blob", "oci", "gcs_legacy"):
        from ambient_tui.plans.install import COMPONENTS, chart_ref
        missing = [name for release, name, d, _ in COMPONENTS
                   if (release != "istio-ingress" or s.gateway)
                   and not os.path.isfile(os.path.join(chart_ref(s, ctx.catalog, name, d)[0], "Chart.yaml"))]
        if missing:
            return Check("chart-source", t, FAIL, f"no chart {', '.join(missing)} under {s.chart_source}",
                         "point --charts at a folder holding base, istiod, cni, ztunnel (and gateway) "
                         "charts, or the istio source tree's manifests/charts")
    workloads, errors = render(ctx)
    if errors:
        return Check("chart-source", t, FAIL, "; ".join(errors),
                     "check the chart repository is reachable from here (proxy, DNS), or install "
                     "from local charts with --charts DIR")
    where = s.chart_source if s.chart_source not in ("blob", "oci", "gcs_legacy") else ctx.catalog.chart_repo(s.chart_source)
    return Check("chart-source", t, PASS, f"{len(workloads)} workloads rendered from {where} with your values")


def placement(ctx: CheckContext) -> Check:
    t = "Scheduling: taints, selectors, capacity"
    workloads = _rendered(ctx)
    nodes, requested = _cluster_state(ctx)
    if not nodes:
        raise Skip("no nodes; see nodes")
    lines = judge_placement(workloads, nodes, requested)
    worst = FAIL if any(s == FAIL for s, _, _ in lines) else WARN if any(s == WARN for s, _, _ in lines) else PASS
    fixes = [f for s, _, f in lines if s == worst and f]
    return Check("scheduling", t, worst, "; ".join(line for s, line, _ in lines),
                 fixes[0] if fixes else "", data={"lines": [list(x) for x in lines]})


def fargate_nodes(ctx: CheckContext) -> Check:
    t = "Compute that cannot run ambient (Fargate)"
    nodes, _ = _cluster_state(ctx)
    fg = [n["metadata"]["name"] for n in nodes if (n["metadata"].get("labels") or {}).get(FARGATE[0]) == FARGATE[1]]
    if not fg:
        return Check("fargate", t, PASS, f"no Fargate nodes among {len(nodes)}")
    agents = [w for w in _safe_rendered(ctx) if w.kind == "DaemonSet"]
    placed = [w.name for w in agents for n in nodes if n["metadata"]["name"] in fg
              and FARGATE_PLACED in node_refusals(w.pod, n, daemonset=True)]
    detail = (f"{len(fg)} Fargate node(s): {', '.join(fg[:5])}. Fargate runs no DaemonSets and gives no "
              "NET_ADMIN: istio-cni and ztunnel cannot run there, so pods on them cannot join the mesh")
    if placed:
        return Check("fargate", t, FAIL, detail + f"; {', '.join(sorted(set(placed)))} would be placed "
                     "there and the Verify phase would wait for ever",
                     _fargate_fix(next(w for w in agents if w.name in placed))
                     + " Keep ambient workloads (enrolled namespaces) on EC2 nodes.")
    return Check("fargate", t, WARN, detail + "; your values keep the node agents off them",
                 "keep enrolled namespaces' pods off Fargate (Fargate profiles select by namespace)")


def _safe_rendered(ctx) -> list[Workload]:
    try:
        return _rendered(ctx)
    except Exception:  # noqa: BLE001
        return []


PSA_ORDER = {"privileged": 0, "baseline": 1, "restricted": 2}


def pod_security(ctx: CheckContext) -> Check:
    t = "Pod Security admission"
    kube = ctx.cluster()
    s = ctx.settings
    bad, notes = [], []
    for ns, need, why in ((s.namespace, "privileged", "istio-cni is privileged and ztunnel adds capabilities"),
                          *([(s.gateway_namespace, "baseline", "the gateway")] if s.gateway else [])):
        obj = kube.get_namespace(ns)
        level = ((obj.metadata.labels or {}) if obj is not None else {}).get(PSA_LABEL, "")
        if not level:
            notes.append(f"{ns}: no enforce label ({'absent, created by the install' if obj is None else 'cluster default'})")
            continue
        if PSA_ORDER.get(level, 0) > PSA_ORDER[need]:
            bad.append((ns, level, need, why))
        else:
            notes.append(f"{ns}: enforce={level}")
    if bad:
        ns, level, need, why = bad[0]
        return Check("pod-security", t, FAIL,
                     "; ".join(f"{n} enforces {lv}: its pods will be refused ({w})" for n, lv, _, w in bad),
                     f"kubectl label namespace {ns} {PSA_LABEL}={need} --overwrite")
    return Check("pod-security", t, PASS, "; ".join(notes))


def quota_limits(ctx: CheckContext) -> Check:
    t = "ResourceQuota and LimitRange"
    kube = ctx.cluster()
    workloads = _safe_rendered(ctx)
    s = ctx.settings
    problems, seen = [], []
    for ns in {s.namespace, *([s.gateway_namespace] if s.gateway else [])}:
        mine = [w for w in workloads if (w.namespace or s.namespace) == ns]
        for q in kube.list_json(f"/api/v1/namespaces/{ns}/resourcequotas", f"listing quotas in {ns}"):
            q = _plain(q)
            seen.append(f"quota {ns}/{q['metadata']['name']}")
            hard = (q.get("spec") or {}).get("hard") or {}
            used = (q.get("status") or {}).get("used") or {}
            if "pods" in hard:
                need = sum(w.replicas if w.kind == "Deployment" else 1 for w in mine)
                left = parsers.parse_quantity(hard["pods"]) - parsers.parse_quantity(used.get("pods") or "0")
                if need > left:
                    problems.append((f"quota {ns}/{q['metadata']['name']} leaves {left:.0f} pods; the install "
                                     f"needs at least {need}", f"kubectl describe resourcequota -n {ns} "
                                     f"{q['metadata']['name']}; raise its pods limit"))
            for key in ("requests.cpu", "requests.memory", "cpu", "memory"):
                if key in hard:
                    kind = key.split(".")[-1]
                    need = sum(pod_requests(w.pod)[kind] * (w.replicas if w.kind == "Deployment" else 1) for w in mine)
                    left = parsers.parse_quantity(hard[key]) - parsers.parse_quantity(used.get(key) or "0")
                    if need > left:
                        problems.append((f"quota {ns}/{q['metadata']['name']} leaves {_fmt(kind, left)} "
                                         f"{key}; the rendered pods ask {_fmt(kind, need)}",
                                         f"raise the quota (kubectl describe resourcequota -n {ns})"))
        for lr in kube.list_json(f"/api/v1/namespaces/{ns}/limitranges", f"listing LimitRanges in {ns}"):
            lr = _plain(lr)
            seen.append(f"LimitRange {ns}/{lr['metadata']['name']}")
            for lim in (lr.get("spec") or {}).get("limits") or []:
                if lim.get("type") != "Container":
                    continue
                for kind, cap in (lim.get("max") or {}).items():
                    if kind not in ("cpu", "memory"):
                        continue
                    for w in mine:
                        for c in w.pod.get("containers") or []:
                            res = c.get("resources") or {}
                            ask = max(parsers.parse_quantity(v) for v in (
                                (res.get("requests") or {}).get(kind) or "0", (res.get("limits") or {}).get(kind) or "0"))
                            if ask > parsers.parse_quantity(cap):
                                problems.append((
                                    f"LimitRange {ns}/{lr['metadata']['name']} allows at most {cap} {kind} per "
                                    f"container; {w.name}/{c['name']} asks {_fmt(kind, ask)}",
                                    f"raise the LimitRange's max (kubectl edit limitrange -n {ns} "
                                    f"{lr['metadata']['name']}), or lower the request: "
                                    + values_snippet(w.release, f"resources:\n  requests:\n    {kind}: {cap}")))
    if problems:
        return Check("quota-limits", t, FAIL, "; ".join(p for p, _ in problems), problems[0][1])
    return Check("quota-limits", t, PASS, ("checked " + ", ".join(seen)) if seen else "no ResourceQuota or LimitRange")


def split_image(image: str) -> tuple[str, str, str]:
    """(hub, name, tag) of an image reference."""
    ref, _, digest = image.partition("@")
    hub, _, last = ref.rpartition("/")
    name, _, tag = last.partition(":")
    return hub, name, tag or ("@" + digest if digest else "latest")


def image_findings(images: list[str], images_cat: dict) -> list[tuple[str, str]]:
    """(status, text) per problem image (pure: unit-tested)."""
    out = []
    retired = images_cat.get("retired") or []
    dev = images_cat.get("development") or []
    moving = set(images_cat.get("moving_tags") or [])
    for img in sorted(set(images)):
        hub, name, tag = split_image(img)
        for r in retired:
            if hub == r["registry"] or hub.startswith(r["registry"] + "/"):
                out.append((FAIL, f"{img}: {r['registry']} is retired ({r['retired']}; brownouts "
                            f"{r['brownouts']})"))
        if any(hub == d or hub.startswith(d + "/") for d in dev):
            out.append((WARN, f"{img}: a development image, not a release"))
        if tag in moving or tag.endswith("-dev"):
            out.append((WARN, f"{img}: tag {tag} moves; pin the release's tag"))
    return out


def images(ctx: CheckContext) -> Check:
    t = "Image sources"
    workloads = _rendered(ctx)
    imgs = [c.get("image", "") for w in workloads
            for c in (w.pod.get("containers") or []) + (w.pod.get("initContainers") or []) if c.get("image")]
    findings = image_findings(imgs, ctx.catalog.images)
    official = ctx.catalog.images.get("official_hub", "docker.io/istio")
    fix = (f"pin the release's images: --set global.hub={official} --set global.tag={ctx.version} "
           f"(ztunnel: hub and tag)")
    if any(s == FAIL for s, _ in findings):
        return Check("images", t, FAIL, "; ".join(x for _, x in findings), fix)
    if findings:
        return Check("images", t, WARN, "; ".join(x for _, x in findings), fix)
    return Check("images", t, PASS, f"{len(set(imgs))} images, all official and pinned: "
                 + ", ".join(sorted(set(imgs))))


CHECKS = [
    ("chart-source", "Chart source", chart_source, 90),
    ("scheduling", "Scheduling: taints, selectors, capacity", placement, 90),
    ("fargate", "Compute that cannot run ambient (Fargate)", fargate_nodes, 90),
    ("pod-security", "Pod Security admission", pod_security, 30),
    ("quota-limits", "ResourceQuota and LimitRange", quota_limits, 90),
    ("images", "Image sources", images, 90),
]
