"""The small pieces the local control plane and the AWS loopback server share: a JSON REST
client for the API server (no kubernetes import: start-up speed), a free loopback port, and
the aws-node env update the managed add-on stand-in rolls out. Neither of those two modules
imports the other's (import-linter checks it)."""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path


class SandboxError(RuntimeError):
    """Start/stop failed; the message says why and how to retry."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """Minimal JSON REST client for the bootstrap objects (no kubernetes import: start-up speed)."""

    def __init__(self, url: str, token: str, ca_file: Path) -> None:
        self.url, self.token = url, token
        self.ctx = ssl.create_default_context(cafile=str(ca_file))

    def request(self, method: str, path: str, body: object = None,
                content_type: str = "application/json", timeout: float = 10) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": content_type,
            "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw.startswith(b"{") else {"raw": raw.decode()})
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, {"raw": raw.decode(errors="replace")}

    def create(self, path: str, obj: dict) -> dict:
        code, out = self.request("POST", path, obj)
        if code not in (200, 201, 409):  # 409: already there (idempotent bootstrap)
            raise SandboxError(f"creating {obj.get('kind')} {obj['metadata'].get('name')}: "
                               f"HTTP {code} {out.get('message', out)}")
        return out


def set_aws_node_env(api: Api, env: dict[str, str | None]) -> None:
    path = "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node"
    # Optimistic concurrency: retry on 409. The DaemonSet controller rewrites the object's
    # status as kwok's pods change, so on a busy machine several tries in a row can lose.
    for attempt in range(30):
        if attempt:
            time.sleep(min(0.1 * attempt, 1.0))
        code, ds = api.request("GET", path)
        if code != 200:
            raise SandboxError(f"reading daemonset aws-node: HTTP {code}")
        c = ds["spec"]["template"]["spec"]["containers"][0]
        cur = [e for e in c.get("env", []) if e["name"] not in env]
        cur += [{"name": k, "value": str(v)} for k, v in env.items() if v is not None]
        c["env"] = sorted(cur, key=lambda e: e["name"])
        code, out = api.request("PUT", path, ds)
        if code == 200:
            return
        if code != 409:
            raise SandboxError(f"updating daemonset aws-node: HTTP {code} {out.get('message')}")
    raise SandboxError("updating daemonset aws-node: conflicts kept happening")
