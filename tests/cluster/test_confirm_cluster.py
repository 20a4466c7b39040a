"""Typed confirmation against the real API server when the kubeconfig names nothing (issue 15):
a context and cluster named "" or " " must never let an empty answer delete anything.

A current-context of "" is no current context (as kubectl reads it), so the pinned target
(cluster/target.py) refuses it before anything; a context and cluster named " " resolve, and
the phrase to type is then the API server host."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from istio_cleanup import clean_cluster  # same folder
from test_uninstall import helm_install, releases, uninstall  # same folder

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


def named(kubeconfig, path, name: str):
    kc = yaml.safe_load(open(kubeconfig))
    kc["current-context"] = name
    kc["contexts"] = kc["contexts"][:1]  # the admin one; two contexts of one name are not a kubeconfig
    for c in kc["contexts"]:
        c["name"] = name
        c["context"]["cluster"] = name
    for c in kc["clusters"]:
        c["name"] = name
    path.write_text(yaml.safe_dump(kc))
    return path


@pytest.fixture
def nameless_kubeconfig(kubeconfig, tmp_path):
    """Context and cluster named " ": blank, so no usable name."""
    return named(kubeconfig, tmp_path / "nameless.kubeconfig", " ")


@pytest.fixture
def env(admin_env, monkeypatch, tmp_path, nameless_kubeconfig):
    for k, v in admin_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("KUBECONFIG", str(nameless_kubeconfig))
    return {**admin_env, "XDG_STATE_HOME": str(tmp_path / "state"), "KUBECONFIG": str(nameless_kubeconfig)}


@pytest.fixture(autouse=True)
def clean_slate(admin_env, tools):
    clean_cluster(admin_env)
    yield
    clean_cluster(admin_env)


def _uninstall_devnull(env):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.run([sys.executable, "-m", "ambient_tui.cli", "uninstall"], env={
        **env, "PYTHONPATH": root}, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)


def test_empty_current_context_is_refused_before_anything(env, tools, admin_env, kubeconfig, tmp_path):
    helm_install(admin_env, tools, "istio-base", "base")
    empty = named(kubeconfig, tmp_path / "empty.kubeconfig", "")
    proc = _uninstall_devnull({**env, "KUBECONFIG": str(empty)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "has no current-context; pass --context" in proc.stderr and "nothing changed" in proc.stderr
    assert releases(admin_env, tools) == ["istio-base"]


def test_nameless_cluster_stdin_devnull_deletes_nothing(env, tools, admin_env):
    helm_install(admin_env, tools, "istio-base", "base")
    proc = _uninstall_devnull(env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "aborted, nothing changed: typed '', expected '127.0.0.1' exactly" in proc.stderr
    assert "Type the API server host (the cluster has no name) (127.0.0.1)" in proc.stdout
    assert releases(admin_env, tools) == ["istio-base"]


def test_nameless_cluster_refuses_near_misses_then_takes_the_host(env, tools, admin_env):
    helm_install(admin_env, tools, "istio-base", "base")
    for typed in ("\n", "   \n", "127.0.0\n", " 127.0.0.1\n", "127.0.0.1 \n"):
        code, out, err = uninstall(stdin=typed)
        assert code == 1 and "aborted, nothing changed" in err, (typed, out, err)
        assert releases(admin_env, tools) == ["istio-base"], typed
    code, out, err = uninstall(stdin="127.0.0.1\n")
    assert code == 0, out + err
    assert releases(admin_env, tools) == []


def test_named_cluster_refuses_the_wrong_case(env, tools, admin_env, control_plane, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", admin_env["KUBECONFIG"])
    helm_install(admin_env, tools, "istio-base", "base")
    name = control_plane.name
    for typed in ("", " ", name[:-1], name.upper(), name.swapcase()):
        if typed == name:
            continue
        code, out, err = uninstall(stdin=typed + "\n")
        assert code == 1 and "aborted, nothing changed" in err, typed
    assert releases(admin_env, tools) == ["istio-base"]


@pytest.mark.asyncio
async def test_tui_nameless_cluster_shows_the_host_and_refuses_near_misses(env, tools, admin_env,
                                                                            nameless_kubeconfig):
    """The real UninstallSession in the real uninstall screen (Pilot): the prompt names the API
    server host; F9 with an empty, blank, prefix or upper-case answer deletes nothing."""
    import asyncio

    from textual.app import App
    from textual.screen import Screen
    from textual.widgets import Input, Label, Static

    from screens.uninstall import UninstallScreen

    helm_install(admin_env, tools, "istio-base", "base")
    screen = UninstallScreen(kubeconfig=str(nameless_kubeconfig))

    class Host(App):
        def on_mount(self) -> None:
            self.push_screen(Screen())
            self.push_screen(screen)

    async with Host().run_test(size=(100, 24)) as pilot:
        loop = asyncio.get_running_loop()
        end = loop.time() + 120
        while screen.state not in ("review", "failed") and loop.time() < end:
            await pilot.pause(0.1)
        assert screen.state == "review", str(screen.query_one("#u-status", Static).render())
        assert screen.session.phrase == "127.0.0.1"
        assert "Type 127.0.0.1 to confirm" in str(screen.query_one("#u-confirm-label", Label).render())
        box = screen.query_one("#u-confirm-input", Input)
        for typed in ("", "  ", "127.0.0", "127.0.0.1 "):
            box.value = typed
            await pilot.press("f9")
            await pilot.pause(0.3)
            assert screen.state == "review" and screen.runner is None, typed
        assert releases(admin_env, tools) == ["istio-base"]
