"""Proof that pods are in the mesh: the API's pods against ztunnel's own view.

For each enrolled namespace, every live pod should appear in `istioctl ztunnel-config
workloads` with PROTOCOL HBONE. A pod that does not is listed with the likely reason, from
what the API says about it: it runs on the host network, it opted out
(istio.io/dataplane-mode=none), its node has no ready ztunnel, or istio-cni never captured it
(no ambient.istio.io/redirection annotation: it started before istio-cni; restart it). The
waypoint per service comes from `istioctl ztunnel-config services`.

When ztunnel cannot be asked (istioctl missing, no ztunnel pod answers, as on the kwok
sandbox where ztunnel's pods run no process) the result says so and passes nothing: the
API-side reasons are still listed, and `proven` stays False.
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass, field

ISTIOCTL_TIMEOUT = 60.0


# --- parsing istioctl's tables --------------------------------------------------------------

def parse_table(text: str, first_column: str = "NAMESPACE") -> list[dict[str, str]]:
    """Rows of a tabwriter table as dicts keyed by the header's column names.

    istioctl aligns each value under its column's header, and a header may hold a space
    ("POD NAME", "SERVICE VIP"), so the columns are cut at the header's start positions,
    not split on whitespace. Lines before the header (warnings) are ignored."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.lstrip().startswith(first_column)), None)
    if start is None:
        return []
    names = _columns(lines[start])
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        row = {}
        for n, (name, pos) in enumerate(names):
            end = names[n + 1][1] if n + 1 < len(names) else len(line)
            row[name] = line[pos:end].strip()
        rows.append(row)
    return rows


# istioctl's column names that hold a space; any other name is one word.
_TWO_WORDS = ("POD NAME", "SERVICE NAME", "SERVICE VIP", "SERVICE ACCOUNT")


def _columns(header: str) -> list[tuple[str, int]]:
    """(name, start position) of each column in a header line."""
    names, i = [], 0
    while i < len(header):
        if header[i] == " ":
            i += 1
            continue
        name = next((t for t in _TWO_WORDS if header.startswith(t, i)
                     and header[i + len(t):i + len(t) + 1] in ("", " ")), None)
        if name is None:
            end = header.find(" ", i)
            name = header[i:] if end < 0 else header[i:end]
        names.append((name, i))
        i += len(name)
    return names


@dataclass(frozen=True)
class ZWorkload:
    namespace: str
    pod: str
    address: str
    node: str
    waypoint: str
    protocol: str


def parse_workloads(text: str) -> list[ZWorkload]:
    out = []
    for r in parse_table(text):
        out.append(ZWorkload(r.get("NAMESPACE", ""), r.get("POD NAME") or r.get("NAME", ""),
                             r.get("ADDRESS") or r.get("IP", ""), r.get("NODE", ""),
                             r.get("WAYPOINT", ""), r.get("PROTOCOL", "")))
    return out


@dataclass(frozen=True)
class ZService:
    namespace: str
    name: str
    vip: str
    waypoint: str
    endpoints: str


def parse_services(text: str) -> list[ZService]:
    return [ZService(r.get("NAMESPACE", ""), r.get("SERVICE NAME", ""), r.get("SERVICE VIP", ""),
                     r.get("WAYPOINT", ""), r.get("ENDPOINTS", "")) for r in parse_table(text)]


# --- asking ztunnel -------------------------------------------------------------------------

def istioctl_argv(what: str, kubeconfig: str | None, context: str | None,
                  dump: str | None = None) -> list[str]:
    """`dump`: a ztunnel config dump saved earlier (`kubectl exec ZTUNNEL -n istio-system --
    curl -s localhost:15000/config_dump`), read by istioctl instead of asking a live ztunnel."""
    argv = ["istioctl", "ztunnel-config", what]
    if dump:
        return argv + ["--file", dump]
    if kubeconfig:
        argv += ["--kubeconfig", kubeconfig]
    if context:
        argv += ["--context", context]
    return argv


def run_istioctl(argv: list[str], timeout: float = ISTIOCTL_TIMEOUT, env: dict | None = None) -> tuple[int | None, str]:
    """(exit code, output); exit None when it could not run or timed out (output says why)."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        from ambient_tui.tools.install_hints import missing_tool_message
        return None, missing_tool_message(argv[0])
    except subprocess.TimeoutExpired:
        return None, f"{argv[0]} did not answer within {timeout:g}s"
    return p.returncode, (p.stdout if p.returncode == 0 else (p.stderr or p.stdout))


# --- comparing --------------------------------------------------------------------------------

@dataclass
class Missing:
    namespace: str
    pod: str
    node: str
    reason: str
    fix: str = ""
    # Out of the mesh on purpose (opted out, host network): listed, but not a failure.
    expected: bool = False


@dataclass
class NamespaceResult:
    namespace: str
    pods: int
    in_mesh: int = 0
    missing: list[Missing] = field(default_factory=list)


@dataclass
class VerifyResult:
    namespaces: list[NamespaceResult] = field(default_factory=list)
    ztunnel_asked: bool = False
    ztunnel_error: str = ""            # why ztunnel could not be asked
    services: list[ZService] = field(default_factory=list)
    services_error: str = ""
    source: str = "live ztunnel"

    @property
    def proven(self) -> bool:
        """True only when ztunnel answered and lists with HBONE every live pod of at least one
        namespace, except the pods kept out on purpose (opted out, host network)."""
        return self.ztunnel_asked and bool(self.namespaces) and all(
            m.expected for n in self.namespaces for m in n.missing)

    def to_dict(self) -> dict:
        return {"proven": self.proven, "ztunnel_asked": self.ztunnel_asked, "source": self.source,
                "ztunnel_error": self.ztunnel_error,
                "namespaces": [asdict(n) for n in self.namespaces],
                "services": [asdict(s) for s in self.services], "services_error": self.services_error}


def likely_reason(p, ztunnel_ready_nodes: set[str]) -> tuple[str, str]:
    """(reason, fix) for a pod ztunnel does not list with HBONE, from the API's facts."""
    if p.host_network:
        return "host network: ambient never captures hostNetwork pods", ""
    if p.opted_out:
        return "opted out (istio.io/dataplane-mode=none)", "remove the label to bring it back"
    if p.node and p.node not in ztunnel_ready_nodes:
        return (f"node {p.node} has no ready ztunnel", "check the ztunnel DaemonSet on that node")
    if not p.captured:
        what = p.owner or f"pod/{p.name}"
        return ("not captured: no ambient.istio.io/redirection annotation (it started before "
                "istio-cni was ready)",
                f"restart it: kubectl -n {p.namespace} rollout restart {what.lower()}"
                if p.owner and not p.owner.startswith("ReplicaSet") else
                f"restart it: kubectl -n {p.namespace} delete pod {p.name}")
    return "captured, but ztunnel does not list it with HBONE (istiod has not pushed it yet?)", ""


def compare(namespaces: list[str], pods: list, ztunnel_ready_nodes: set[str],
            workloads: list[ZWorkload] | None) -> list[NamespaceResult]:
    """pods: PodFacts. workloads None: ztunnel was not asked; every pod gets its API-side
    reason when it has one, and none counts as in the mesh."""
    hbone = {(w.namespace, w.pod) for w in workloads or [] if w.protocol.upper() == "HBONE"}
    out = []
    for ns in namespaces:
        live = [p for p in pods if p.namespace == ns and p.live]
        res = NamespaceResult(ns, len(live))
        for p in sorted(live, key=lambda p: p.name):
            if workloads is not None and (ns, p.name) in hbone:
                res.in_mesh += 1
                continue
            reason, fix = likely_reason(p, ztunnel_ready_nodes)
            if workloads is None and reason.startswith("captured"):
                continue  # nothing the API says against it; unproven, not missing
            res.missing.append(Missing(ns, p.name, p.node, reason, fix,
                                       expected=p.host_network or p.opted_out))
        out.append(res)
    return out


def verify(kube, namespaces: list[str] | None = None, kubeconfig: str | None = None,
           context: str | None = None, runner=run_istioctl, dump: str | None = None) -> VerifyResult:
    """Compare the enrolled namespaces' pods (or `namespaces`) against ztunnel's workloads."""
    from ambient_tui.mesh.state import collect

    state = collect(kube, lint_policies=False)
    chosen = namespaces or state.enrolled
    facts = _pod_facts(kube, chosen)
    ready_nodes = {n.name for n in state.nodes if n.ztunnel_ready}
    result = VerifyResult(source=f"ztunnel config dump {dump}" if dump else "live ztunnel")
    code, out = runner(istioctl_argv("workloads", kubeconfig, context or kube.context, dump))
    workloads = None
    if code == 0:
        workloads = parse_workloads(out)
        result.ztunnel_asked = True
    else:
        result.ztunnel_error = (out.strip().splitlines() or ["no output"])[-1][:300]
    result.namespaces = compare(chosen, facts, ready_nodes, workloads)
    if result.ztunnel_asked:
        code, out = runner(istioctl_argv("services", kubeconfig, context or kube.context, dump))
        if code == 0:
            result.services = [s for s in parse_services(out) if s.namespace in chosen]
        else:
            result.services_error = (out.strip().splitlines() or ["no output"])[-1][:300]
    return result


def _pod_facts(kube, namespaces: list[str]) -> list:
    from ambient_tui.mesh.state import pod_facts

    out = []
    for ns in namespaces:
        out += [pod_facts(p) for p in kube.list_pods(ns)]
    return out
