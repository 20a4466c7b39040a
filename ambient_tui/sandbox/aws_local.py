"""AWS on loopback: moto (STS, EKS) behind a small front server that adds EKS add-on calls.

moto has no EKS add-on API, so the front server answers ``/clusters/<name>/addons*`` (and
add-on updates) itself and forwards everything else to moto unchanged. boto3 reaches it by the
ordinary ``AWS_ENDPOINT_URL`` variable; the installer has no test-only code path.

UpdateAddon with ``{"env": {...}}`` configurationValues also sets those env vars on
``kube-system/aws-node`` in the sandbox cluster, as the real managed add-on does.

Run as a process: ``python -m ambient_tui.sandbox.aws_local serve --state-dir D --port P``.
Test helpers: ``GET /_sandbox/addon-calls`` lists the add-on calls received.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FAKE_KEY_ID = "testing"  # fake credentials: moto accepts anything; never real secrets
FAKE_SECRET = "testing"
VPC_CNI_VERSION = "v1.20.4-eksbuild.1"
KUBE_MINOR = "1.34"


def client_env(endpoint: str, region: str, state_dir: Path | str | None = None) -> dict[str, str]:
    """Environment that points boto3 (and the aws CLI) at the loopback servers."""
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        # No instance-metadata probe to 169.254.169.254, no user config or profiles.
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if state_dir is not None:
        env["AWS_CONFIG_FILE"] = str(Path(state_dir) / "aws-config")
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(Path(state_dir) / "aws-credentials")
    return env


# Variables from a user's shell that would override or confuse the fake credentials.
CLIENT_ENV_UNSET = ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_EKS",
                    "AWS_ENDPOINT_URL_STS"]


def server_env(pythonpath: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if pythonpath:  # the server imports this package; it may not be installed (a checkout)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    for k in CLIENT_ENV_UNSET:
        env.pop(k, None)
    env.update(AWS_ACCESS_KEY_ID=FAKE_KEY_ID, AWS_SECRET_ACCESS_KEY=FAKE_SECRET,
               AWS_EC2_METADATA_DISABLED="true")
    return env


def ping(endpoint: str) -> bool:
    with urllib.request.urlopen(endpoint + "/_sandbox/ping", timeout=2) as r:
        return r.status == 200


def addon_calls(endpoint: str) -> list[dict]:
    """Add-on calls the front server received (for tests)."""
    with urllib.request.urlopen(endpoint + "/_sandbox/addon-calls", timeout=5) as r:
        return json.loads(r.read())


# --- server side ------------------------------------------------------------------------------

class AddonStore:
    def __init__(self, cluster: str, region: str, account: str, api=None) -> None:
        self.cluster, self.region, self.account = cluster, region, account
        self.api = api  # control_plane.Api to mirror vpc-cni env onto aws-node
        self.lock = threading.Lock()
        self.calls: list[dict] = []
        self.updates: dict[str, dict] = {}
        now = time.time()
        self.addons: dict[str, dict] = {
            "vpc-cni": {
                "addonName": "vpc-cni", "clusterName": cluster, "status": "ACTIVE",
                "addonVersion": VPC_CNI_VERSION,
                "health": {"issues": []},
                "addonArn": f"arn:aws:eks:{region}:{account}:addon/{cluster}/vpc-cni/"
                            "b2c4a1d0-0000-4000-8000-000000000001",
                "createdAt": now, "modifiedAt": now, "tags": {},
                "configurationValues": json.dumps(
                    {"env": {"ENABLE_POD_ENI": "false",
                             "POD_SECURITY_GROUP_ENFORCING_MODE": "standard"}}),
            },
        }

    def record(self, op: str, **kw) -> None:
        with self.lock:
            self.calls.append({"op": op, "at": time.time(), **kw})


def _parse_config_values(text: str) -> dict:
    try:
        v = json.loads(text)
    except ValueError:
        try:
            import yaml  # EKS accepts YAML too
            v = yaml.safe_load(text)
        except Exception as e:  # noqa: BLE001 - any parse failure is the caller's bad input
            raise ValueError(f"configurationValues is neither JSON nor YAML: {e}") from None
    if not isinstance(v, dict):
        raise ValueError("configurationValues must be an object")
    return v


_ADDON_RE = re.compile(r"^/clusters/([^/]+)/addons(?:/([^/]+))?(/update)?/?$")
_UPDATE_RE = re.compile(r"^/clusters/([^/]+)/updates/([^/]+)/?$")


class FrontHandler(BaseHTTPRequestHandler):
    server_version = "ambient-sandbox-aws"
    store: AddonStore
    moto: tuple[str, int]

    def log_message(self, fmt, *args):  # quiet; errors still reach the log file
        pass

    def _send_json(self, code: int, body: object, err: str | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if err:
            self.send_header("x-amzn-ErrorType", err)
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, code: int, err: str, msg: str, **extra) -> None:
        self._send_json(code, {"message": msg, **extra}, err)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _route(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        path, query = urllib.parse.unquote(url.path), urllib.parse.parse_qs(url.query)
        if path == "/_sandbox/ping":
            return self._send_json(200, {"ok": True})
        if path == "/_sandbox/addon-calls":
            with self.store.lock:
                return self._send_json(200, self.store.calls)
        m = _ADDON_RE.match(path)
        if m:
            return self._addons(method, m.group(1), m.group(2), bool(m.group(3)))
        m = _UPDATE_RE.match(path)
        if m and "addonName" in query:
            return self._describe_update(m.group(1), m.group(2), query["addonName"][0])
        if path.startswith("/addons/supported-versions"):
            return self._addon_versions(query)
        if path.startswith("/addons/configuration-schemas"):
            return self._addon_schema(query)
        return self._forward(method)

    do_GET = lambda self: self._route("GET")  # noqa: E731
    do_POST = lambda self: self._route("POST")  # noqa: E731
    do_PUT = lambda self: self._route("PUT")  # noqa: E731
    do_DELETE = lambda self: self._route("DELETE")  # noqa: E731
    do_PATCH = lambda self: self._route("PATCH")  # noqa: E731
    do_HEAD = lambda self: self._route("HEAD")  # noqa: E731

    def _forward(self, method: str) -> None:
        body = self._body()
        conn = http.client.HTTPConnection(*self.moto, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        try:
            conn.request(method, self.path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
        except OSError as e:
            return self._error(502, "ServiceUnavailableException", f"moto unreachable: {e}")
        finally:
            conn.close()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "server",
                                 "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # --- EKS add-on API -----------------------------------------------------------------------
    def _addons(self, method: str, cluster: str, name: str | None, update: bool) -> None:
        st = self.store
        body = self._body()
        if cluster != st.cluster:
            return self._error(404, "ResourceNotFoundException",
                               f"No cluster found for name: {cluster}.", clusterName=cluster)
        if name is None:
            if method == "GET":
                st.record("ListAddons", cluster=cluster)
                return self._send_json(200, {"addons": sorted(st.addons)})
            return self._error(400, "InvalidRequestException",
                               "CreateAddon is not served by the sandbox")
        with st.lock:
            addon = st.addons.get(name)
        if addon is None:
            return self._error(404, "ResourceNotFoundException",
                               f"No addon: {name} found in cluster: {cluster}",
                               clusterName=cluster, addonName=name)
        if method == "GET" and not update:
            st.record("DescribeAddon", cluster=cluster, addon=name)
            with st.lock:
                return self._send_json(200, {"addon": dict(addon)})
        if method == "POST" and update:
            try:
                req = json.loads(body or b"{}")
            except ValueError:
                return self._error(400, "InvalidParameterException", "request body is not JSON")
            cv = req.get("configurationValues")
            params = []
            env: dict = {}
            if cv is not None:
                try:
                    env = _parse_config_values(cv).get("env") or {} if cv.strip() else {}
                except ValueError as e:
                    return self._error(400, "InvalidParameterException", str(e),
                                       clusterName=cluster, addonName=name)
                params.append({"type": "ConfigurationValues", "value": cv})
            for key, ptype in (("addonVersion", "AddonVersion"),
                               ("serviceAccountRoleArn", "ServiceAccountRoleArn"),
                               ("resolveConflicts", "ResolveConflicts")):
                if key in req:
                    params.append({"type": ptype, "value": str(req[key])})
            st.record("UpdateAddon", cluster=cluster, addon=name, request=req)
            upd_id = str(uuid.uuid4())
            now = time.time()
            with st.lock:
                if cv is not None:
                    addon["configurationValues"] = cv
                if "addonVersion" in req:
                    addon["addonVersion"] = req["addonVersion"]
                if "serviceAccountRoleArn" in req:
                    addon["serviceAccountRoleArn"] = req["serviceAccountRoleArn"]
                addon["modifiedAt"] = now
                upd = {"id": upd_id, "status": "InProgress", "type": "AddonUpdate",
                       "params": params, "createdAt": now, "errors": []}
                st.updates[upd_id] = {**upd, "status": "Successful"}
            if name == "vpc-cni" and env and st.api is not None:
                # What the managed add-on does: roll the env onto the DaemonSet.
                from .kube_api import set_aws_node_env
                try:
                    set_aws_node_env(st.api, {k: str(v) for k, v in env.items()})
                except Exception as e:  # noqa: BLE001 - reported in the update's errors
                    st.updates[upd_id].update(status="Failed", errors=[
                        {"errorCode": "ConfigurationConflict", "errorMessage": str(e)}])
            return self._send_json(200, {"update": upd})
        return self._error(400, "InvalidRequestException", f"{method} {self.path} not served")

    def _describe_update(self, cluster: str, upd_id: str, addon: str) -> None:
        st = self.store
        st.record("DescribeUpdate", cluster=cluster, addon=addon, update=upd_id)
        with st.lock:
            upd = st.updates.get(upd_id)
        if cluster != st.cluster or upd is None:
            return self._error(404, "ResourceNotFoundException", f"No update found for ID: {upd_id}")
        return self._send_json(200, {"update": upd})

    def _addon_versions(self, query: dict) -> None:
        name = (query.get("addonName") or ["vpc-cni"])[0]
        self.store.record("DescribeAddonVersions", addon=name)
        if name != "vpc-cni":
            return self._send_json(200, {"addons": []})
        compat = [{"clusterVersion": KUBE_MINOR, "platformVersions": ["*"], "defaultVersion": True}]
        return self._send_json(200, {"addons": [{
            "addonName": "vpc-cni", "type": "networking", "owner": "aws",
            "addonVersions": [{"addonVersion": v, "architecture": ["amd64", "arm64"],
                               "compatibilities": compat, "requiresConfiguration": False}
                              for v in (VPC_CNI_VERSION, "v1.19.6-eksbuild.7")]}]})

    def _addon_schema(self, query: dict) -> None:
        name = (query.get("addonName") or [""])[0]
        ver = (query.get("addonVersion") or [VPC_CNI_VERSION])[0]
        self.store.record("DescribeAddonConfiguration", addon=name)
        if name != "vpc-cni":
            return self._error(404, "ResourceNotFoundException", f"No addon: {name}")
        schema = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                  "properties": {"env": {"type": "object", "additionalProperties": {"type": "string"}},
                                 "enableNetworkPolicy": {"type": "string"}}}
        return self._send_json(200, {"addonName": name, "addonVersion": ver,
                                     "configurationSchema": json.dumps(schema)})


def _seed_moto_cluster(moto_url: str, cluster: str, region: str, api_url: str, ca_b64: str) -> str:
    import boto3
    eks = boto3.client("eks", region_name=region, endpoint_url=moto_url,
                       aws_access_key_id=FAKE_KEY_ID, aws_secret_access_key=FAKE_SECRET)
    out = eks.create_cluster(
        name=cluster, version=KUBE_MINOR,
        roleArn="arn:aws:iam::123456789012:role/ambient-sandbox-cluster",
        resourcesVpcConfig={"subnetIds": ["subnet-0a1b2c3d", "subnet-1a2b3c4d"],
                            "securityGroupIds": ["sg-0123456789abcdef0"]},
    )
    # moto invents the endpoint and CA; point them at the local API server, in moto's own
    # in-process backend (there is no API to change them).
    from moto.eks.models import eks_backends
    account = out["cluster"]["arn"].split(":")[4]
    c = eks_backends[account][region].clusters[cluster]
    c.endpoint = api_url
    c.certificateAuthority = {"data": ca_b64}
    if hasattr(c, "certificate_authority"):
        c.certificate_authority = {"data": ca_b64}
    return account


def serve(state_dir: Path, port: int) -> None:
    import base64

    from moto.server import ThreadedMotoServer

    from .kube_api import Api
    info = json.loads((state_dir / "state.json").read_text())
    (state_dir / "aws-config").write_text("")  # empty: no profiles leak in from the user
    (state_dir / "aws-credentials").write_text("")
    from .kube_api import free_port
    mport = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=mport, verbose=False)
    moto.start()
    ca_file = state_dir / "pki" / "server.crt"
    # The EKS endpoint is the API server as the kubeconfig names it (the latency relay, if any).
    account = _seed_moto_cluster(f"http://127.0.0.1:{mport}", info["name"], info["region"],
                                 info.get("client_url") or info["url"],
                                 base64.b64encode(ca_file.read_bytes()).decode())
    api = Api(info["url"], info["tokens"]["admin"], ca_file)
    store = AddonStore(info["name"], info["region"], account, api)
    handler = type("Handler", (FrontHandler,), {"store": store, "moto": ("127.0.0.1", mport)})
    httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
    httpd.daemon_threads = True
    print(f"aws front on 127.0.0.1:{port}, moto on 127.0.0.1:{mport}", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        moto.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ambient_tui.sandbox.aws_local")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run moto + the EKS add-on handler on loopback")
    s.add_argument("--state-dir", required=True, type=Path)
    s.add_argument("--port", required=True, type=int)
    a = ap.parse_args(argv)
    serve(a.state_dir, a.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
