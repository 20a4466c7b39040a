"""One guided uninstall against one cluster: what the headless command and the TUI share.

discover (after checking the user may read what it must see) -> plan -> permissions for every
change -> run (the caller drives the engine Runner with `journal()`, `resume()`) -> verify.
Blocking: call it from a thread (the TUI) or plain code (the CLI).
"""

from __future__ import annotations

from pathlib import Path

from ambient_tui.plans import uninstall as u


class Refused(u.DiscoveryError):
    """The user lacks rights; nothing was changed."""


class UninstallSession:
    def __init__(self, kubeconfig: str | None = None, context: str | None = None,
                 helm: str = "helm", env: dict | None = None) -> None:
        self.kubeconfig = kubeconfig or None
        self.context = context or None
        self.helm = helm
        self.env = env
        self.cluster = ""
        # What the person must type before anything is deleted (engine/confirm.py): never empty.
        self.phrase = ""
        self.phrase_kind = ""

    # -- discovery ----------------------------------------------------------------------------
    def journal_paths(self) -> list[Path]:
        return u.journal_paths(self.cluster, self.kubeconfig, self.context)

    def _api(self):
        return u.api_client(self.kubeconfig, self.context)

    def discover(self) -> u.Discovery:
        """Raises DiscoveryError (unreachable, bad kubeconfig) or Refused (forbidden)."""
        self.cluster = u.cluster_name(self.kubeconfig, self.context)
        self._set_phrase()
        denied = self._denied(u.DISCOVERY_PERMISSIONS)
        if denied:
            raise Refused(f"refused, nothing changed: this user cannot read what the uninstall must "
                          f"see in cluster {self.cluster}: " + "; ".join(map(str, denied))
                          + ". Use a cluster-admin kubeconfig.")
        return u.discover(self.kubeconfig, self.context, helm=self.helm, env=self.env,
                          journal_path=self.journal_paths(), cluster=self.cluster)

    def _set_phrase(self) -> None:
        from ambient_tui.engine.confirm import Target, confirmation_phrase, phrase_kind

        try:
            server = self._api().configuration.host or ""
        except Exception:  # noqa: BLE001 - discovery reports an unreadable kubeconfig itself
            server = ""
        target = Target(cluster=self.cluster, context=self.context or "", server=server)
        self.phrase = confirmation_phrase(target)
        self.phrase_kind = phrase_kind(target, self.phrase)

    def confirmed(self, typed: str | None) -> bool:
        """Exact match of the typed answer with the phrase (empty, blank, prefix, case: refused)."""
        from ambient_tui.engine.confirm import confirmed

        return confirmed(typed, self.phrase)

    def _denied(self, perms: list[u.Permission]) -> list[u.Permission]:
        try:
            return u.denied_permissions(self._api(), perms)
        except u.DiscoveryError:
            raise
        except Exception as e:  # urllib3 connection errors: the API server is not answering
            from ambient_tui.cluster.client import connection_reason

            first = connection_reason(str(e)) or type(e).__name__  # whole sentences, the cause
            raise u.DiscoveryError(f"cannot reach the cluster: {first}") from None

    def denied(self, d: u.Discovery, opts: u.Options) -> list[u.Permission]:
        """Permissions the plan needs that this user lacks (asked before the first change)."""
        return self._denied(u.required_permissions(d, opts))

    def refusal(self, denied: list[u.Permission]) -> str:
        shown = "; ".join(map(str, denied[:8])) + (f"; and {len(denied) - 8} more" if len(denied) > 8 else "")
        return (f"refused, nothing changed: this user lacks {len(denied)} permission(s) the uninstall "
                f"needs: {shown}. Use a cluster-admin kubeconfig.")

    def plan(self, d: u.Discovery, opts: u.Options):
        return u.build_uninstall_plan(d, opts, self.context, self.kubeconfig)

    # -- running ------------------------------------------------------------------------------
    def journal(self):
        from ambient_tui.engine.journal import Journal, journal_path

        return Journal(journal_path(self.cluster))

    def last_run(self):
        """The journal records of the last uninstall run (dry-run skips do not count as done)."""
        from ambient_tui.engine.journal import Journal, JournalRead, journal_path

        return last_uninstall_run(Journal.read(journal_path(self.cluster)).records, JournalRead)

    def unfinished(self) -> bool:
        """True when the last uninstall run stopped before all its steps succeeded."""
        last = self.last_run()
        plan = next((r for r in last.records if r.get("type") == "plan"), None)
        if plan is None:
            return False
        states = last.step_states()
        return any(states.get(s) not in ("succeeded", "warned", "skipped") for s in plan.get("steps") or [])

    def lock(self, journal=None):
        """The cluster lock the uninstall's runner holds (cluster/lease.py)."""
        from ambient_tui.cluster.client import load_client
        from ambient_tui.cluster.lease import ClusterLock

        return ClusterLock(load_client(self.kubeconfig, self.context), "uninstall", journal)

    def end_install_runs(self, journal, ok: bool) -> None:
        """Write an `uninstall` record into every journal of this cluster (the install's is
        named after the kube context, this one after the cluster): install runs before it
        are over, and `install --resume` must not count their steps as done."""
        from ambient_tui.engine.journal import Journal

        record = {"type": "uninstall", "ok": bool(ok), "cluster": self.cluster}
        for path in self.journal_paths():
            if path == journal.path:
                journal.write(record)
                continue
            other = Journal(path, run_id=journal.run_id)
            try:
                other.write(record)
            finally:
                other.close()

    def resume(self, runner) -> list[str]:
        """Mark the steps the last uninstall run finished as done; returns their ids."""
        return runner.resume_from(self.last_run())

    # -- after --------------------------------------------------------------------------------
    def cni_mode_now(self, change) -> tuple[bool, str | None]:
        """(could it be read?, the enforcing mode now) where the change was made."""
        from ambient_tui.checks.vpc_cni import MODE_VAR, env_of

        try:
            # A record with the add-on's configuration took `previous` from aws-node, what is in
            # force; an older record took it from the add-on's configurationValues.
            if change.managed and change.addon_config is None:
                from ambient_tui.aws import eks

                addon = eks.describe_vpc_cni_addon(change.cluster, change.region)
                return True, (eks.addon_config(addon).get("env") or {}).get(MODE_VAR) if addon else None
            from ambient_tui.cluster.client import load_client

            ds = load_client(self.kubeconfig, self.context).get_daemonset("kube-system", "aws-node")
            return (True, env_of(ds).get(MODE_VAR) or None) if ds is not None else (False, None)
        except Exception:  # noqa: BLE001 - unknown is reported as a leftover, never a crash
            return False, None

    def verify(self, before: u.Discovery, opts: u.Options) -> list[u.Leftover]:
        after = u.discover(self.kubeconfig, self.context, helm=self.helm, env=self.env,
                           journal_path=self.journal_paths(), cluster=self.cluster)
        cni = (self.cni_mode_now(before.cni_change)
               if opts.revert_cni and before.cni_change is not None else None)
        return u.verify(before, after, opts, self.context, cni_mode_now=cni)


def last_uninstall_run(records: list[dict], read_cls):
    runs = [r["run"] for r in records
            if r.get("type") == "plan" and str(r.get("title", "")).startswith("Uninstall")]
    if not runs:
        return read_cls()
    last = runs[-1]
    # Dry-run steps end "skipped": they must not count as done.
    return read_cls(records=[r for r in records if r.get("run") == last
                             and not (r.get("type") == "step-end" and r.get("state") == "skipped")])


def verified_message(before: u.Discovery, opts: u.Options) -> str:
    change = before.cni_change if opts.revert_cni else None
    return ("verified: no Istio releases, no istio-system namespace"
            + (", no Istio CRDs" if opts.purge_crds else "") + ", no labelled leftovers"
            + (f", VPC CNI enforcing mode back to {change.shown}" if change else ""))
