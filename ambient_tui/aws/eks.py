"""STS identity, the EKS cluster and the vpc-cni add-on, through boto3 (imported lazily).

Endpoints come from boto3's own configuration (AWS_ENDPOINT_URL, profiles); there is no
test-only code path.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass

EKS_ARN = re.compile(r"^arn:aws[a-z-]*:eks:([a-z0-9-]+):(\d+):cluster/(.+)$")
TIMEOUTS = {"connect_timeout": 5, "read_timeout": 15, "retries": {"max_attempts": 1}}


class AwsError(RuntimeError):
    pass


@dataclass(frozen=True)
class ClusterRef:
    name: str
    region: str | None


def cluster_from_context(context: str, kubeconfig: dict | None = None) -> ClusterRef | None:
    """The EKS cluster behind a kube context: its ARN name, or `--cluster-name` in the exec args."""
    m = EKS_ARN.match(context or "")
    if m:
        return ClusterRef(m.group(3), m.group(1))
    for ctx in (kubeconfig or {}).get("contexts") or []:
        if ctx.get("name") != context:
            continue
        user = (ctx.get("context") or {}).get("user")
        for u in (kubeconfig or {}).get("users") or []:
            if u.get("name") != user:
                continue
            args = ((u.get("user") or {}).get("exec") or {}).get("args") or []
            name = region = None
            for i, a in enumerate(args[:-1]):
                if a in ("--cluster-name", "-i", "--cluster-id"):
                    name = args[i + 1]
                if a == "--region":
                    region = args[i + 1]
            if name:
                return ClusterRef(name, region)
    return None


_profile: str | None = None  # the target's profile (its kubeconfig exec env), see use_profile


def use_profile(profile: str | None) -> None:
    """Every AWS call of this process uses `profile` (None: boto3's own default chain). The
    cluster target sets it from the exec block's AWS_PROFILE: the profile that gets the
    cluster's token is the one whose EKS add-on and identity the checks must read."""
    global _profile
    _profile = profile or None


def current_profile() -> str | None:
    return _profile


def aws_configured() -> bool:
    """Whether boto3 would find credentials (env, profile, SSO...)."""
    if _profile:
        return True
    keys = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    if any(os.environ.get(k) for k in keys):
        return True
    home = os.path.expanduser("~/.aws")
    return os.path.exists(os.path.join(home, "credentials")) or os.path.exists(os.path.join(home, "config"))


_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def _client(service: str, region: str | None):
    """One client per service and region, from one session, for as long as the AWS_*
    environment is the same. A new session per call re-read botocore's endpoint and service
    models each time (~0.1 s CPU); clients are thread-safe, sessions are not, hence the lock."""
    from botocore.config import Config

    from ambient_tui.aws.model_loader import new_session

    env = (_profile,) + tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    with _clients_lock:
        session = _clients.get(("session", env))
        if session is None:
            session = _clients[("session", env)] = new_session(_profile)
        client = _clients.get((service, region, env))
        if client is None:
            client = _clients[(service, region, env)] = session.client(
                service, region_name=region, config=Config(**TIMEOUTS))
        return client


def forget_clients() -> None:
    """Drop the cached session and clients: the state of a process that has made no AWS call."""
    with _clients_lock:
        _clients.clear()


def _err(what: str, e: Exception) -> AwsError:
    code = getattr(e, "response", {}).get("Error", {}).get("Code") if hasattr(e, "response") else None
    return AwsError(f"{what}: {code or type(e).__name__}: {str(e)[:200]}")


def identity(region: str | None = None) -> dict:
    try:
        return _client("sts", region).get_caller_identity()
    except Exception as e:  # noqa: BLE001
        raise _err("sts:GetCallerIdentity", e) from None


def describe_cluster(name: str, region: str | None) -> dict:
    try:
        return _client("eks", region).describe_cluster(name=name)["cluster"]
    except Exception as e:  # noqa: BLE001
        raise _err(f"eks:DescribeCluster {name}", e) from None


def describe_vpc_cni_addon(cluster: str, region: str | None) -> dict | None:
    """The managed vpc-cni add-on, or None when the VPC CNI is self-managed."""
    client = _client("eks", region)
    try:
        return client.describe_addon(clusterName=cluster, addonName="vpc-cni")["addon"]
    except client.exceptions.ResourceNotFoundException:
        return None
    except Exception as e:  # noqa: BLE001
        raise _err(f"eks:DescribeAddon {cluster}/vpc-cni", e) from None


def addon_config(addon: dict | None) -> dict:
    """The add-on's configurationValues (JSON or YAML) as a dict."""
    text = (addon or {}).get("configurationValues") or ""
    if not text.strip():
        return {}
    try:
        v = json.loads(text)
    except ValueError:
        import yaml
        v = yaml.safe_load(text)
    return v if isinstance(v, dict) else {}


def update_vpc_cni_env(cluster: str, region: str | None, env: dict[str, str]) -> list[str]:
    """UpdateAddon vpc-cni with the env vars merged into its current configurationValues."""
    addon = describe_vpc_cni_addon(cluster, region)
    if addon is None:
        raise AwsError(f"vpc-cni is not a managed add-on of {cluster}; patch the DaemonSet instead")
    cfg = addon_config(addon)
    cfg.setdefault("env", {}).update(env)
    return [_put_vpc_cni_config(cluster, region, cfg), f"configurationValues: {json.dumps(cfg, sort_keys=True)}"]


def put_vpc_cni_config(cluster: str, region: str | None, cfg: dict) -> str:
    return _put_vpc_cni_config(cluster, region, cfg)


def put_vpc_cni_config_text(cluster: str, region: str | None, text: str) -> str:
    """UpdateAddon with configurationValues exactly as given (a revert to the recorded text)."""
    return _put_vpc_cni_config(cluster, region, text)


def _put_vpc_cni_config(cluster: str, region: str | None, cfg: dict | str) -> str:
    """UpdateAddon with the whole configurationValues; PRESERVE keeps fields set outside EKS."""
    try:
        r = _client("eks", region).update_addon(clusterName=cluster, addonName="vpc-cni",
                                                configurationValues=cfg if isinstance(cfg, str) else json.dumps(cfg),
                                                resolveConflicts="PRESERVE")
    except Exception as e:  # noqa: BLE001
        raise _err(f"eks:UpdateAddon {cluster}/vpc-cni", e) from None
    upd = r.get("update", {})
    return f"UpdateAddon vpc-cni: update {upd.get('id', '?')} {upd.get('status', '')}".strip()


def restore_vpc_cni_env_var(cluster: str, region: str | None, name: str, value: str | None) -> list[str]:
    """UpdateAddon vpc-cni with one env var put back to `value`, or removed when None (the
    add-on's own default then applies). The rest of configurationValues is kept."""
    addon = describe_vpc_cni_addon(cluster, region)
    if addon is None:
        raise AwsError(f"vpc-cni is not a managed add-on of {cluster} any more; nothing to restore there")
    cfg = addon_config(addon)
    env = dict(cfg.get("env") or {})
    if value is None:
        env.pop(name, None)
    else:
        env[name] = value
    if env:
        cfg["env"] = env
    else:
        cfg.pop("env", None)
    return [_put_vpc_cni_config(cluster, region, cfg),
            f"{name} " + (f"restored to {value}" if value is not None else "removed (add-on default)"),
            f"configurationValues: {json.dumps(cfg, sort_keys=True)}"]
