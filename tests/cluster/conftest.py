"""Cluster tier: a real control plane (etcd, kube-apiserver, kwok nodes) and AWS on loopback.

Everything here is session-scoped: one control plane serves the whole tier. When it cannot
start (parts not built, a process dies) the tests FAIL with the reason; they never skip.
In CI the tier must run in a network namespace with only `lo` up (see the lead's test script).
"""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest

from ambient_tui.sandbox import build
from ambient_tui.sandbox.aws_local import CLIENT_ENV_UNSET, addon_calls
from ambient_tui.sandbox.control_plane import ControlPlane, SandboxError

IFF_UP = 0x1


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: needs the real local control plane")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)


def up_interfaces() -> list[str]:
    """Names of network interfaces that are up, lo excluded, in *this* network namespace.

    /sys/class/net would show the namespace sysfs was mounted in, so ask the kernel with
    SIOCGIFFLAGS on a socket, which lives in our namespace.
    """
    import fcntl
    import socket
    import struct

    siocgifflags = 0x8913
    up = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            req = struct.pack("16sH14x", name.encode()[:15], 0)
            try:
                flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), siocgifflags, req))[1]
            except OSError:
                continue
            if name != "lo" and flags & IFF_UP:
                up.append(name)
    return sorted(up)


@pytest.fixture(scope="session", autouse=True)
def loopback_only():
    """In CI the cluster tier must not be able to reach any address but loopback."""
    if os.environ.get("CI") == "true":
        up = up_interfaces()
        if up:
            pytest.fail(f"cluster tests must run in a network namespace with only lo up; "
                        f"these interfaces are up: {', '.join(up)} "
                        "(run them under `unshare --net` after `ip link set lo up`)")


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    missing = build.missing()
    if missing:
        pytest.fail("sandbox parts are not built: " + ", ".join(p.dirname for p in missing)
                    + f" (cache {build.parts_dir()}); run `python -m ambient_tui.sandbox.build` "
                    "before the cluster tier", pytrace=False)
    cp = ControlPlane(state_dir=tmp_path_factory.mktemp("cluster") / "sandbox")
    try:
        cp.start(timeout=120)
    except SandboxError as e:
        pytest.fail(f"control plane did not start: {e}", pytrace=False)
    yield cp
    cp.stop(quiet=True)


@pytest.fixture(scope="session")
def kubeconfig(control_plane) -> Path:
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
def restricted_kubeconfig(control_plane) -> Path:
    return control_plane.restricted_kubeconfig


@pytest.fixture(scope="session")
def admin_env(control_plane) -> dict[str, str]:
    """os.environ + KUBECONFIG, fake AWS credentials/endpoint, PATH with the built tools first."""
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV_UNSET}
    env.update(control_plane.env())
    env["HOME"] = str(control_plane.state_dir)  # helm/istioctl caches stay in the state dir
    env["HELM_CACHE_HOME"] = str(control_plane.state_dir / "helm-cache")
    env["HELM_CONFIG_HOME"] = str(control_plane.state_dir / "helm-config")
    env["HELM_DATA_HOME"] = str(control_plane.state_dir / "helm-data")
    return env


@pytest.fixture(scope="session")
def aws_local(control_plane, admin_env):
    if not control_plane.aws_endpoint:
        pytest.fail("the AWS loopback server did not start", pytrace=False)
    return types.SimpleNamespace(
        endpoint=control_plane.aws_endpoint, region=control_plane.region,
        cluster=control_plane.name, env={k: admin_env[k] for k in admin_env if k.startswith("AWS_")},
        calls=lambda: addon_calls(control_plane.aws_endpoint))


@pytest.fixture(scope="session")
def tools(control_plane):
    return types.SimpleNamespace(
        kubectl=str(build.bin_path("kubectl")), helm=str(build.bin_path("helm")),
        helm4=str(build.bin_path("helm4")), istioctl=str(build.bin_path("istioctl")),
        charts=build.charts_dir(), gateway_api=build.gateway_api_dir())
