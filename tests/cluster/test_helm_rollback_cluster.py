"""HelmPane against the real API server and the real helm binary.

A one-ConfigMap-plus-Deployment chart (written here) is installed into a test namespace and
upgraded twice; the pane (real HelmReleaseWatcher, no provider injected) shows revision 3;
a rollback to revision 1 is done through the pane's history with the typed confirmation, and
the new revision 4 `deployed` appears in the pane and in `helm history`. A failing upgrade is
then highlighted with the rollback offered. The restricted user sees a forbidden message.
The release and namespace are removed at the start (leftovers) and at the end.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from screens.helm import ConfirmHelmCommand, HelmHistoryScreen, HelmPane

pytestmark = pytest.mark.cluster

NS = "helm-pane-test"
RELEASE = "tiny"


def run(argv, env, check=True, timeout=300):
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{argv} failed: {r.stdout[-500:]} {r.stderr[-1000:]}")
    return r


def write_chart(path, version, app_version, bad=False):
    (path / "templates").mkdir(parents=True, exist_ok=True)
    (path / "Chart.yaml").write_text(
        f"apiVersion: v2\nname: tiny\nversion: {version}\nappVersion: \"{app_version}\"\n")
    (path / "templates" / "all.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tiny-config\ndata:\n"
        f"  version: \"{version}\"\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: tiny\n"
        "spec:\n  replicas: 1\n  selector:\n    matchLabels: {app: tiny}\n  template:\n"
        "    metadata:\n      labels: {app: tiny}\n    spec:\n      containers:\n"
        "      - name: app\n        image: busybox\n")
    bogus = path / "templates" / "bogus.yaml"
    if bad:  # the API rejects this name after helm recorded the revision: status failed
        bogus.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_Valid\n")
    elif bogus.exists():
        bogus.unlink()


def cleanup(tools, env):
    run([tools.helm, "uninstall", RELEASE, "-n", NS, "--wait", "--ignore-not-found"], env, check=False)
    run([tools.kubectl, "delete", "namespace", NS, "--ignore-not-found", "--wait=true", "--timeout=120s"],
        env, check=False)


@pytest.fixture
def release(tools, admin_env, tmp_path, monkeypatch):
    cleanup(tools, admin_env)
    # The pane's rollback runs `helm` from PATH with the user's environment.
    for k in ("PATH", "HOME", "HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        monkeypatch.setenv(k, admin_env[k])
    run([tools.kubectl, "create", "namespace", NS], admin_env)
    chart = tmp_path / "tiny"
    try:
        for version, app in (("0.1.0", "1.0"), ("0.2.0", "1.1"), ("0.3.0", "1.2")):
            write_chart(chart, version, app)
            verb = "install" if version == "0.1.0" else "upgrade"
            run([tools.helm, verb, RELEASE, str(chart), "-n", NS, "--wait", "--timeout", "180s"], admin_env)
        yield chart
    finally:
        cleanup(tools, admin_env)


class PaneApp(App):
    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def compose(self) -> ComposeResult:
        yield HelmPane(**self.kw, id="helm")


async def until(pilot, pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        await pilot.pause(0.1)
        if pred():
            return
    raise AssertionError(f"timed out waiting for {what}")


def helm_history(tools, env):
    out = run([tools.helm, "history", RELEASE, "-n", NS, "-o", "json"], env).stdout
    return [(h["revision"], h["status"], h["chart"], h["description"]) for h in json.loads(out)]


@pytest.mark.asyncio
@pytest.mark.timeout(600)
async def test_rollback_through_the_pane(release, tools, admin_env, kubeconfig):
    app = PaneApp(kubeconfig=str(kubeconfig), namespaces=[NS])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(HelmPane)
        await until(pilot, lambda: pane.table_rows() and pane.table_rows()[0][:5]
                    == (RELEASE, NS, "3", "deployed", "tiny-0.3.0"), 60, "revision 3 in the pane")
        assert pane.table_rows()[0][5] == "1.2"
        assert "watching · 1 releases · helm-pane-test" in str(pane.query_one("#helm-status").render())

        pane.query_one(DataTable).focus()
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HelmHistoryScreen)
                    and len(app.screen.history_rows()) == 3, 30, "history")
        hist = app.screen
        assert [r[0] for r in hist.history_rows()] == ["3", "2", "1"]
        assert [r[2] for r in hist.history_rows()] == ["deployed", "superseded", "superseded"]
        await pilot.press("down", "down", "b")
        await until(pilot, lambda: isinstance(app.screen, ConfirmHelmCommand), 10, "confirmation")
        confirm = app.screen
        assert str(confirm.query_one("#confirm-command").render()) == f"helm rollback {RELEASE} 1 -n {NS} --wait"
        await pilot.press(*RELEASE, "enter")
        await until(pilot, lambda: confirm.state in ("succeeded", "failed"), 300, "the rollback")
        assert confirm.state == "succeeded", confirm.output
        assert any("Rollback was a success" in line for line in confirm.output)
        await pilot.press("escape")
        # The history screen is live: revision 4 appears, deployed.
        await until(pilot, lambda: hist.history_rows() and hist.history_rows()[0][:3] == ("4", hist.history_rows()[0][1], "deployed"),
                    60, "revision 4 in the history")
        assert hist.history_rows()[0][5] == "Rollback to 1"
        await pilot.press("escape")
        await until(pilot, lambda: pane.table_rows()[0][2:6] == ("4", "deployed", "tiny-0.1.0", "1.0"), 60,
                    "revision 4 in the pane")
        assert helm_history(tools, admin_env)[-1] == (4, "deployed", "tiny-0.1.0", "Rollback to 1")

        # A failing upgrade: highlighted, and the fix offered is a rollback to revision 4.
        write_chart(release, "0.4.0", "1.3", bad=True)
        r = run([tools.helm, "upgrade", RELEASE, str(release), "-n", NS], admin_env, check=False)
        assert r.returncode != 0
        await until(pilot, lambda: pane.table_rows()[0][2:4] == ("5", "failed"), 60, "failed revision 5")
        table = pane.query_one(DataTable)
        assert str(table.get_cell_at((0, 3)).style) == "bold red"
        hint = str(pane.query_one("#helm-hint").render())
        assert f"helm rollback {RELEASE} 4 -n {NS} --wait" in hint
        assert "1 need attention" in str(pane.query_one("#helm-status").render())


@pytest.mark.asyncio
@pytest.mark.timeout(300)
async def test_restricted_user_sees_forbidden(restricted_kubeconfig, tools, admin_env):
    run([tools.kubectl, "create", "namespace", NS], admin_env, check=False)
    try:
        app = PaneApp(kubeconfig=str(restricted_kubeconfig), namespaces=[NS, "no-such-namespace-h2b"])
        async with app.run_test(size=(80, 24)) as pilot:
            pane = app.query_one(HelmPane)

            def status():
                return str(pane.query_one("#helm-status").render())
            await until(pilot, lambda: "forbidden" in status(), 60, "the forbidden message")
            assert f"forbidden: needs list and watch secrets in namespace {NS}" in status()
            assert 'User "restricted"' in status() or "restricted" in status()
            assert pane.table_rows() == []
            # The restricted user may not read namespaces either: a missing one is also forbidden
            # (the API says 403 before 404), shown the same way, never a crash.
            await until(pilot, lambda: "no-such-namespace-h2b" in status(), 60, "the second namespace")
    finally:
        run([tools.kubectl, "delete", "namespace", NS, "--ignore-not-found", "--wait=true", "--timeout=120s"],
            admin_env, check=False)
