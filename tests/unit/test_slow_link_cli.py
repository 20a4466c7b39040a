"""`--slow-link` reaches the UI from the command line: `ambient-tui --slow-link`, `ambient-tui
pods --slow-link` and `ambient-tui --slow-link pods` (what it changes on screen:
tests/ui/test_slow_link.py). The UI itself is replaced by recorders (no terminal here); the
pods watcher is real, pointed at 127.0.0.1:1 where nothing listens."""

from __future__ import annotations

import pytest

from ambient_tui.cli import build_parser, main
from ambient_tui.commands import pods as cmd

from test_pods_command import write_kubeconfig


@pytest.mark.parametrize("before,after,slow", [
    ([], ["-A"], False),
    ([], ["-A", "--slow-link"], True),
    (["--slow-link"], ["-A"], True),
])
def test_pods_hands_the_link_profile_to_the_pane(tmp_path, monkeypatch, before, after, slow):
    kc = write_kubeconfig(tmp_path / "kc")
    seen = {}

    def launch(provider, title, slow_link=False):
        seen["slow_link"] = slow_link
        return 0

    args = build_parser().parse_args([*before, "pods", "--kubeconfig", str(kc), *after])
    args.launch = launch  # in place of what cli.py's parser hands the command (it starts the UI)
    assert cmd.run(args, terminal=True) == 0
    assert seen == {"slow_link": slow}


def test_the_tui_gets_slow_link(monkeypatch, tmp_path):
    import screens.app

    seen = {}
    monkeypatch.setattr(screens.app, "run_app", lambda plan, **kw: seen.update(kw) or 0)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the pinned kubeconfig
    kc = write_kubeconfig(tmp_path / "kubeconfig")
    assert main(["--kubeconfig", str(kc), "--slow-link"]) == 0
    assert seen["slow_link"] is True
    seen.clear()
    assert main(["--kubeconfig", str(kc)]) == 0
    assert seen["slow_link"] is False
