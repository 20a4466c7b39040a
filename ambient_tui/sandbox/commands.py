"""`ambient-tui sandbox up|down|status|env`: the local control plane for a person.

cli.py calls ``register(subparsers)``; each handler returns an exit code
(0 ok, 1 failure, 2 usage).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from . import build
from .control_plane import DEFAULT_NAME, DEFAULT_REGION, ControlPlane, SandboxError


def _cp(a: argparse.Namespace, **kw) -> ControlPlane:
    return ControlPlane(state_dir=a.state_dir, name=a.name, region=a.region, **kw)


def cmd_up(a: argparse.Namespace) -> int:
    missing = build.missing()
    if missing:
        if a.no_build:
            print("sandbox: parts not built: " + ", ".join(p.dirname for p in missing)
                  + "; run `python -m ambient_tui.sandbox.build`", file=sys.stderr)
            return 1
        print("sandbox: building missing parts first (the first build takes many minutes)",
              file=sys.stderr)
        try:
            build.build()
        except build.BuildError as e:
            print(f"sandbox: build failed: {e}", file=sys.stderr)
            return 1
    if a.latency_ms < 0:
        print("sandbox: --latency-ms must be 0 or more", file=sys.stderr)
        return 2
    cp = _cp(a, apiserver_port=a.port, aws_port=a.aws_port, with_aws=not a.no_aws,
             latency_ms=a.latency_ms)
    t0 = time.monotonic()
    st = cp.status()
    if any(st.running.values()) and not st.up:  # some components died: start those again
        try:
            dead = cp.restart_dead(timeout=a.timeout)
        except SandboxError as e:
            print(f"sandbox: {e}", file=sys.stderr)
            return 1
        print(f"sandbox {cp.name} is up again in {time.monotonic() - t0:.1f}s "
              f"(restarted: {', '.join(dead)})")
        return 0
    try:
        cp.start(timeout=a.timeout)
    except SandboxError as e:
        print(f"sandbox: {e}", file=sys.stderr)
        return 1
    print(f"sandbox {cp.name} is up in {time.monotonic() - t0:.1f}s")
    print(f"  API server   {cp.client_url}"
          + (f"  (through a relay adding {a.latency_ms:g} ms round trip)" if a.latency_ms else ""))
    print(f"  kubeconfig   {cp.kubeconfig}  (contexts: {cp.admin_context}, {cp.restricted_context})")
    if cp.aws_endpoint:
        print(f"  AWS endpoint {cp.aws_endpoint}  (EKS cluster {cp.name} in {cp.region})")
    print("Use it:  eval \"$(ambient-tui sandbox env)\"   Stop it:  ambient-tui sandbox down")
    return 0


def cmd_down(a: argparse.Namespace) -> int:
    cp = _cp(a)
    try:
        cp.stop()
    except OSError as e:
        print(f"sandbox: stop failed: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_status(a: argparse.Namespace) -> int:
    cp = _cp(a)
    st = cp.status()
    if not st.running:
        print(f"sandbox {a.name}: not running (state dir {st.state_dir} absent)")
        return 1
    state = "up" if st.up else "degraded"
    if not any(st.running.values()):
        state = "stopped (stale pid files; `sandbox down` cleans them)"
    print(f"sandbox {a.name}: {state}")
    for comp, pid in st.running.items():
        print(f"  {comp:24} {'pid ' + str(pid) if pid else 'not running'}")
    if st.info.get("url"):
        relay = (f"  (through a relay adding {st.info['latency_ms']:g} ms round trip)"
                 if st.info.get("latency_ms") else "")
        print(f"  API server   {st.info.get('client_url') or st.info['url']}{relay}")
        print(f"  kubeconfig   {cp.kubeconfig}")
    if st.info.get("aws_endpoint"):
        print(f"  AWS endpoint {st.info['aws_endpoint']}")
    return 0 if st.up else 1


def cmd_env(a: argparse.Namespace) -> int:
    cp = _cp(a)
    if not cp.status().up:
        print(f"sandbox {a.name} is not running; start it with `ambient-tui sandbox up`",
              file=sys.stderr)
        return 1
    from .aws_local import CLIENT_ENV_UNSET
    print("unset " + " ".join(CLIENT_ENV_UNSET))
    for k, v in cp.env().items():
        print(f"export {k}={shlex.quote(v)}")
    return 0


def cmd_fault(a: argparse.Namespace) -> int:
    """`sandbox fault list|add NAME [--selector K=V]|clear [NAME]` (see faults.py)."""
    from . import faults

    if a.fault_cmd is None:
        print("sandbox fault: say list, add NAME or clear; `sandbox fault list` shows the faults",
              file=sys.stderr)
        return 2
    if a.fault_cmd in ("add", "clear") and a.fault and a.fault not in faults.FAULTS:
        print(f"sandbox fault: unknown fault {a.fault!r}; known: {', '.join(faults.FAULTS)}",
              file=sys.stderr)
        return 2
    if a.fault_cmd == "add" and a.selector:
        try:
            faults.parse_selector(a.selector)
        except faults.FaultError as e:
            print(f"sandbox fault: {e}", file=sys.stderr)
            return 2
    cp = _cp(a)
    if not cp.status().up:
        print(f"sandbox {a.name} is not running; start it with `ambient-tui sandbox up`",
              file=sys.stderr)
        return 1
    try:
        if a.fault_cmd == "add":
            print(faults.add(cp, a.fault, a.selector))
        elif a.fault_cmd == "clear":
            done = faults.clear(cp, a.fault)
            print(f"cleared: {', '.join(done)}" if done else "no fault was active")
        else:
            on = faults.active(cp)
            for f in faults.FAULTS.values():
                state = f"ACTIVE ({on[f.name]})" if f.name in on else ""
                sel = f"  [--selector, default {f.default_selector}]" if f.default_selector else ""
                print(f"  {f.name:15} {f.help}{sel}  {state}".rstrip())
    except (faults.FaultError, SandboxError, OSError) as e:
        print(f"sandbox fault: {e}", file=sys.stderr)
        return 1
    return 0


def sandbox_env(name: str = DEFAULT_NAME, state_dir: str | None = None) -> dict[str, str | None]:
    """Environment changes that point kubectl/helm/boto3 at a running sandbox.

    For `ambient-tui --sandbox`: apply with ``for k, v in env.items(): os.environ.pop(k) if v
    is None else os.environ.__setitem__(k, v)`` before starting the TUI. Values of None mean
    "unset". Raises SandboxError when the sandbox is not running.
    """
    from .aws_local import CLIENT_ENV_UNSET
    cp = ControlPlane(state_dir=state_dir, name=name)
    if not cp.status().up:
        raise SandboxError(f"sandbox {name} is not running; start it with `ambient-tui sandbox up`")
    env: dict[str, str | None] = {k: None for k in CLIENT_ENV_UNSET}
    env.update(cp.env())
    return env


def register(subparsers) -> argparse.ArgumentParser:
    """Add `sandbox up|down|status|env` to an argparse subparsers object."""
    p = subparsers.add_parser("sandbox", help="a local Kubernetes control plane that looks like EKS",
                              description="A real local control plane (etcd, kube-apiserver, "
                              "kwok nodes) with AWS STS/EKS on loopback, for trying ambient-tui "
                              "without an EKS cluster.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default=DEFAULT_NAME, help="sandbox/EKS cluster name (%(default)s)")
    common.add_argument("--region", default=DEFAULT_REGION, help="AWS region (%(default)s)")
    common.add_argument("--state-dir", default=None,
                        help="where pid files, kubeconfig and data live "
                             "(default: <cache>/sandbox/<name>, or $AMBIENT_TUI_SANDBOX_DIR)")
    sub = p.add_subparsers(dest="sandbox_cmd", metavar="{up,down,status,env,fault}")
    up = sub.add_parser("up", parents=[common], help="build what is missing, then start")
    up.add_argument("--port", type=int, help="kube-apiserver port (default: a free one)")
    up.add_argument("--aws-port", type=int, help="AWS endpoint port (default: a free one)")
    up.add_argument("--no-aws", action="store_true", help="do not start the AWS servers")
    up.add_argument("--no-build", action="store_true", help="fail instead of building parts")
    up.add_argument("--latency-ms", type=float, default=0,
                    help="reach the API server and AWS through a loopback relay adding this round "
                         "trip, as a remote cluster would (default 0: direct)")
    up.add_argument("--timeout", type=float, default=90, help="seconds to wait for Ready")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", parents=[common], help="stop everything, remove state").set_defaults(func=cmd_down)
    sub.add_parser("status", parents=[common], help="what runs").set_defaults(func=cmd_status)
    sub.add_parser("env", parents=[common],
                   help="print shell exports: KUBECONFIG, AWS_*, PATH").set_defaults(func=cmd_env)
    fp = sub.add_parser("fault", help="make the sandbox fail as real clusters do (taints, "
                        "Fargate, Pod Security, quota, kwok Stage faults)")
    fsub = fp.add_subparsers(dest="fault_cmd", metavar="{list,add,clear}")
    fsub.add_parser("list", parents=[common], help="the faults, and which are active")
    fa = fsub.add_parser("add", parents=[common], help="make a fault")
    fa.add_argument("fault", metavar="NAME")
    fa.add_argument("--selector", metavar="K=V", help="the pods or nodes it hits (label)")
    fc = fsub.add_parser("clear", parents=[common], help="undo one fault, or all")
    fc.add_argument("fault", metavar="NAME", nargs="?")
    fp.set_defaults(func=cmd_fault, fault=None, selector=None, name=DEFAULT_NAME,
                    region=DEFAULT_REGION, state_dir=None)

    def usage(a: argparse.Namespace) -> int:
        p.print_usage(sys.stderr)
        return 2
    p.set_defaults(func=usage)
    return p


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (`python -m ambient_tui.sandbox.commands up`) until cli.py wires it."""
    ap = argparse.ArgumentParser(prog="ambient-tui")
    sp = ap.add_subparsers(dest="cmd")
    register(sp)
    a = ap.parse_args(["sandbox", *(sys.argv[1:] if argv is None else argv)])
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
