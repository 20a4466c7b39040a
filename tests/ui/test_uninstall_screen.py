"""Uninstall screen without a cluster: the session (discovery, permissions, verification) is a
fake, since no API server runs in this tier; the plan, the lists and the runner are real.
The run uses real local commands (`echo`, `false`) instead of kubectl/helm."""

from __future__ import annotations

import asyncio
import threading

import pytest
from textual.app import App
from textual.screen import Screen
from textual.widgets import Checkbox, ContentSwitcher, Input, Static

from ambient_tui.engine.journal import Journal, JournalRead
from ambient_tui.engine.plan import Phase, Plan, Step, StepState
from ambient_tui.plans import uninstall as u
from ambient_tui.plans.uninstall import Discovery, Leftover, Obj, Options, Release
from ambient_tui.plans.uninstall_session import last_uninstall_run
from screens.uninstall import UninstallScreen
from screens.widgets import OutputPane, StepChecklist


def discovery() -> Discovery:
    return Discovery(
        cluster="demo",
        releases=[Release("istiod", "istio-system", "istiod", "1.31.0",
                          resources=(Obj("Deployment", "istiod", "istio-system", "apps/v1"),)),
                  Release("istio-base", "istio-system", "base", "1.31.0")],
        istio_crds=["authorizationpolicies.security.istio.io"],
        enrolled_namespaces={"shop": ["istio.io/dataplane-mode"]},
        istio_namespace_exists=True)


class FakeSession:
    """Stands in for UninstallSession (which needs an API server). The plan it returns is the
    real uninstall plan; `run_plan` swaps the commands for local ones so the runner really runs."""

    def __init__(self, tmp_path, d: Discovery | None = None, *, error: Exception | None = None,
                 denied: list | None = None, leftovers: list | None = None, fail_step: str = "") -> None:
        self.cluster = "demo"
        self.phrase, self.phrase_kind = "demo", "the cluster name"
        self.d = d or discovery()
        self.error = error
        self._denied = denied or []
        self.leftovers = leftovers or []
        self.fail_step = fail_step
        self.journal_file = tmp_path / "demo.jsonl"
        self.calls: list[str] = []
        self.runs = 0
        self.gate = threading.Event()
        self.gate.set()

    def discover(self) -> Discovery:
        self.calls.append("discover")
        self.gate.wait(10)
        if self.error:
            raise self.error
        return self.d

    def plan(self, d, opts) -> Plan:
        real = u.build_uninstall_plan(d, opts)
        # Same ids and titles; each step echoes its real command (or fails when asked).
        return Plan(real.title, [Phase(p.id, p.title, [
            Step(s.id, s.title, argv=["false"] if s.id == self.fail_step
                 else ["echo", "ran:", s.command]) for s in p.steps]) for p in real.phases])

    def denied(self, d, opts):
        self.calls.append("denied")
        return self._denied

    def refusal(self, denied) -> str:
        return "refused, nothing changed: this user lacks " + "; ".join(map(str, denied))

    def journal(self) -> Journal:
        self.runs += 1  # one run id per run, as UninstallSession.journal gives
        return Journal(self.journal_file, run_id=f"run-{self.runs}")

    def last_run(self):
        return last_uninstall_run(Journal.read(self.journal_file).records, JournalRead)

    def unfinished(self) -> bool:
        last = self.last_run()
        return any(st not in ("succeeded", "warned", "skipped") for st in last.step_states().values())

    def resume(self, runner):
        return runner.resume_from(self.last_run())

    def lock(self, journal=None):
        return None  # no API server here, so no cluster lock (the cluster tier tests the lock)

    def end_install_runs(self, journal, ok: bool) -> None:
        journal.write({"type": "uninstall", "ok": bool(ok), "cluster": self.cluster})

    def verify(self, before, opts):
        self.calls.append("verify")
        return self.leftovers


class Host(App):
    def __init__(self, screen: UninstallScreen) -> None:
        super().__init__()
        self.uninstall = screen

    def on_mount(self) -> None:
        self.push_screen(Screen())  # something to go back to
        self.push_screen(self.uninstall)


async def wait_for(pilot, cond, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await pilot.pause(0.05)


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


@pytest.mark.asyncio
async def test_review_toggles_rebuild_and_wrong_name_runs_nothing(tmp_path):
    session = FakeSession(tmp_path)
    session.gate.clear()
    screen = UninstallScreen("ctx", session=session)
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert screen.state == "discovering"
        assert "discovering" in text_of(screen, "#u-status")
        session.gate.set()
        await wait_for(pilot, lambda: screen.state == "review")
        review = text_of(screen, "#u-review")
        assert "HelmRelease istio-system/istiod" in review and "Namespace istio-system" in review
        assert "lose mTLS" in review and "shop" in review
        assert "CustomResourceDefinition authorizationpolicies" not in review
        assert "Istio CRDs kept" in review

        await pilot.press("f2")  # purge CRDs: the list and the plan are rebuilt
        await pilot.pause()
        assert screen.options.purge_crds and screen.query_one("#u-purge-crds", Checkbox).value
        assert "CustomResourceDefinition authorizationpolicies.security.istio.io" in text_of(screen, "#u-review")
        assert "purge-istio-crds" in [s.id for s in screen.plan.steps]
        await pilot.press("f3")  # keep namespace labels: no unenrol step, no mTLS warning
        await pilot.pause()
        assert not any(s.id.startswith("unenrol") for s in screen.plan.steps)
        assert "lose mTLS" not in text_of(screen, "#u-review")

        # The wrong name: refused with a message, nothing runs.
        assert app.focused is screen.query_one("#u-confirm-input", Input)
        await pilot.press(*"prod", "enter")
        await pilot.pause()
        assert screen.state == "review" and screen.runner is None
        assert "refused: typed 'prod', expected 'demo'" in text_of(screen, "#u-status")
        assert "denied" not in session.calls and not session.journal_file.exists()

        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is not screen


@pytest.mark.asyncio
async def test_right_name_runs_journals_and_shows_verification(tmp_path):
    session = FakeSession(tmp_path, leftovers=[Leftover("Namespace istio-system",
                                                        "kubectl delete namespace istio-system")])
    screen = UninstallScreen(session=session)
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: screen.state == "review")
        screen.query_one("#u-confirm-input", Input).value = "demo"
        await pilot.press("f9")
        await wait_for(pilot, lambda: screen.state == "done")
        assert session.calls == ["discover", "denied", "verify"]
        assert all(s.state is StepState.SUCCEEDED for s in screen.plan.steps)
        ids = [s.id for s in screen.plan.steps]
        assert ids == ["unenrol-shop", "helm-uninstall-istiod", "helm-uninstall-istio-base",
                       "namespace-istio-system"]
        # Journaled like the headless command.
        ends = [r["step"] for r in Journal.read(session.journal_file).records if r["type"] == "step-end"]
        assert ends == ids
        result = text_of(screen, "#u-result")
        assert "1 item(s) left" in result and "kubectl delete namespace istio-system" in result
        assert screen.query_one(ContentSwitcher).current == "u-result-scroll"

        await pilot.press("f7")  # the log of the last step, its real output
        await pilot.pause(0.2)
        assert screen.query_one(ContentSwitcher).current == "u-run"
        lines = list(screen.query_one(OutputPane).lines)
        assert any(l.startswith("ran: kubectl delete namespace istio-system") for l in lines), lines
        assert len(screen.query_one(StepChecklist).options) == 4 + 3  # steps and phase headers


@pytest.mark.asyncio
async def test_failed_step_then_resume_skips_what_succeeded(tmp_path):
    session = FakeSession(tmp_path, fail_step="helm-uninstall-istio-base")
    screen = UninstallScreen(session=session)
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: screen.state == "review")
        await pilot.press(*"demo", "enter")
        await wait_for(pilot, lambda: screen.state == "done")
        assert "Stopped at: helm uninstall istio-base" in text_of(screen, "#u-result")
        assert "stopped: a step failed" in text_of(screen, "#u-status")

        session.fail_step = ""
        await pilot.press("f6")  # rediscover, then run again: resumes from the journal
        await wait_for(pilot, lambda: screen.state == "review")
        await pilot.press(*"demo", "enter")
        await wait_for(pilot, lambda: screen.state == "done")
        runs = {}
        for r in Journal.read(session.journal_file).records:
            if r["type"] == "step-start":
                runs.setdefault(r["run"], []).append(r["step"])
        second = list(runs.values())[-1]
        assert second == ["helm-uninstall-istio-base", "namespace-istio-system"]
        assert "Verified" in text_of(screen, "#u-result") or "verified" in text_of(screen, "#u-result")


@pytest.mark.asyncio
async def test_denied_permissions_refuse_before_anything_runs(tmp_path):
    perm = u.Permission("delete", "", "namespaces", name="istio-system")
    session = FakeSession(tmp_path, denied=[perm])
    screen = UninstallScreen(session=session)
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: screen.state == "review")
        await pilot.press(*"demo", "enter")
        await wait_for(pilot, lambda: "denied" in session.calls and screen.state == "review")
        await pilot.pause()
        assert screen.runner is None and not session.journal_file.exists()
        assert "delete namespaces istio-system" in text_of(screen, "#u-status")


@pytest.mark.asyncio
async def test_discovery_error_is_shown(tmp_path):
    session = FakeSession(tmp_path, error=u.DiscoveryError("cannot reach the cluster: connection refused"))
    screen = UninstallScreen(session=session)
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: screen.state == "failed")
        status = text_of(screen, "#u-status")
        assert "discovery failed, nothing changed: cannot reach the cluster" in status
        assert screen.query_one("#u-confirm-input", Input).disabled
        session.error = None
        await pilot.press("f6")
        await wait_for(pilot, lambda: screen.state == "review")


@pytest.mark.asyncio
async def test_dry_run_needs_no_name_and_changes_nothing(tmp_path):
    session = FakeSession(tmp_path)
    screen = UninstallScreen(session=session, options=Options(purge_crds=True))
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: screen.state == "review")
        await pilot.press("f5", "f9")
        await wait_for(pilot, lambda: screen.state == "done")
        assert all(s.state is StepState.SKIPPED for s in screen.plan.steps)
        assert not session.journal_file.exists() and "verify" not in session.calls
        assert "nothing was changed" in text_of(screen, "#u-result")


def _snapshot_app(tmp_path_factory=None):
    import tempfile
    from pathlib import Path

    d = discovery()
    d.cni_change = None
    session = FakeSession(Path(tempfile.mkdtemp()), d)
    return Host(UninstallScreen("demo-context", session=session))


async def _reviewed(pilot) -> None:
    await wait_for(pilot, lambda: getattr(pilot.app.screen, "state", "") == "review")
    pilot.app.screen.query_one("#u-confirm-input", Input).cursor_blink = False  # a stable frame
    await pilot.pause()


def test_uninstall_screen_snapshot(snap_compare):
    assert snap_compare(_snapshot_app(), terminal_size=(80, 24), run_before=_reviewed)


@pytest.mark.asyncio
async def test_help_lists_every_binding_id(tmp_path):
    from screens.help import HelpScreen

    screen = UninstallScreen(session=FakeSession(tmp_path))
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: screen.state == "review")
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert [r[2] for r in app.screen.rows] == [b.id for b in UninstallScreen.BINDINGS]
        assert ("f9", "Run (type the cluster name first)", "uninstall.run") in app.screen.rows


@pytest.mark.asyncio
async def test_real_session_unreachable_cluster_is_a_clear_error(tmp_path):
    """No fake: the real session against a kubeconfig whose API server port is closed."""
    import json as _json

    kc = tmp_path / "kubeconfig"
    kc.write_text(_json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "down",
        "clusters": [{"name": "arn:aws:eks:eu-west-1:123456789012:cluster/prod",
                      "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "down", "context": {"cluster": "arn:aws:eks:eu-west-1:123456789012:cluster/prod",
                                                  "user": "u"}}]}))
    screen = UninstallScreen(kubeconfig=str(kc))
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: screen.state == "failed", 60)
        status = text_of(screen, "#u-status")
        assert "Cluster prod" in status  # the EKS name from the ARN: what must be typed
        assert "discovery failed, nothing changed: cannot reach the cluster" in status

    missing = UninstallScreen(kubeconfig=str(tmp_path / "nope"))
    app = Host(missing)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: missing.state == "failed", 30)
        assert "cannot read kubeconfig" in text_of(missing, "#u-status")


class ReadOnlyHost(Host):
    read_only = True  # as AmbientApp(read_only=True) / --read-only


@pytest.mark.asyncio
async def test_read_only_shows_the_review_and_runs_nothing(tmp_path):
    session = FakeSession(tmp_path)
    screen = UninstallScreen(session=session)
    app = ReadOnlyHost(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: screen.state == "review")
        assert "uninstall.run" not in {b.binding.id for b in screen.active_bindings.values() if b.enabled}
        screen.query_one("#u-confirm-input", Input).value = "demo"
        await pilot.press("f9")
        screen.action_run()  # the input's submit calls this directly
        await pilot.pause(0.3)
        assert screen.state == "review" and session.calls == ["discover"]
        assert not session.journal_file.exists()


@pytest.mark.asyncio
async def test_nameless_cluster_asks_for_the_server_host_and_refuses_near_misses(tmp_path):
    """A kubeconfig whose context and cluster are named "" (issue 15): the phrase is the API
    server host, shown in the prompt; empty, blank, a prefix and the wrong case run nothing."""
    from textual.widgets import Label

    from ambient_tui.engine.confirm import Target, confirmation_phrase, phrase_kind

    session = FakeSession(tmp_path)
    target = Target(cluster="", context=" ", server="https://API.example.internal:6443")
    session.cluster = ""
    session.phrase = confirmation_phrase(target)
    session.phrase_kind = phrase_kind(target, session.phrase)
    assert session.phrase == "api.example.internal"  # urlsplit lower-cases the host
    screen = UninstallScreen(session=session)
    app = Host(screen)
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_for(pilot, lambda: screen.state == "review")
        assert "Type api.example.internal to confirm" in str(screen.query_one("#u-confirm-label", Label).render())
        box = screen.query_one("#u-confirm-input", Input)
        for typed in ("", "   ", "api.example", "API.EXAMPLE.INTERNAL", " api.example.internal"):
            box.value = typed
            await pilot.press("f9")
            await pilot.pause()
            assert screen.state == "review" and screen.runner is None, typed
            assert "nothing was run" in text_of(screen, "#u-status"), typed
        assert "denied" not in session.calls and not session.journal_file.exists()
        box.value = ""
        await pilot.press("enter")  # Enter on the empty field: refused as well
        await pilot.pause()
        assert screen.runner is None and "type api.example.internal" in text_of(screen, "#u-status")
        box.value = "api.example.internal"
        await pilot.press("f9")
        await wait_for(pilot, lambda: screen.state == "done")
        assert session.calls == ["discover", "denied", "verify"]


@pytest.mark.asyncio
async def test_unwritable_journal_stops_the_uninstall_before_anything_runs(tmp_path):
    session = FakeSession(tmp_path)
    (tmp_path / "blocker").write_text("")
    session.journal_file = tmp_path / "blocker" / "demo.jsonl"  # a file where the folder should be
    screen = UninstallScreen(session=session)
    app = Host(screen)
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_for(pilot, lambda: screen.state == "review")
        await pilot.press(*"demo", "enter")
        await wait_for(pilot, lambda: "denied" in session.calls and screen.state == "review")
        await pilot.pause()
        assert screen.runner is None and "verify" not in session.calls
        assert "nothing was run: a parent of the journal path" in text_of(screen, "#u-status")
