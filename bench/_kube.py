"""A small keep-alive JSON client for the benchmark's load generator (many requests, one
TLS handshake per thread). Only for loopback sandbox use; the token is never printed."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from urllib.parse import urlsplit


class Kube:
    def __init__(self, url: str, token: str, ca_file: str) -> None:
        u = urlsplit(url)
        self.host, self.port = u.hostname, u.port or 443
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                         "Content-Type": "application/json"}
        self._ctx = ssl.create_default_context(cafile=ca_file)
        self._local = threading.local()  # one connection per thread

    def _conn(self) -> http.client.HTTPSConnection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = http.client.HTTPSConnection(self.host, self.port, context=self._ctx, timeout=60)
            self._local.conn = c
        return c

    def request(self, method: str, path: str, body: object = None,
                content_type: str | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self._headers)
        if content_type:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):  # a keep-alive connection the server closed: reconnect once
            c = self._conn()
            try:
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                raw = r.read()
                break
            except (http.client.HTTPException, OSError):
                c.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        try:
            out = json.loads(raw) if raw else {}
        except ValueError:
            out = {"raw": raw[:200].decode(errors="replace")}
        return r.status, out


def pod_manifest(namespace: str, name: str, node: str) -> dict:
    """A pod bound to a kwok node directly (spec.nodeName): no scheduler in the way, kwok
    turns it Running like a kubelet would."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench", "ns": namespace}},
        "spec": {"nodeName": node, "containers": [{
            "name": "app", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}],
            "tolerations": [{"operator": "Exists"}]},
    }
