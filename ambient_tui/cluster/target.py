"""The one cluster a run talks to: the kubeconfig read once, its context pinned at start.

`resolve()` merges the kubeconfig files as kubectl does (`--kubeconfig` alone, else every file
in $KUBECONFIG, else ~/.kube/config; the first file to name a cluster, user or context wins,
and so does the first current-context), then keeps the chosen context with its cluster
(server) and user. Every consumer gets this Target:

- helm, kubectl and istioctl get `--kubeconfig PINNED --kube-context/--context NAME`, where
  PINNED is a single-context copy of the merged kubeconfig (0600, in the state directory).
  A merged $KUBECONFIG cannot be named by one --kubeconfig, and a copy also pins the server
  and user: `kubectl config use-context` or `set-context` in another shell rewrites the
  user's file, never this one;
- the Kubernetes client (`api_client`) gets the same config with the exec credential plugin
  run by exec_plugin.py, not by the client library (no terminal, output captured; a failure
  is a CredentialPluginError of its own, never a 401/403);
- boto3 gets AWS_PROFILE/AWS_REGION from the exec block (what `aws eks update-kubeconfig`
  writes), see `aws_profile`/`aws_region`.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from ambient_tui.cluster.client import ClusterAccessError
from ambient_tui.cluster.exec_plugin import ExecPlugin, run_plugin

SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))
TOOLS = ("helm", "kubectl", "istioctl")

@dataclass(frozen=True)
class Target:
    context: str
    cluster: str            # the kubeconfig's cluster entry name
    server: str
    user: str               # the kubeconfig's user entry name
    namespace: str
    files: tuple[str, ...]  # the kubeconfig files merged, in order
    config: dict = field(repr=False, compare=False, hash=False)  # single-context kubeconfig
    read_only: bool = False

    @property
    def server_host(self) -> str:
        u = urlparse(self.server)
        return u.netloc or self.server

    @property
    def exec_plugin(self) -> ExecPlugin | None:
        return ExecPlugin.from_user(self.config["users"][0]["user"])

    @property
    def aws_profile(self) -> str | None:
        p = self.exec_plugin
        return p and (p.env_value("AWS_PROFILE", "AWS_DEFAULT_PROFILE") or p.arg("--profile"))

    @property
    def aws_region(self) -> str | None:
        p = self.exec_plugin
        return p and (p.arg("--region") or p.env_value("AWS_REGION", "AWS_DEFAULT_REGION"))

    def describe(self) -> str:
        return f"{self.context} ({self.server_host}, user {self.user})"

    # -- the pinned file the tools read -----------------------------------------------------
    def kubeconfig_path(self) -> str:
        """The single-context kubeconfig, written once (0600) under the state directory. Its
        name is a hash of its content, so concurrent runs on one target share it."""
        text = json.dumps(self.config, indent=1, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        folder = state_dir() / "targets"
        path = folder / f"{_safe(self.context)}-{digest}.kubeconfig"
        with _write_lock:
            try:
                if not path.exists():
                    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                    tmp = folder / f".{path.name}.{os.getpid()}"
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "w") as fh:
                        fh.write(text)
                    os.replace(tmp, path)
            except OSError as e:
                raise ClusterAccessError("no-kubeconfig", f"cannot write the pinned kubeconfig in {folder}: "
                                         f"{e.strerror}; set XDG_STATE_HOME to a writable folder") from None
        _PINNED[str(path)] = self
        return str(path)

    def tool_flags(self, tool: str) -> list[str]:
        flag = "--kube-context" if tool == "helm" else "--context"
        return ["--kubeconfig", self.kubeconfig_path(), flag, self.context]

    def tool_env(self) -> dict[str, str]:
        """For the runner: a tool started without flags reads the same pinned file."""
        return {"KUBECONFIG": self.kubeconfig_path(), "HELM_KUBECONTEXT": self.context}


_write_lock = threading.Lock()
_PINNED: dict[str, Target] = {}  # pinned file path -> its Target, so reading it back is free


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ambient-tui"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:60] or "context"


# -- reading and merging --------------------------------------------------------------------
def kubeconfig_files(kubeconfig: str | None = None, environ=None) -> tuple[list[str], bool]:
    """(files in merge order, explicit): --kubeconfig alone (must exist), else $KUBECONFIG's
    entries (missing ones are skipped, as kubectl does), else ~/.kube/config."""
    environ = os.environ if environ is None else environ
    if kubeconfig:
        return [kubeconfig], True
    env = environ.get("KUBECONFIG")
    if env:
        return list(dict.fromkeys(p for p in env.split(os.pathsep) if p)), False
    return [str(Path(environ.get("HOME") or Path.home()) / ".kube" / "config")], False


def _read(path: str) -> dict | None:
    import yaml

    from ambient_tui.yaml_loader import SAFE_LOADER

    try:
        data = yaml.load(Path(path).read_text(), Loader=SAFE_LOADER) or {}
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError) as e:
        raise ClusterAccessError("no-kubeconfig", f"cannot read kubeconfig {path}: "
                                 f"{str(e).splitlines()[0][:160]}") from None
    if not isinstance(data, dict):
        raise ClusterAccessError("no-kubeconfig", f"kubeconfig {path} is not a kubeconfig (no mapping)")
    return data


def merge(docs: list[tuple[str, dict]]) -> dict:
    """kubectl's merge of several kubeconfigs: for clusters, users and contexts the first entry
    with a name wins (the first file, then the first in that file); current-context comes from
    the first file that sets it. Each entry remembers the file it came from (`_origin`), whose
    folder its relative paths are relative to."""
    out: dict = {"clusters": {}, "users": {}, "contexts": {}, "current-context": ""}
    for path, data in docs:
        for section, key in SECTIONS:
            for item in data.get(section) or []:
                if not isinstance(item, dict) or not item.get("name"):
                    continue
                name = str(item["name"])
                if name not in out[section]:
                    out[section][name] = {"_origin": path, **(item.get(key) or {})}
        if not out["current-context"] and data.get("current-context"):
            out["current-context"] = str(data["current-context"])
    return out


def _absolute(entry: dict, keys: tuple[str, ...]) -> dict:
    base = Path(entry.get("_origin") or ".").resolve().parent
    for k in keys:
        v = entry.get(k)
        if isinstance(v, str) and v and not os.path.isabs(v):
            entry[k] = str(base / os.path.expanduser(v))
    return entry


def resolve(kubeconfig: str | None = None, context: str | None = None, *, read_only: bool = False,
            environ=None) -> Target:
    """The Target for `context` (default: the merged current-context), or ClusterAccessError."""
    if kubeconfig and kubeconfig in _PINNED and _PINNED[kubeconfig].context == (context or _PINNED[kubeconfig].context):
        t = _PINNED[kubeconfig]
        return t if t.read_only == read_only else dataclasses.replace(t, read_only=read_only)
    files, _explicit = kubeconfig_files(kubeconfig, environ)
    docs = [(p, d) for p in files if (d := _read(p)) is not None]
    where = ":".join(files)
    if not docs:
        raise ClusterAccessError("no-kubeconfig", f"no kubeconfig at {where}; pass --kubeconfig, "
                                 "set KUBECONFIG or run `aws eks update-kubeconfig --name CLUSTER`")
    m = merge(docs)
    known = ", ".join(sorted(m["contexts"])) or "none"
    name = context or m["current-context"]
    if not name:
        raise ClusterAccessError("unknown-context", f"kubeconfig {where} has no current-context; "
                                 f"pass --context (known: {known})")
    if name not in m["contexts"]:
        raise ClusterAccessError("unknown-context", f"context {name!r} is not in kubeconfig {where}; "
                                 f"known contexts: {known}")
    ctx = dict(m["contexts"][name])
    cluster_name, user_name = str(ctx.get("cluster") or ""), str(ctx.get("user") or "")
    if cluster_name not in m["clusters"]:
        raise ClusterAccessError("unknown-context", f"context {name!r} names cluster {cluster_name!r}, "
                                 f"which is not in kubeconfig {where}")
    cluster = _absolute(dict(m["clusters"][cluster_name]), ("certificate-authority",))
    user = copy.deepcopy(m["users"].get(user_name) or {"_origin": ""})  # no user: anonymous
    user = _absolute(user, ("client-certificate", "client-key", "tokenFile"))
    ex = user.get("exec")
    if isinstance(ex, dict) and os.sep in str(ex.get("command") or ""):  # not a PATH lookup
        ex.update(_absolute({"_origin": user["_origin"], "command": ex["command"]}, ("command",)))
    for entry in (cluster, user, ctx):
        entry.pop("_origin", None)
    config = {"apiVersion": "v1", "kind": "Config", "current-context": name,
              "clusters": [{"name": cluster_name, "cluster": cluster}],
              "users": [{"name": user_name, "user": user}],
              "contexts": [{"name": name, "context": ctx}]}
    return Target(name, cluster_name, str(cluster.get("server") or ""), user_name,
                  str(ctx.get("namespace") or "default"), tuple(p for p, _ in docs), config, read_only)


def current_context(kubeconfig: str | None = None) -> str:
    """The merged kubeconfig's current context ("" when there is none or it cannot be read)."""
    from ambient_tui.cluster.client import ClusterAccessError

    try:
        return resolve(kubeconfig).context
    except ClusterAccessError:
        return ""


def pin_steps(steps, target: Target) -> None:
    """Every helm, kubectl and istioctl step of a plan talks to the target and nothing else."""
    for s in steps:
        argv = getattr(s, "argv", None)
        if not argv or os.path.basename(argv[0]) not in TOOLS or "--kubeconfig" in argv:
            continue
        flags = target.tool_flags(os.path.basename(argv[0]))
        if os.path.basename(argv[0]) == "helm":
            argv += flags
        else:
            argv[1:1] = flags


def api_client(target: Target, fail_fast: bool = True):
    """A kubernetes ApiClient for the target; an exec plugin runs here (see run_plugin), and
    again shortly before its token expires. Does not contact the API server."""
    from kubernetes import client, config

    cfg_dict = copy.deepcopy(target.config)
    user = cfg_dict["users"][0]["user"]
    plugin = ExecPlugin.from_user(user)
    expiring = False
    if plugin is not None:
        status = run_plugin(target)
        user.pop("exec", None)
        if status.get("token"):
            user["token"] = status["token"]
            expiring = bool(status.get("expirationTimestamp"))
        else:
            user["client-certificate-data"] = base64.b64encode(status["clientCertificateData"].encode()).decode()
            user["client-key-data"] = base64.b64encode(str(status.get("clientKeyData", "")).encode()).decode()
    cfg = client.Configuration()
    try:
        config.load_kube_config_from_dict(cfg_dict, context=target.context, client_configuration=cfg,
                                          persist_config=False)
    except Exception as e:  # noqa: BLE001 - ConfigException: a broken entry
        raise ClusterAccessError("no-kubeconfig", f"kubeconfig {':'.join(target.files)}, context "
                                 f"{target.context}: {str(e).splitlines()[0][:200]}") from None
    if expiring:
        def refresh(c) -> None:  # called before every request; cheap while the token is valid
            c.api_key["BearerToken"] = "Bearer " + run_plugin(target)["token"]
        cfg.refresh_api_key_hook = refresh
    if fail_fast:
        cfg.retries = 0  # the checks have their own timeouts; the watches keep urllib3's retries
    return client.ApiClient(cfg)
