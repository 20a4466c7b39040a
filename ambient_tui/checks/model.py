"""A preflight check's result, and the context the checks share."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
STATUSES = (PASS, WARN, FAIL, SKIP)


@dataclass
class Check:
    id: str
    title: str
    status: str
    detail: str = ""
    fix: str = ""
    # Seconds the check took; not part of the JSON contract's required keys.
    elapsed: float = 0.0
    # Machine-readable findings for the install session and the TUI (e.g. gateway-api ownership).
    data: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"check {self.id}: status {self.status!r} not in {STATUSES}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["elapsed"] = round(self.elapsed, 3)
        return d


class Skip(Exception):
    """Raised inside a check: the check does not apply (message says why)."""


class CheckContext:
    """Shared inputs; cluster access is established once (thread-safe) and reused.

    The cluster is one pinned Target (cluster/target.py): given, or resolved here from
    kubeconfig/context. Then `kubeconfig` is the target's pinned file and `context` its name,
    so the helm and istioctl the checks start read exactly what the client reads."""

    def __init__(self, settings, kubeconfig: str | None = None, context: str | None = None,
                 env: dict | None = None, catalog=None, target=None) -> None:
        from ambient_tui import catalog as catalog_mod
        from ambient_tui.cluster.client import ClusterAccessError

        self.settings = settings
        self.kubeconfig = kubeconfig
        self.context = context or getattr(settings, "context", None)
        self.env = env
        self.target, self.target_error = None, None
        try:
            if target is None:
                from ambient_tui.cluster.target import resolve
                target = resolve(self.kubeconfig, self.context)
            self.kubeconfig, self.context = target.kubeconfig_path(), target.context
            self.target = target
        except ClusterAccessError as e:  # reported by cluster-access; the rest skip
            self.target_error = e
        if self.target is not None:
            from ambient_tui.aws import eks

            eks.use_profile(self.target.aws_profile)  # the AWS checks and the add-on fix
        self.catalog = catalog or catalog_mod.load()
        self.release, self.version = self.catalog.resolve(settings.istio_version)
        self._lock = threading.Lock()
        self._client = None
        self._client_error = None
        self._server_version = None
        self._memo: dict = {}
        self._memo_lock = threading.Lock()

    def memo(self, key: str, func):
        """func(), computed once per preflight and shared by the checks that need it (errors too)."""
        with self._memo_lock:
            if key not in self._memo:
                try:
                    self._memo[key] = (True, func())
                except Exception as e:  # noqa: BLE001 - re-raised to every caller
                    self._memo[key] = (False, e)
            ok, value = self._memo[key]
        if not ok:
            raise value
        return value

    def client(self):
        """The KubeClient after one successful call, or raises ClusterAccessError."""
        from ambient_tui.cluster.client import load_client

        with self._lock:
            if self._client is None and self._client_error is None:
                try:
                    if self.target is None:
                        raise self.target_error
                    c = load_client(target=self.target)
                    self._server_version = c.server_version()
                    self._client = c
                except Exception as e:  # noqa: BLE001 - kept and re-raised to every caller
                    self._client_error = e
            if self._client_error is not None:
                raise self._client_error
            return self._client

    def cluster(self):
        """Like client(), but a check that needs the cluster is skipped when it is unreachable."""
        try:
            return self.client()
        except Exception as e:  # noqa: BLE001
            raise Skip(f"cluster not reachable ({getattr(e, 'kind', type(e).__name__)}); see cluster-access") from None

    def kube_context(self) -> tuple[str, str]:
        """(context name, server URL) from the kubeconfig alone, without connecting; a check
        that needs it is skipped when the kubeconfig or context is unusable (see cluster-access)."""
        if self.target is None:
            raise Skip(f"no usable kube context ({self.target_error.kind}); see cluster-access")
        return self.target.context, self.target.server

    @property
    def server_version(self) -> str | None:
        return self._server_version
