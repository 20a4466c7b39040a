"""One install against one cluster: what the headless `install` and the TUI share.

preflight results in -> decisions (fresh, upgrade, repair, already installed, fixes, CRDs,
refusals) as data, each with its reason -> the plan, which carries the decisions in its notes
(runbook, TUI checklist title). Neither front end builds or edits an install plan itself.
Blocking (helm history, helm get values): call it from a thread (the TUI) or plain code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ambient_tui import catalog as catalog_mod
from ambient_tui.checks.model import FAIL, PASS
from ambient_tui.engine.plan import Phase, Plan
from ambient_tui.plans import repair
from ambient_tui.plans.install import (COMPONENT_KEYS, COMPONENTS, HUB_KEYS, ClusterFacts, GatewayApiAction,
                                       build_install_plan, image_pins)

FIX_PHASE_ID = "preflight-fixes"
# Decision kinds.
FRESH, UPGRADE, ALREADY, REPAIR, INTERRUPTED, FIX, CRDS, REFUSE = (
    "fresh", "upgrade", "already-installed", "repair", "interrupted", "fix", "crds", "refuse")
UPGRADE_GATEWAY_API_FLAG = "--upgrade-gateway-api"


@dataclass(frozen=True)
class Decision:
    kind: str
    subject: str
    reason: str
    # The person must agree first (headless: a flag; the TUI asks at `r`).
    needs_consent: bool = False

    def line(self) -> str:
        if self.kind == INTERRUPTED:
            return f"the last run was interrupted: {self.reason}"
        return f"{self.kind} {self.subject}: {self.reason}"


@dataclass
class Outcome:
    plan: Plan
    decisions: list[Decision] = field(default_factory=list)
    blocking: list = field(default_factory=list)  # failed checks the plan does not fix
    interrupted: list = field(default_factory=list)  # repair.Interrupted
    previous: object = None  # the journal read (JournalRead)
    already_installed: list[str] | None = None

    @property
    def refusals(self) -> list[Decision]:
        return [d for d in self.decisions if d.kind == REFUSE]

    @property
    def consents(self) -> list[Decision]:
        return [d for d in self.decisions if d.needs_consent]


def _flatten(values: dict, prefix: str = "", depth: int = 2) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in (values or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and depth > 1:
            out.update(_flatten(v, key + ".", depth - 1))
        else:
            out[key] = v
    return out


def values_diff(current: dict, sets: list[str], values_file: str | None = None) -> str:
    """One line: what an upgrade keeps of the release's values and what the tool sets."""
    flat = _flatten(current)
    kept = [k for k in sorted(flat) if not any(s.partition("=")[0] == k for s in sets)]
    changes = []
    for s in sets:
        k, _, v = s.partition("=")
        was = flat.get(k)
        if str(was) != v:
            changes.append(f"{k}={v} (was {'unset' if was is None else was})")
    parts = [f"keeps its values: {', '.join(kept)}" if kept else "no values of its own to keep"]
    if changes:
        parts.append("sets " + ", ".join(changes))
    if values_file:
        parts.append(f"then applies --values {values_file}")
    return "upgrade " + "; ".join(parts)


def _chart_version(settings, chart: str, fallback: str) -> str:
    """The version of a local chart folder, or the plan's version for a repository source."""
    if settings.chart_source in ("blob", "oci", "gcs_legacy"):
        return fallback
    import yaml

    chart_dir = next((c[2] for c in COMPONENTS if c[1] == chart), chart)
    for d in (os.path.join(settings.chart_source, chart), os.path.join(settings.chart_source, chart_dir)):
        f = os.path.join(d, "Chart.yaml")
        if os.path.isfile(f):
            with open(f) as fh:
                return str(yaml.safe_load(fh).get("version", fallback))
    return fallback


def already_installed(settings, releases: list[dict], version: str) -> list[str] | None:
    """Names of the wanted releases when all are deployed at the wanted chart version, else None."""
    if settings.values or settings.method != "helm":
        return None
    want = [c for c in COMPONENTS if c[0] != "istio-ingress" or settings.gateway]
    by_name = {r["name"]: r for r in releases}
    for release, chart, _, _ in want:
        r = by_name.get(release)
        if not r or r["status"] != "deployed" or r["chart_version"].lstrip("v") != \
                _chart_version(settings, chart, version).lstrip("v"):
            return None
    return [w[0] for w in want]


def _file_channel(path: str) -> str | None:
    """The channel annotation of the first CRD in a Gateway API install file."""
    try:
        with open(path) as fh:
            head = fh.read(20000)
    except OSError:
        return None
    for line in head.splitlines():
        line = line.strip()
        if line.startswith("gateway.networking.k8s.io/channel:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    return None


def gateway_api_source(settings, cat, rel, channel: str, version: str) -> tuple[str | None, str]:
    """(file, folder or URL of `version` in `channel`, or None; why). With --gateway-api-file
    the channel must match: the channel is never switched."""
    given = settings.gateway_api_file
    if not given:
        return catalog_mod.GatewayAPI(version, channel, rel.gateway_api.server_side).url(cat.gateway_api_url), ""
    candidates = [given]
    if os.path.isdir(given):
        candidates = [os.path.join(given, f"{channel}-install.yaml"), os.path.join(given, channel)]
    else:
        candidates.append(os.path.join(os.path.dirname(given), f"{channel}-install.yaml"))
    for c in candidates:
        if os.path.isdir(c):
            return c, ""
        if os.path.isfile(c) and _file_channel(c) in (channel, None):
            return c, ""
    return None, (f"--gateway-api-file {given} holds the {_file_channel(given) or 'unknown'} channel; the "
                  f"installed Gateway API CRDs are {channel}: give the {channel}-install.yaml of {version}")


class InstallSession:
    def __init__(self, settings, catalog=None, kubeconfig: str | None = None,
                 kube_context: str | None = None, env: dict | None = None, kube_factory=None,
                 cluster_target=None) -> None:
        self.settings = settings
        self.catalog = catalog or catalog_mod.load()
        self.release, self.version = self.catalog.resolve(settings.istio_version)
        # The pinned cluster (cluster/target.py): every helm read and every step goes to it.
        self.cluster_target = cluster_target
        if cluster_target is not None:
            kubeconfig, kube_context = cluster_target.kubeconfig_path(), cluster_target.context
            env = {**(env or {}), **cluster_target.tool_env()}
        self.kubeconfig = kubeconfig or None
        self.kube_context = kube_context or None
        self.env = env
        # Returns a KubeClient when a step runs (the record step).
        self.kube_factory = kube_factory

    def initial_plan(self) -> Plan:
        """The plan before preflight has read the cluster (as `ambient-tui plan` shows it)."""
        plan = build_install_plan(self.settings, self.catalog)
        self.target(plan)
        return plan

    # -- decisions -------------------------------------------------------------------------
    def _gateway_api(self, gw, upgrade_consent: bool) -> tuple[GatewayApiAction, list[Decision]]:
        want = self.release.gateway_api
        data = gw.data if gw is not None else {}
        if not data.get("present"):
            source, _ = gateway_api_source(self.settings, self.catalog, self.release, want.channel, want.version)
            return (GatewayApiAction("apply", want.version, want.channel, source or self.settings.gateway_api_file),
                    [Decision(CRDS, "gateway-api", f"none installed: apply {want.version} ({want.channel}) "
                              "and mark them as this tool's")])
        have, channel, owner = data.get("version", "unknown"), data.get("channel", "unknown"), data.get("owner", "")
        existing = tuple(data.get("names") or ())
        if not data.get("older"):
            why = ("new enough" if have != "unknown" else "version unknown") + \
                f": {have} ({channel}) owned by {owner} is left untouched"
            return GatewayApiAction("keep", want.version, channel, previous=have, owner=owner,
                                    existing=existing), [Decision(CRDS, "gateway-api", why)]
        if channel not in ("standard", "experimental"):
            return (GatewayApiAction("keep", want.version, channel, previous=have, owner=owner, existing=existing),
                    [Decision(REFUSE, "gateway-api", f"installed Gateway API CRDs {have} are older than "
                              f"{want.version} and their channel is {channel}: upgrade them where they come "
                              f"from ({owner})")])
        source, why_not = gateway_api_source(self.settings, self.catalog, self.release, channel, want.version)
        if source is None:
            return (GatewayApiAction("keep", want.version, channel, previous=have, owner=owner, existing=existing),
                    [Decision(REFUSE, "gateway-api", why_not)])
        decision = Decision(CRDS, "gateway-api",
                            f"installed {have} ({channel}, owner {owner}) is older than the {want.version} Istio "
                            f"{self.version} needs: upgrade to {want.version} in the {channel} channel",
                            needs_consent=True)
        out = [decision]
        if not upgrade_consent:
            out.append(Decision(REFUSE, "gateway-api",
                                f"Gateway API CRDs {have} ({channel}, owner {owner}) are older than {want.version}; "
                                f"pass {UPGRADE_GATEWAY_API_FLAG} to upgrade them in their {channel} channel"))
        return GatewayApiAction("upgrade", want.version, channel, source, have, owner, existing), out

    def _values(self, releases: list[dict]) -> tuple[frozenset[str], dict[str, str], list[Decision],
                                                     dict[str, frozenset[str]]]:
        """Existing deployed releases of the plan: keep their values (a hub they set included:
        the official-image pin of local charts does not replace it), and say what changes."""
        from ambient_tui.tools import helm

        want = {c[0]: c for c in COMPONENTS}
        reuse, notes, out, images = set(), {}, [], {}
        for r in releases:
            comp = want.get(r["name"])
            # Only a working release carries values someone chose: one left failed or pending
            # by an interrupted run gets exactly what this run asks for, as helm would give it.
            if comp is None or r["status"] != "deployed":
                continue
            try:
                current = helm.release_values(r["name"], r["namespace"], self.env, self.kubeconfig, self.kube_context)
            except helm.HelmError as e:
                out.append(Decision(REFUSE, r["name"], f"cannot read the values of {r['namespace']}/{r['name']} "
                                    f"to keep them ({e}); nothing was changed"))
                continue
            key = next((k for k, v in COMPONENT_KEYS.items() if v == r["name"]), "")
            flat = _flatten(current)
            official = self.catalog.images.get("official_hub", "docker.io/istio")
            images[r["name"]] = frozenset(k for k in HUB_KEYS if flat.get(k) not in (None, "", official))
            pins = image_pins(self.settings, self.catalog, self.version, r["name"], images[r["name"]])
            line = values_diff(current, comp[3] + pins, self.settings.values.get(key))
            reuse.add(r["name"])
            notes[r["name"]] = line
            out.append(Decision(UPGRADE, f"{r['namespace']}/{r['name']}",
                                f"{r['chart']}-{r['chart_version']} -> {self.version}: {line}"))
        return frozenset(reuse), notes, out, images

    def decide(self, results: list, *, journal=None, fix: bool = False, upgrade_gateway_api: bool = False,
               force: bool = False, resume: bool = False) -> Outcome:
        """The plan for this cluster state. `journal`: the JournalRead of earlier runs."""
        from ambient_tui.engine.journal import JournalRead

        by_id = {c.id: c for c in results}
        previous = journal if journal is not None else JournalRead()
        decisions: list[Decision] = []

        interrupted = repair.interrupted_steps(previous)
        decisions += [Decision(INTERRUPTED, s.step, s.describe()) for s in interrupted]

        existing = by_id.get("existing-istio")
        releases = (existing.data.get("releases") if existing is not None else None) or []
        repairs: list[repair.Repair] = []
        if releases:
            try:
                histories = repair.stuck_releases(releases, self.env, self.kubeconfig, self.kube_context)
                repairs = repair.find_repairs(previous, releases, histories)
            except Exception as e:  # noqa: BLE001 - the existing-istio failure then stands
                decisions.append(Decision(REPAIR, "releases", f"could not read helm history to plan a repair: {e}"))
        decisions += [Decision(REPAIR, f"{r.namespace}/{r.release}", r.describe()) for r in repairs]
        if existing is not None and (existing.data.get("istiod_mode") or "ambient") != "ambient":
            decisions.append(Decision(REFUSE, "istiod", f"istiod in {self.settings.namespace} runs in "
                                      f"{existing.data['istiod_mode']} mode; installing ambient over it is a "
                                      "migration this tool does not do: migrate it by hand or uninstall it first"))

        fixed: set[str] = set()
        fix_steps = []
        vpc = by_id.get("vpc-cni")
        if vpc is not None and vpc.status in (FAIL, "warn") and vpc.fix:
            from ambient_tui.checks import vpc_cni

            target, why = vpc_cni.fix_target(vpc, by_id)
            if fix and target is not None:
                fix_steps = vpc_cni.enforcing_mode_fix_steps(self._kube_for_fix(), target["managed"],
                                                              target["cluster"], target["region"])
                fixed.add("vpc-cni")
                decisions.append(Decision(FIX, "vpc-cni", f"set {vpc_cni.MODE_VAR}=standard first ({why})"))
            elif fix:
                decisions.append(Decision(FIX, "vpc-cni", f"the fix cannot run as steps: {why}"))
            elif target is not None:
                decisions.append(Decision(FIX, "vpc-cni", "a fix is offered (install --fix; TUI: f)"))

        blocking = repair.blocking(results, fixed, repairs, releases)
        gw_action, gw_decisions = self._gateway_api(by_id.get("gateway-api"), upgrade_gateway_api)
        decisions += gw_decisions
        reuse, notes, value_decisions, user_images = self._values(releases) if self.settings.method == "helm" \
            else (frozenset(), {}, [], {})
        decisions += value_decisions

        done = already_installed(self.settings, releases, self.version)
        mode = UPGRADE if releases else FRESH
        if done and not resume and not repairs and not interrupted and not fix_steps and gw_action.action == "keep":
            decisions.insert(0, Decision(ALREADY, "istio", f"Istio {self.version} ({', '.join(done)}) is "
                                         "deployed at the wanted chart versions; nothing to change"))
        else:
            decisions.insert(0, Decision(mode, "istio", f"{len(releases)} Istio release(s) found: upgrade in place, "
                                         "keeping their values" if releases else "no Istio release found"))
            done = None

        record = self._record_step(gw_action)
        facts = ClusterFacts(gateway_api=gw_action, reuse_values=reuse, values_notes=notes, record_step=record,
                             user_images=user_images)
        plan = build_install_plan(self.settings, self.catalog, facts)
        first = []
        if fix_steps:
            first.append(Phase(FIX_PHASE_ID, "Preflight fix: VPC CNI enforcing mode (standard)", fix_steps))
        repair_phase = repair.repair_phase(repairs)
        if repair_phase:
            first.append(repair_phase)
        plan.phases[:0] = first
        plan.title += f" · {decisions[0].kind}"
        plan.notes = [d.line() for d in decisions]
        self.target(plan)
        return Outcome(plan, decisions, [] if force else blocking, interrupted, previous, done)

    def _kube_for_fix(self):
        if self.kube_factory is None:
            from ambient_tui.cluster.client import load_client

            return load_client(self.kubeconfig, self.kube_context)
        return self.kube_factory()

    def _record_step(self, gw_action: GatewayApiAction):
        from ambient_tui.plans import install_record

        factory = self.kube_factory
        if factory is None:
            from ambient_tui.cluster.client import load_client

            kubeconfig, context = self.kubeconfig, self.kube_context

            def factory():
                return load_client(kubeconfig, context)
        ns, gw_ns = self.settings.namespace, self.settings.gateway_namespace
        releases = ([f"{gw_ns if c[0] == 'istio-ingress' else ns}/{c[0]}" for c in COMPONENTS
                     if c[0] != "istio-ingress" or self.settings.gateway] if self.settings.method == "helm" else [])
        return install_record.record_step(factory, releases, gw_action.existing, self.version,
                                          gw_action.action == "apply")

    def target(self, plan: Plan) -> None:
        """Every tool step goes to the checked cluster, whatever the kubeconfig says later."""
        from ambient_tui.cluster.client import ClusterAccessError
        from ambient_tui.cluster.target import pin_steps, resolve

        if self.cluster_target is None and (self.kubeconfig or self.kube_context):
            try:
                self.cluster_target = resolve(self.kubeconfig, self.kube_context)
            except ClusterAccessError:
                return  # no cluster to pin to: the checks say why
        if self.cluster_target is not None:
            pin_steps(plan.steps, self.cluster_target)

    def refusal(self, outcome: Outcome) -> str:
        """One line when the plan must not run, "" when it may."""
        if outcome.refusals:
            return "; ".join(d.reason for d in outcome.refusals) + "; nothing was changed"
        return ""


def kube_context_of(results: list) -> str | None:
    access = next((c for c in results if c.id == "cluster-access"), None)
    return access.data.get("context") if access is not None and access.status == PASS else None
