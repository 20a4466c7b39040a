"""Start and stop a real Kubernetes control plane on 127.0.0.1, made to look like EKS.

etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok (fake nodes whose
pods go Running), plus the AWS loopback servers (see aws_local.py). Every process runs in its
own process group with a pid file in the state dir; stop() kills the groups and removes the
state dir, so nothing is left behind.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ambient_tui.dirs import cache_root

from . import build
# Shared with the AWS loopback server (aws_local), which must not import this module.
from .kube_api import Api, SandboxError, free_port, set_aws_node_env  # noqa: F401

DEFAULT_NAME = "ambient-sandbox"
DEFAULT_REGION = "us-west-2"
ACCOUNT_ID = "123456789012"  # moto's default account
RESTRICTED_NAMESPACE = "restricted"
FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
NODES = [  # (name, zone); three nodes in one EKS managed node group
    ("ip-10-0-1-10.us-west-2.compute.internal", "us-west-2a"),
    ("ip-10-0-2-20.us-west-2.compute.internal", "us-west-2b"),
    ("ip-10-0-3-30.us-west-2.compute.internal", "us-west-2c"),
]
VPC_CNI_ENV_DEFAULTS = {
    "ADDITIONAL_ENI_TAGS": "{}",
    "AWS_VPC_CNI_NODE_PORT_SUPPORT": "true",
    "AWS_VPC_ENI_MTU": "9001",
    "AWS_VPC_K8S_CNI_EXTERNALSNAT": "false",
    "AWS_VPC_K8S_CNI_LOGLEVEL": "DEBUG",
    "AWS_VPC_K8S_CNI_RANDOMIZESNAT": "prng",
    "DISABLE_NETWORK_RESOURCE_PROVISIONING": "false",
    "ENABLE_IPv4": "true",
    "ENABLE_IPv6": "false",
    "ENABLE_POD_ENI": "false",
    "ENABLE_PREFIX_DELEGATION": "false",
    "NETWORK_POLICY_ENFORCING_MODE": "standard",
    "POD_SECURITY_GROUP_ENFORCING_MODE": "standard",
    "VPC_CNI_VERSION": "v1.20.4",
    "WARM_ENI_TARGET": "1",
    "WARM_PREFIX_TARGET": "1",
}
NODE_PODS = 58  # max pods of an m5.xlarge with the VPC CNI
COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "aws", "latency"]
CORE_COMPONENTS = COMPONENTS[:5]  # always started; aws and latency only when asked for


def default_state_dir(name: str = DEFAULT_NAME) -> Path:
    env = os.environ.get("AMBIENT_TUI_SANDBOX_DIR")
    return Path(env).expanduser() if env else cache_root() / "sandbox" / name


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class Status:
    running: dict[str, int | None]  # component -> pid (None when not running)
    state_dir: Path
    info: dict

    @property
    def up(self) -> bool:
        return bool(self.running) and all(self.running.values())


class ControlPlane:
    def __init__(self, state_dir: Path | str | None = None, name: str = DEFAULT_NAME,
                 region: str = DEFAULT_REGION, apiserver_port: int | None = None,
                 aws_port: int | None = None, with_aws: bool = True, out=None,
                 node_pods: int = NODE_PODS, latency_ms: float = 0) -> None:
        self.name, self.region = name, region
        # Pods each fake node accepts (an m5.xlarge takes 58); benchmarks raise it to hold
        # tens of thousands of pods on the 3 nodes.
        self.node_pods = node_pods
        self.state_dir = Path(state_dir) if state_dir else default_state_dir(name)
        self.want_api_port, self.want_aws_port = apiserver_port, aws_port
        self.with_aws = with_aws
        # > 0: kubeconfig and AWS_ENDPOINT_URL lead through a relay adding this round trip
        # (latency.py), as to a remote cluster; the sandbox's own components go direct.
        self.latency_ms = latency_ms
        self.out = out or sys.stderr
        self.info: dict = {}
        if self.state_file.is_file():
            try:
                self.info = json.loads(self.state_file.read_text())
            except ValueError:
                self.info = {}

    # --- paths and facts ------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def restricted_kubeconfig(self) -> Path:
        return self.state_dir / "restricted.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "pki" / "server.crt"

    @property
    def url(self) -> str:
        """The API server as the sandbox's own components reach it."""
        return self.info["url"]

    @property
    def client_url(self) -> str:
        """The API server as kubeconfig names it: through the latency relay when there is one."""
        return self.info.get("client_url") or self.info["url"]

    @property
    def admin_token(self) -> str:
        return self.info["tokens"]["admin"]

    @property
    def aws_endpoint(self) -> str | None:
        return self.info.get("aws_endpoint")

    @property
    def admin_context(self) -> str:
        # Same shape as `aws eks update-kubeconfig`, so code that reads the context sees EKS.
        return f"arn:aws:eks:{self.region}:{ACCOUNT_ID}:cluster/{self.name}"

    @property
    def restricted_context(self) -> str:
        return f"restricted@{self.name}"

    def api(self, token: str | None = None) -> Api:
        return Api(self.url, token or self.admin_token, self.ca_file)

    def say(self, msg: str) -> None:
        print(f"[sandbox] {msg}", file=self.out, flush=True)

    # --- pid files ------------------------------------------------------------------------
    def _pidfile(self, comp: str) -> Path:
        return self.state_dir / "pids" / f"{comp}.pid"

    def _read_pids(self) -> dict[str, tuple[int, str]]:
        pids = {}
        d = self.state_dir / "pids"
        if d.is_dir():
            for f in d.glob("*.pid"):
                try:
                    pid_s, marker = f.read_text().split("\n", 1)
                    pids[f.stem] = (int(pid_s), marker.strip())
                except ValueError:
                    continue
        return pids

    def _live(self) -> dict[str, int]:
        """Components whose pid is alive *and* still runs our program (pids get reused)."""
        live = {}
        for comp, (pid, marker) in self._read_pids().items():
            if _alive(pid) and marker in _cmdline(pid):
                live[comp] = pid
        return live

    def status(self) -> Status:
        live = self._live()
        optional = {"aws": "aws_endpoint", "latency": "latency_ms"}
        comps = [c for c in COMPONENTS if c not in optional or self.info.get(optional[c])]
        running = {c: live.get(c) for c in comps} if self.state_dir.exists() else {}
        return Status(running, self.state_dir, self.info)

    # --- start ----------------------------------------------------------------------------
    def _spawn(self, comp: str, args: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.state_dir / "logs" / f"{comp}.log", "ab")
        # Own session/process group: stop() kills the whole group; Ctrl-C in the shell that
        # ran `sandbox up` does not reach it.
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True, env=env, cwd=self.state_dir)
        log.close()
        # The marker (state dir) is in every command line; it tells our process from a reused pid.
        self._pidfile(comp).write_text(f"{p.pid}\n{self.state_dir}\n")
        self._procs[comp] = p
        return p

    def _log_tail(self, comp: str, n: int = 12) -> str:
        f = self.state_dir / "logs" / f"{comp}.log"
        try:
            return "\n".join(f.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def _check_exited(self) -> None:
        for comp, p in self._procs.items():
            if p.poll() is not None:
                tail = self._log_tail(comp)
                hint = ""
                if "address already in use" in tail:
                    hint = " (a port was taken meanwhile)"
                raise SandboxError(f"{comp} exited with code {p.returncode}{hint}:\n{tail}")

    def _clean_stale(self) -> None:
        if not self.state_dir.exists():
            return
        live = self._live()
        if live:
            raise SandboxError(
                f"a sandbox is already running from {self.state_dir} "
                f"({', '.join(f'{c}={p}' for c, p in sorted(live.items()))}); "
                "run `ambient-tui sandbox down` first, or use another state dir")
        if self._read_pids():
            self.say(f"found stale pid files from a killed run in {self.state_dir}; "
                     "none of those processes is alive; cleaning up")
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def _pick_port(self, wanted: int | None, what: str) -> int:
        if wanted is None:
            return free_port()
        if port_in_use(wanted):
            raise SandboxError(f"port {wanted} on 127.0.0.1 for {what} is already in use; "
                               "choose another port or leave it unset to pick a free one")
        return wanted

    def _certs(self) -> None:
        pki = self.state_dir / "pki"
        pki.mkdir()
        # One self-signed serving cert doubles as the CA in the kubeconfig. EC keys are fast.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "3650",
                        "-keyout", str(pki / "server.key"), "-out", str(pki / "server.crt"),
                        "-subj", "/CN=kube-apiserver",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
                                   "DNS:kubernetes.default,DNS:kubernetes.default.svc",
                        ], check=True, capture_output=True)
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
                        "-out", str(pki / "sa.key")], check=True, capture_output=True)
        subprocess.run(["openssl", "ec", "-in", str(pki / "sa.key"), "-pubout",
                        "-out", str(pki / "sa.pub")], check=True, capture_output=True)

    def _write_kubeconfigs(self) -> None:
        import_ca = base64.b64encode(self.ca_file.read_bytes()).decode()
        tok = self.info["tokens"]

        def kc(contexts: list[tuple[str, str, str, str | None]], server: str) -> str:
            # JSON is valid YAML; no yaml dependency needed here.
            return json.dumps({
                "apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": self.admin_context, "cluster": {
                    "server": server, "certificate-authority-data": import_ca}}],
                "users": [{"name": u, "user": {"token": t}} for _, u, t, _ in contexts],
                "contexts": [{"name": c, "context": {
                    "cluster": self.admin_context, "user": u,
                    **({"namespace": ns} if ns else {})}} for c, u, _, ns in contexts],
                "current-context": contexts[0][0],
            }, indent=1)

        admin = (self.admin_context, "admin", tok["admin"], None)
        restricted = (self.restricted_context, "restricted", tok["restricted"], RESTRICTED_NAMESPACE)
        for path, ctxs, server in ((self.kubeconfig, [admin, restricted], self.client_url),
                                   (self.restricted_kubeconfig, [restricted], self.client_url),
                                   (self.state_dir / "components.kubeconfig", [admin], self.url)):
            path.write_text(kc(ctxs, server))
            path.chmod(0o600)

    def start(self, timeout: float = 90) -> "ControlPlane":
        missing = [p.dirname for p in build.missing()
                   if p.name in ("etcd", "kubernetes", "kwok")]
        if missing:
            raise SandboxError(f"parts not built: {', '.join(missing)}; run "
                               "`python -m ambient_tui.sandbox.build` (needs Go and the module proxy)")
        if not shutil.which("openssl"):
            raise SandboxError("openssl is needed to make the API server's certificates")
        self._clean_stale()
        t0 = time.monotonic()
        self._procs: dict[str, subprocess.Popen] = {}
        for sub in ("pids", "logs", "etcd"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        try:
            try:
                self._start(t0, timeout)
            except SandboxError as e:
                # A free port picked by us can be taken before the server binds it; once,
                # clean up and start again on new ports.
                if "taken meanwhile" not in str(e):
                    raise
                self.say(f"{e}; retrying on other ports")
                self.stop(quiet=True)
                for sub in ("pids", "logs", "etcd"):
                    (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
                self._procs = {}
                self._start(time.monotonic(), timeout)
        except BaseException:
            self.say("start failed; stopping what was started")
            logs = self.state_dir / "logs"
            keep = Path(str(self.state_dir) + ".failed-logs")
            shutil.rmtree(keep, ignore_errors=True)
            if logs.is_dir() and any(logs.iterdir()):  # keep the reason, outside the state dir
                shutil.copytree(logs, keep)
                self.say(f"logs of the failed start: {keep}")
            self.stop(quiet=True)
            raise
        return self

    def _start(self, t0: float, timeout: float) -> None:
        sd = self.state_dir
        (sd / "etcd").chmod(0o700)  # etcd warns about anything wider
        etcd_port, peer_port = free_port(), free_port()
        api_port = self._pick_port(self.want_api_port, "kube-apiserver")
        self.info = {
            "name": self.name, "region": self.region, "url": f"https://127.0.0.1:{api_port}",
            "ports": {"etcd": etcd_port, "etcd-peer": peer_port, "kube-apiserver": api_port},
            "tokens": {"admin": secrets.token_hex(16), "restricted": secrets.token_hex(16)},
            "state_dir": str(sd), "started_at": time.time(),
        }
        if self.latency_ms > 0:
            relay_port = free_port()
            self.info["latency_ms"] = self.latency_ms
            self.info["client_url"] = f"https://127.0.0.1:{relay_port}"
            self.info["ports"]["api-relay"] = relay_port
        self._certs()
        tok = self.info["tokens"]
        # token,user,uid,"groups"
        (sd / "tokens.csv").write_text(
            f'{tok["admin"]},admin,admin,"system:masters"\n'
            f'{tok["restricted"]},restricted,restricted,"system:authenticated"\n')
        self._write_kubeconfigs()
        self.state_file.write_text(json.dumps(self.info, indent=1))

        (sd / "kwok.yaml").write_text("")  # not ~/.kwok/kwok.yaml: default stages only
        for comp in CORE_COMPONENTS:
            self._spawn(comp, *self._command(comp))
        if self.with_aws:
            self._start_aws()
        if self.latency_ms > 0:
            self._start_latency()

        api = self.api()
        self._wait(t0, timeout, "kube-apiserver /readyz",
                   lambda: api.request("GET", "/readyz", timeout=2)[0] == 200)
        self._bootstrap(api)
        self._wait(t0, timeout, "3 fake nodes Ready and untainted", lambda: self._nodes_ready(api) == len(NODES))
        self.info["ready_seconds"] = round(time.monotonic() - t0, 2)
        self.state_file.write_text(json.dumps(self.info, indent=1))
        self.say(f"up in {self.info['ready_seconds']}s: {self.url} (kubeconfig {self.kubeconfig})")

    def restart_dead(self, timeout: float = 90) -> list[str]:
        """Start again, on the same ports and data, the components of a running sandbox that
        died; returns their names ([] when all run). The rest keeps running untouched."""
        st = self.status()
        dead = [c for c, pid in st.running.items() if pid is None]
        if not dead:
            return []
        if not any(st.running.values()) or not self.info.get("ports"):
            raise SandboxError(f"nothing of the sandbox in {self.state_dir} is running; "
                               "`ambient-tui sandbox up` starts it afresh")
        for comp in dead:  # its port must still be ours to take
            port = self.info["ports"].get(comp)
            if port and port_in_use(port):
                raise SandboxError(f"{comp} is not running but its port {port} is taken; "
                                   "run `ambient-tui sandbox down`, then `sandbox up`")
        self._procs = {}
        t0 = time.monotonic()
        for comp in COMPONENTS:  # in start order: etcd before the API server, and so on
            if comp in dead:
                self.say(f"{comp} is not running; starting it again")
                self._spawn(comp, *self._command(comp))
        api = self.api()
        self._wait(t0, timeout, "kube-apiserver /readyz",
                   lambda: api.request("GET", "/readyz", timeout=2)[0] == 200)
        self._wait(t0, timeout, "3 fake nodes Ready and untainted", lambda: self._nodes_ready(api) == len(NODES))
        if "aws" in dead:
            from . import aws_local
            self._wait(t0, timeout, "AWS endpoint", lambda: aws_local.ping(self.info["aws_endpoint"]))
        return dead

    def _command(self, comp: str) -> tuple[list[str], dict | None]:
        """argv and env of one component, from the ports and paths in state.json: what start
        runs, and what `sandbox up` runs again for a component that died."""
        sd, ports = self.state_dir, self.info["ports"]
        etcd = f"http://127.0.0.1:{ports['etcd']}"
        peer = f"http://127.0.0.1:{ports['etcd-peer']}"
        pki = sd / "pki"
        ckc = str(sd / "components.kubeconfig")
        if comp == "etcd":
            return [str(build.bin_path("etcd")), "--name", "sandbox",
                    "--data-dir", str(sd / "etcd"),
                    "--listen-client-urls", etcd, "--advertise-client-urls", etcd,
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", f"sandbox={peer}",
                    "--unsafe-no-fsync",  # throwaway data: speed over durability
                    "--log-level", "warn"], None
        if comp == "kube-apiserver":
            return [
                str(build.bin_path("kube-apiserver")),
                "--etcd-servers", etcd,
                "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
                "--secure-port", str(ports["kube-apiserver"]),
                "--tls-cert-file", str(pki / "server.crt"), "--tls-private-key-file", str(pki / "server.key"),
                "--token-auth-file", str(sd / "tokens.csv"),
                "--authorization-mode", "RBAC",
                "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file", str(pki / "sa.pub"),
                "--service-account-signing-key-file", str(pki / "sa.key"),
                "--service-cluster-ip-range", "10.100.0.0/16",  # EKS's default service CIDR
                # Istio's webhooks point at ClusterIPs nobody serves here; the API server would dial them.
                "--disable-admission-plugins", "MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
                "--allow-privileged=true",  # istio-cni and ztunnel pods are privileged
                # 127.0.0.1 is not a valid Endpoints address; don't reconcile default/kubernetes.
                "--endpoint-reconciler-type", "none",
                "--enable-priority-and-fairness=false", "--profiling=false",
                "--cert-dir", str(pki),
            ], None
        if comp == "kube-controller-manager":
            return [
                str(build.bin_path("kube-controller-manager")), "--kubeconfig", ckc,
                "--leader-elect=false", "--secure-port=0",
                "--service-account-private-key-file", str(pki / "sa.key"),
                "--root-ca-file", str(pki / "server.crt"),
                "--use-service-account-credentials=false",
                "--controllers", "*,-bootstrapsigner,-tokencleaner,-csrsigning",
                # kwok's heartbeats can stall for a minute on a loaded 2-core machine; a NotReady
                # node marks every pod on it unready and kwok never sets them back, so a
                # `helm --wait` then hangs. Fake nodes gain nothing from being declared lost.
                "--node-monitor-grace-period=10m",
            ], None
        if comp == "kube-scheduler":
            return [str(build.bin_path("kube-scheduler")), "--kubeconfig", ckc,
                    "--leader-elect=false", "--secure-port=0"], None
        if comp == "kwok":
            return self._kwok_args(), None
        if comp == "aws":
            from . import aws_local
            return ([sys.executable, "-m", "ambient_tui.sandbox.aws_local", "serve",
                     "--state-dir", str(sd), "--port", str(ports["aws"])],
                    aws_local.server_env(pythonpath=str(Path(__file__).resolve().parents[2])))
        if comp == "latency":
            routes = [f"{ports['api-relay']}=127.0.0.1:{ports['kube-apiserver']}"]
            if "aws-relay" in ports:
                routes.append(f"{ports['aws-relay']}=127.0.0.1:{ports['aws']}")
            return ([sys.executable, "-m", "ambient_tui.sandbox.latency",
                     "--delay-ms", f"{self.info.get('latency_ms', self.latency_ms):g}", "--state-dir", str(sd),
                     *[a for r in routes for a in ("--route", r)]],
                    {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        raise ValueError(f"unknown sandbox component {comp!r}")

    def _kwok_args(self, binary: str | None = None) -> list[str]:
        k, v = FAKE_NODE_ANNOTATION
        args = [
            binary or str(build.bin_path("kwok")), "--kubeconfig", str(self.state_dir / "components.kubeconfig"),
            "--config", str(self.state_dir / "kwok.yaml"),
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={k}={v}",
            "--node-ip=127.0.0.1", "--cidr=10.244.0.0/16",
            "--server-address=",  # no kubelet-like server: nothing needs it, and no port to clash
        ]
        if self.info.get("kwok_stage_crds"):
            args.append("--enable-crds=Stage")
        return args

    def enable_stage_crds(self, stages: list[dict]) -> bool:
        """Switch kwok to reading its stages from Stage objects in the cluster (kwok's
        `--enable-crds=Stage`), so faults (sandbox/faults.py) come and go as objects. Creates
        the Stage CRD and `stages` (kwok then has no built-in defaults), restarts kwok. Only the
        first call does anything; returns whether it did."""
        if self.state_file.is_file():  # another process may have switched it already
            self.info = json.loads(self.state_file.read_text())
        if self.info.get("kwok_stage_crds"):
            return False
        self._procs = getattr(self, "_procs", {})  # a fresh process (the CLI) started nothing
        api = self.api()
        api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", STAGE_CRD)
        self._wait(time.monotonic(), 30, "the Stage CRD",
                   lambda: api.request("GET", "/apis/kwok.x-k8s.io/v1alpha1/stages")[0] == 200)
        for st in stages:
            api.create("/apis/kwok.x-k8s.io/v1alpha1/stages", st)
        old = self._live().get("kwok")
        # The running kwok's own binary: this process's cache folder may differ ($HOME).
        binary = _cmdline(old).split(" ")[0] if old else ""
        if not binary or not os.path.isfile(binary):
            binary = str(build.bin_path("kwok"))
        if old:
            os.killpg(old, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while _alive(old) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.info["kwok_stage_crds"] = True
        self.state_file.write_text(json.dumps(self.info, indent=1))
        self._spawn("kwok", self._kwok_args(binary))
        return True

    def _start_aws(self) -> None:
        import importlib.util

        from . import aws_local
        if importlib.util.find_spec("moto") is None:
            raise SandboxError("the AWS loopback server needs moto: pip install 'moto[server]' "
                               "(the project's sandbox/test extra), or start without AWS (--no-aws)")
        port = self._pick_port(self.want_aws_port, "the AWS endpoint")
        self.info["aws_endpoint"] = f"http://127.0.0.1:{port}"
        self.info["ports"]["aws"] = port
        if self.latency_ms > 0:  # clients get the relay; the server keeps its own port
            self.info["ports"]["aws-relay"] = free_port()
            self.info["aws_endpoint"] = f"http://127.0.0.1:{self.info['ports']['aws-relay']}"
        self.state_file.write_text(json.dumps(self.info, indent=1))
        self._spawn("aws", *self._command("aws"))
        self._aws_wait = lambda: aws_local.ping(self.info["aws_endpoint"])

    def _start_latency(self) -> None:
        self.state_file.write_text(json.dumps(self.info, indent=1))
        self._spawn("latency", *self._command("latency"))

    def _wait(self, t0: float, timeout: float, what: str, ok) -> None:
        while True:
            self._check_exited()
            try:
                if ok():
                    return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if time.monotonic() - t0 > timeout:
                raise SandboxError(f"timed out after {timeout:.0f}s waiting for {what}; "
                                   f"logs in {self.state_dir / 'logs'}")
            time.sleep(0.1)

    @staticmethod
    def _nodes_ready(api: Api) -> int:
        code, out = api.request("GET", "/api/v1/nodes", timeout=3)
        if code != 200:
            return 0
        n = 0
        for node in out.get("items", []):
            conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
            # The node lifecycle controller's not-ready taint must be gone too, or the first
            # pods of a test would wait for it.
            untainted = not node.get("spec", {}).get("taints")
            n += conds.get("Ready") == "True" and untainted
        return n

    def _bootstrap(self, api: Api) -> None:
        for name, zone in NODES:
            api.create("/api/v1/nodes", node_manifest(name, zone, self.node_pods))
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": RESTRICTED_NAMESPACE}})
        api.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{RESTRICTED_NAMESPACE}/rolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "restricted-edit", "namespace": RESTRICTED_NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "restricted"}],
        })
        api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", SGP_CRD)
        api.create("/apis/apps/v1/namespaces/kube-system/daemonsets", aws_node_manifest(self.name, self.region))
        if self.info.get("aws_endpoint"):
            self._wait(time.monotonic(), 20, "AWS endpoint", self._aws_wait)

    # --- EKS knobs ------------------------------------------------------------------------
    def aws_node_env(self) -> dict[str, str]:
        code, ds = self.api().request("GET", "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node")
        if code != 200:
            raise SandboxError(f"reading daemonset aws-node: HTTP {code}")
        c = ds["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value", "") for e in c.get("env", [])}

    def set_aws_node_env(self, **env: str | None) -> None:
        """Set (or with None, remove) env vars of kube-system/aws-node, like `kubectl set env`."""
        set_aws_node_env(self.api(), env)

    def create_security_group_policy(self, namespace: str, name: str, group_ids: list[str],
                                     pod_labels: dict[str, str] | None = None) -> None:
        self.api().create(
            f"/apis/vpcresources.k8s.aws/v1beta1/namespaces/{namespace}/securitygrouppolicies", {
                "apiVersion": "vpcresources.k8s.aws/v1beta1", "kind": "SecurityGroupPolicy",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"podSelector": {"matchLabels": pod_labels or {}},
                         "securityGroups": {"groupIds": group_ids}}})

    # --- environment for users and tests ---------------------------------------------------
    def env(self) -> dict[str, str]:
        """KUBECONFIG, AWS_* (fake credentials) and PATH with the built tools first."""
        from . import aws_local
        bins = list(dict.fromkeys(str(build.bin_path(n).parent)
                                  for n in ("kubectl", "helm", "istioctl")))
        # Drop earlier copies so `eval "$(sandbox env)"` twice does not grow PATH.
        rest = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p not in bins]
        path = os.pathsep.join(bins + rest)
        env = {"KUBECONFIG": str(self.kubeconfig), "PATH": path}
        if self.aws_endpoint:
            env.update(aws_local.client_env(self.aws_endpoint, self.region, self.state_dir))
        return env

    # --- stop -----------------------------------------------------------------------------
    def stop(self, quiet: bool = False, grace: float = 2.0) -> list[str]:
        """Kill every component's process group and remove the state dir. Returns what ran."""
        pids = self._read_pids()
        live = self._live()
        for comp in reversed(COMPONENTS):  # clients first, etcd last
            if comp in live:
                try:
                    os.killpg(live[comp], signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in live.values()):
            self._reap()
            time.sleep(0.05)
        for comp, pid in live.items():
            if _alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        t = time.monotonic() + 2
        while time.monotonic() < t and any(_alive(p) for p in live.values()):
            self._reap()
            time.sleep(0.02)
        self._reap()
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir, ignore_errors=True)
        if not quiet:
            if live:
                self.say(f"stopped {', '.join(sorted(live))}; removed {self.state_dir}")
            elif pids:
                self.say(f"nothing was running (stale pid files); removed {self.state_dir}")
            else:
                self.say("no sandbox running")
        self.info = {}
        return sorted(live)

    def _reap(self) -> None:
        for p in getattr(self, "_procs", {}).values():
            p.poll()


# --- manifests ------------------------------------------------------------------------------

def node_manifest(name: str, zone: str, pods: int = NODE_PODS) -> dict:
    k, v = FAKE_NODE_ANNOTATION
    alloc = {"cpu": "4", "memory": "16Gi", "pods": str(pods), "ephemeral-storage": "80Gi"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {k: v, "node.alpha.kubernetes.io/ttl": "0"},
                     "labels": {
                         "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                         "kubernetes.io/arch": "amd64", "beta.kubernetes.io/arch": "amd64",
                         "beta.kubernetes.io/os": "linux",
                         "eks.amazonaws.com/nodegroup": "ng-default",
                         "eks.amazonaws.com/capacityType": "ON_DEMAND",
                         "eks.amazonaws.com/nodegroup-image": "ami-0123456789abcdef0",
                         "node.kubernetes.io/instance-type": "m5.xlarge",
                         "topology.kubernetes.io/region": zone[:-1],
                         "topology.kubernetes.io/zone": zone,
                         "type": "kwok"}},
        "spec": {"providerID": f"aws:///{zone}/i-0{hashlib.sha1(name.encode()).hexdigest()[:16]}"},
        "status": {"allocatable": alloc, "capacity": alloc,
                   "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux",
                                "kubeletVersion": build.KUBE_VERSION + "-eks-1234567",
                                "kubeProxyVersion": build.KUBE_VERSION + "-eks-1234567",
                                "containerRuntimeVersion": "containerd://1.7.27",
                                "osImage": "Amazon Linux 2023.8.20250818",
                                "kernelVersion": "6.1.147-172.266.amzn2023.x86_64"}},
    }


# kwok's Stage kind, as a CRD with an open schema: kwok validates the stages it reads.
STAGE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "stages.kwok.x-k8s.io"},
    "spec": {"group": "kwok.x-k8s.io", "scope": "Cluster",
             "names": {"kind": "Stage", "listKind": "StageList", "plural": "stages", "singular": "stage"},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                           "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def aws_node_manifest(cluster: str, region: str) -> dict:
    labels = {"k8s-app": "aws-node", "app.kubernetes.io/name": "aws-node",
              "app.kubernetes.io/instance": "aws-vpc-cni"}
    env = [{"name": k, "value": v} for k, v in VPC_CNI_ENV_DEFAULTS.items()]
    env += [{"name": "CLUSTER_NAME", "value": cluster}, {"name": "AWS_REGION", "value": region},
            {"name": "MY_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    image = f"602401143452.dkr.ecr.{region}.amazonaws.com/amazon-k8s-cni:v1.20.4-eksbuild.1"
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "aws-node", "namespace": "kube-system", "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "aws-node"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
            "template": {"metadata": {"labels": labels}, "spec": {
                "hostNetwork": True, "priorityClassName": "system-node-critical",
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "aws-node", "image": image, "env": env,
                                "ports": [{"containerPort": 61678, "name": "metrics"}],
                                "resources": {"requests": {"cpu": "25m"}},
                                "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}}},
                               {"name": "aws-eks-nodeagent",
                                "image": f"602401143452.dkr.ecr.{region}.amazonaws.com/amazon/aws-network-policy-agent:v1.2.5-eksbuild.1",
                                "args": ["--enable-network-policy=false"],
                                "resources": {"requests": {"cpu": "25m"}}}],
            }},
        },
    }


SGP_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "securitygrouppolicies.vpcresources.k8s.aws"},
    "spec": {
        "group": "vpcresources.k8s.aws", "scope": "Namespaced",
        "names": {"kind": "SecurityGroupPolicy", "listKind": "SecurityGroupPolicyList",
                  "plural": "securitygrouppolicies", "singular": "securitygrouppolicy",
                  "shortNames": ["sgp"]},
        "versions": [{
            "name": "v1beta1", "served": True, "storage": True,
            "additionalPrinterColumns": [{"name": "Security-Group-Ids", "type": "string",
                                          "jsonPath": ".spec.securityGroups.groupIds"}],
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {"type": "object", "properties": {
                    "podSelector": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "serviceAccountSelector": {"type": "object",
                                               "x-kubernetes-preserve-unknown-fields": True},
                    "securityGroups": {"type": "object", "properties": {
                        "groupIds": {"type": "array", "maxItems": 5,
                                     "items": {"type": "string"}}}},
                }},
            }}},
        }],
    },
}
