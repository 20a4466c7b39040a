"""`ambient-tui pods`: argument handling, kubeconfig/context errors (exit 2) and the scope the
watcher gets. The pane itself is not opened here: `fake_launch` stands in for the UI (it needs a
terminal) and records the provider it was given. The watcher is real; its kubeconfig points at
127.0.0.1:1, where nothing listens, so it only ever reconnects until it is stopped."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from ambient_tui.cli import build_parser
from ambient_tui.commands import pods as cmd


def write_kubeconfig(path, contexts=("one", "two"), current="one"):
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": n, "context": {"cluster": "c", "user": "u"}} for n in contexts],
        **({"current-context": current} if current else {}),
    }))
    return path


def parse(*argv):
    return build_parser().parse_args(["pods", *argv])


class FakeLaunch:
    """Stands in for cli.start_pods_ui: records what the pane would have been given."""

    def __init__(self, rc=0):
        self.calls = []
        self.rc = rc

    def __call__(self, provider, title):
        self.calls.append((provider, title, provider.scope, provider.state))
        return self.rc


def run(args, launch, mesh=None):
    err = io.StringIO()
    rc = cmd.run(args, err=err, launch=launch, mesh=mesh)
    return rc, err.getvalue()


def test_parser_defaults_and_scope_flags(tmp_path):
    a = parse()
    assert (a.all_namespaces, a.namespace, a.kubeconfig, a.context) == (False, [], None, None)
    assert a.func is cmd.run
    a = parse("-n", "demo", "--namespace", "web,api", "--kubeconfig", "k", "--context", "x")
    assert a.namespace == ["demo", "web,api"] and (a.kubeconfig, a.context) == ("k", "x")
    assert parse("-A").all_namespaces is True


def test_all_namespaces_and_namespace_are_exclusive():
    p = subprocess.run([sys.executable, "-m", "ambient_tui.cli", "pods", "-A", "-n", "demo"],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert "not allowed with" in p.stderr


def test_missing_kubeconfig_is_one_line_exit_2(tmp_path):
    launch = FakeLaunch()
    rc, err = run(parse("--kubeconfig", str(tmp_path / "nope")), launch)
    assert rc == 2 and launch.calls == []
    assert err.count("\n") == 1 and str(tmp_path / "nope") in err and err.startswith("ambient-tui pods: ")


def test_missing_kubeconfig_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "a") + ":" + str(tmp_path / "b"))
    rc, err = run(parse("-A"), FakeLaunch())
    assert rc == 2 and "no kubeconfig at" in err and str(tmp_path / "b") in err


def test_unknown_context_lists_known_ones(tmp_path):
    kc = write_kubeconfig(tmp_path / "kc")
    launch = FakeLaunch()
    rc, err = run(parse("--kubeconfig", str(kc), "--context", "three", "-A"), launch)
    assert rc == 2 and launch.calls == []
    assert "'three'" in err and "known contexts: one, two" in err and err.count("\n") == 1


def test_no_current_context(tmp_path):
    kc = write_kubeconfig(tmp_path / "kc", current=None)
    rc, err = run(parse("--kubeconfig", str(kc), "-A"), FakeLaunch())
    assert rc == 2 and "no current-context" in err and "pass --context" in err


def test_context_from_a_later_kubeconfig_file_in_env(tmp_path, monkeypatch):
    # $KUBECONFIG merges files like kubectl: a context in the second file is known.
    first = write_kubeconfig(tmp_path / "a", contexts=("one",))
    second = write_kubeconfig(tmp_path / "b", contexts=("two",), current=None)
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
    launch = FakeLaunch()
    rc, err = run(parse("--context", "two", "-A"), launch)
    assert (rc, err) == (0, "")
    assert launch.calls[0][1] == "pods · context: two"


def test_bad_namespace_name_is_exit_2(tmp_path):
    kc = write_kubeconfig(tmp_path / "kc")
    for bad in ("Demo", "a_b", "-x", "x" * 64):
        rc, err = run(parse("--kubeconfig", str(kc), f"--namespace={bad}"), FakeLaunch())
        assert rc == 2 and repr(bad) in err, bad
    rc, err = run(parse("--kubeconfig", str(kc), "-n", ","), FakeLaunch())
    assert rc == 2 and "at least one" in err


def test_scope_all_namespaces(tmp_path):
    kc = write_kubeconfig(tmp_path / "kc")
    launch = FakeLaunch(rc=0)
    rc, err = run(parse("--kubeconfig", str(kc), "-A"), launch)
    assert (rc, err) == (0, "")
    (provider, title, scope, state), = launch.calls
    assert scope is None and title == "pods · context: one"
    assert state in ("listing", "reconnecting")  # the watcher was running while the pane was open
    assert provider.state == "stopped"            # and is stopped once the pane closed


def test_scope_named_namespaces_deduplicated_and_sorted(tmp_path):
    kc = write_kubeconfig(tmp_path / "kc")
    launch = FakeLaunch()

    def mesh_must_not_be_asked(**kw):
        raise AssertionError("the mesh lookup is only for the default scope")

    rc, _ = run(parse("--kubeconfig", str(kc), "-n", "web,demo", "-n", "demo", "--context", "two"),
                launch, mesh=mesh_must_not_be_asked)
    assert rc == 0
    assert launch.calls[0][2] == ("demo", "web")


def test_default_scope_is_mesh_namespaces(tmp_path):
    kc = write_kubeconfig(tmp_path / "kc")
    asked = []

    def mesh(**kw):
        asked.append(kw)
        return {"istio-system", "bookinfo"}

    launch = FakeLaunch()
    rc, _ = run(parse("--kubeconfig", str(kc), "--context", "two"), launch, mesh=mesh)
    assert rc == 0
    assert asked == [{"kubeconfig": str(kc), "context": "two"}]
    assert launch.calls[0][2] == ("bookinfo", "istio-system")


def test_default_scope_falls_back_to_istio_system_when_the_cluster_is_unreachable(tmp_path):
    # The real lookup against 127.0.0.1:1 (refused): best effort, istio-system only.
    kc = write_kubeconfig(tmp_path / "kc")
    launch = FakeLaunch()
    rc, _ = run(parse("--kubeconfig", str(kc)), launch)
    assert rc == 0 and launch.calls[0][2] == ("istio-system",)


def test_launch_exit_code_is_passed_on_and_watcher_stopped_on_error(tmp_path):
    kc = write_kubeconfig(tmp_path / "kc")
    assert run(parse("--kubeconfig", str(kc), "-A"), FakeLaunch(rc=3))[0] == 3
    seen = []

    def boom(provider, title):
        seen.append(provider)
        raise RuntimeError("ui failed")

    with pytest.raises(RuntimeError):
        cmd.run(parse("--kubeconfig", str(kc), "-A"), err=io.StringIO(), launch=boom)
    assert seen[0].state == "stopped"


def test_profile_env_writes_a_profile(tmp_path, monkeypatch):
    import pstats

    kc = write_kubeconfig(tmp_path / "kc")
    out = tmp_path / "ui.prof"
    monkeypatch.setenv(cmd.PROFILE_ENV, str(out))
    rc, _ = run(parse("--kubeconfig", str(kc), "-A"), FakeLaunch(rc=0))
    assert rc == 0
    names = {fn for (_f, _l, fn) in pstats.Stats(str(out)).stats}
    assert "__call__" in names  # FakeLaunch.__call__ ran under the profiler


def test_no_terminal_never_hangs_one_line_when_the_cluster_is_unreachable(tmp_path):
    """`pods -A </dev/null | cat` used to wait for a terminal for ever (issue 15). A real
    process with no terminal, the real watcher, a kubeconfig pointing where nothing listens."""
    import os
    import time

    kc = write_kubeconfig(tmp_path / "kc")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", "from ambient_tui.cli import entry; entry()",
                           "pods", "-A", "--kubeconfig", str(kc)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": root})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ambient-tui pods: cannot list pods:"), lines
    assert proc.stdout == ""
    assert time.monotonic() - t < 50  # ended by the lost connection, not by the timeout


def test_no_terminal_prints_the_pods_once_as_a_table():
    """print_once on a stand-in watcher (a fake: the real one needs an API server, see the
    cluster tier) shows the rows in COLUMNS order."""
    from ambient_tui.watch.pods import WATCHING, Snapshot
    from ambient_tui.watch.rows import PodRow

    class FakeWatcher:
        def snapshot(self):
            row = PodRow("istio-system", "istiod-1", "1/1", "Running", 0, None, "node-a", "-")
            return Snapshot(1, {row.key: row}, WATCHING)

    out, err = io.StringIO(), io.StringIO()
    assert cmd.print_once(FakeWatcher(), out, err) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "AMBIENT", "NODE"]
    assert lines[1].split()[:4] == ["istio-system", "istiod-1", "1/1", "Running"]
