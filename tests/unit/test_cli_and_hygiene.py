"""The CLI contract (names, exit codes) and the rule that the engine never imports the UI."""

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ambient_tui.cli import main
from ambient_tui.tools import versions

ROOT = Path(__file__).resolve().parents[2]


def test_plan_works_offline_without_kubeconfig(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nothing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["plan", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["meta"]["istio_version"] == "1.31.1"


def test_unknown_version_exits_2_listing_known(capsys):
    assert main(["plan", "--istio-version", "1.99.0"]) == 2
    err = capsys.readouterr().err
    assert "1.99.0 is not in the catalogue" in err and "1.30.0" in err and "Traceback" not in err


def test_bad_values_flag_is_a_usage_error(capsys):
    assert main(["plan", "--values", "pilot=x.yaml"]) == 2
    assert "COMPONENT=FILE" in capsys.readouterr().err


def test_version_flag():
    out = subprocess.run([sys.executable, "-m", "ambient_tui.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("ambient-tui ")


def test_layering_contracts_hold():
    """import-linter (pyproject [tool.importlinter]): the engine never imports textual or screens
    (but cli.py, to start the UI); commands/ never imports cli.py; sandbox.aws_local never imports
    sandbox.control_plane. Lazy imports inside functions count too."""
    import os
    import shutil
    import subprocess

    exe = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which("lint-imports")
    assert exe, "lint-imports not installed: pip install the test extra (import-linter)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and "3 kept, 0 broken" in out.stdout, out.stdout[-3000:] + out.stderr[-2000:]


def test_cli_imports_the_ui_only_inside_a_function():
    tree = ast.parse((ROOT / "ambient_tui" / "cli.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not any(getattr(n, "module", "") and n.module.split(".")[0] in ("textual", "screens") for n in top)


def test_no_shell_true_anywhere():
    for folder in ("ambient_tui", "screens"):
        for path in (ROOT / folder).rglob("*.py"):
            assert "shell=True" not in path.read_text(), path


def _stub(tmp_path, name, output):
    # A stub that only prints a version: named so, and used only for the version check.
    p = tmp_path / name
    p.write_text(f"#!/bin/sh\necho '{output}'\n")
    p.chmod(0o755)
    return {"PATH": str(tmp_path)}


def test_too_old_helm_names_found_needed_and_how(tmp_path):
    env = _stub(tmp_path, "helm", "v3.5.4+g1b5edb6")
    with pytest.raises(versions.ToolError) as e:
        versions.require("helm", "3.6", env=env)
    msg = str(e.value)
    assert "helm 3.5.4 found" in msg and ">= 3.6 is needed" in msg and "helm.sh" in msg


def test_helm_4_refused_before_istio_1_30(tmp_path):
    env = _stub(tmp_path, "helm", "v4.3.1")
    with pytest.raises(versions.ToolError, match="helm 4.3.1 found.*< 4 is needed"):
        versions.require("helm", "3.6", maximum_major=3, env=env, why="Helm 4 needs Istio 1.30+")


def test_tool_that_hangs_is_stopped_with_its_children(tmp_path):
    # A stub (named so) whose child sleeps: the bound must end both, or the pipe stays open.
    pidfile = tmp_path / "child.pid"
    p = tmp_path / "helm"
    p.write_text(f"#!/bin/sh\n/bin/sleep 60 &\necho $! > {pidfile}\nwait\necho v3.9.0\n")
    p.chmod(0o755)
    with pytest.raises(versions.ToolError, match="did not answer `helm version` within 0.5s"):
        versions.detect("helm", env={"PATH": str(tmp_path)}, timeout=0.5)
    child = int(pidfile.read_text())
    for _ in range(50):  # the kill is sent; reaping by init may lag a moment
        if not os.path.exists(f"/proc/{child}") or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the stub's child {child} still runs")


def test_failing_tool_says_what_it_printed(tmp_path):
    env = _stub(tmp_path, "istioctl", "no kubeconfig")
    (tmp_path / "istioctl").write_text("#!/bin/sh\necho 'cannot start: bad flag' >&2\nexit 3\n")
    with pytest.raises(versions.ToolError, match="failed to report its version: cannot start: bad flag"):
        versions.detect("istioctl", env=env)


def _counting_stub(folder, version):
    # A stub (named so) that prints a version and counts how often it was asked.
    p = folder / "helm"
    p.write_text(f"#!/bin/sh\necho x >> {folder / 'calls'}\necho v{version}\n")
    p.chmod(0o755)
    return {"PATH": str(folder)}


def _calls(folder):
    return len((folder / "calls").read_text().splitlines())


def test_version_is_read_once_per_binary_identity(tmp_path, monkeypatch):
    monkeypatch.setenv("AMBIENT_TUI_CACHE", str(tmp_path / "cache"))
    # The stub is a script, which is never cached (shims are scripts): let it count as a binary.
    monkeypatch.setattr(versions, "_cacheable", lambda name, path: True)
    env = _counting_stub(tmp_path, "3.19.1")
    assert versions.detect("helm", env=env).version == "3.19.1"
    assert versions.detect("helm", env=env).version == "3.19.1"
    assert _calls(tmp_path) == 1
    entry = json.loads(versions.cache_file().read_text())[f"helm {tmp_path / 'helm'}"]
    assert entry["version"] == "3.19.1"
    # Replaced by another release (same size: only the identity tells them apart).
    (tmp_path / "helm").unlink()
    _counting_stub(tmp_path, "3.19.2")
    assert versions.detect("helm", env=env).version == "3.19.2"
    assert _calls(tmp_path) == 2
    # Rewritten in place: the inode stays, mtime/ctime move.
    time.sleep(0.01)
    (tmp_path / "helm").write_text((tmp_path / "helm").read_text().replace("3.19.2", "3.19.3"))
    assert versions.detect("helm", env=env).version == "3.19.3"
    assert _calls(tmp_path) == 3


def test_version_cache_damaged_or_stale_entries(tmp_path, monkeypatch):
    # A damaged file is an empty cache; an entry whose binary is gone is dropped on the next write.
    monkeypatch.setenv("AMBIENT_TUI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(versions, "_cacheable", lambda name, path: True)
    f = versions.cache_file()
    f.parent.mkdir(parents=True)
    f.write_text('{"helm /gone/helm": {"identity": [1, 2, 3, 4, 5], "version": "3.1.0"}, "trunc')
    env = _counting_stub(tmp_path, "3.20.0")
    assert versions.detect("helm", env=env).version == "3.20.0"
    f.write_text(json.dumps({**json.loads(f.read_text()),
                             "helm /gone/helm": {"identity": [1, 2, 3, 4, 5], "version": "3.1.0"}}))
    (tmp_path / "b").mkdir()
    env2 = _counting_stub(tmp_path / "b", "3.21.0")
    assert versions.detect("helm", env=env2).version == "3.21.0"
    assert sorted(json.loads(f.read_text())) == [f"helm {tmp_path / 'b' / 'helm'}", f"helm {tmp_path / 'helm'}"]
    assert _calls(tmp_path) == 1 and _calls(tmp_path / "b") == 1


def test_shims_are_asked_every_time(tmp_path, monkeypatch):
    monkeypatch.setenv("AMBIENT_TUI_CACHE", str(tmp_path / "cache"))
    env = _counting_stub(tmp_path, "3.19.1")  # a script, as an asdf shim is
    versions.detect("helm", env=env)
    versions.detect("helm", env=env)
    assert _calls(tmp_path) == 2 and not versions.cache_file().exists()
    elf = b"\x7fELF\x02\x01\x01" + bytes(9)  # only the first bytes are read, never run
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "helm").write_bytes(elf)
    (tmp_path / "mise").write_bytes(elf)
    (tmp_path / "shims").mkdir()
    (tmp_path / "shims" / "helm").symlink_to(tmp_path / "mise")  # a mise shim: a link to mise
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "helm").symlink_to(tmp_path / "bin" / "helm")  # Homebrew-style link
    assert versions._cacheable("helm", str(tmp_path / "bin" / "helm"))
    assert versions._cacheable("helm", str(tmp_path / "links" / "helm"))
    assert not versions._cacheable("helm", str(tmp_path / "shims" / "helm"))
    assert not versions._cacheable("helm", str(tmp_path / "helm"))
    assert not versions._cacheable("helm", str(tmp_path / "absent"))


def test_missing_tool(tmp_path):
    with pytest.raises(versions.ToolError, match="istioctl not found on PATH; install"):
        versions.detect("istioctl", env={"PATH": str(tmp_path)})


def test_tui_gets_the_cluster_target_and_preflight(monkeypatch, tmp_path):
    """The TUI starts with one pinned target: preflight reads it, and every step of the plan
    names its pinned single-context kubeconfig and context (the app itself is replaced by a
    recorder: no terminal here)."""
    import json as _json

    import screens.app

    seen = {}

    def record(plan, **kwargs):
        seen.update(kwargs, plan=plan)
        return 0

    monkeypatch.setattr(screens.app, "run_app", record)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    kc = tmp_path / "kubeconfig"
    kc.write_text(_json.dumps({
        "clusters": [{"name": "c1", "cluster": {"server": "https://prod.example:443"}},
                     {"name": "c2", "cluster": {"server": "https://other.example:443"}}],
        "users": [{"name": "u1", "user": {"token": "t1"}}, {"name": "u2", "user": {"token": "t2"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "c1", "user": "u1"}},
                     {"name": "other", "context": {"cluster": "c2", "user": "u2"}}],
        "current-context": "other"}))
    assert main(["--kubeconfig", str(kc), "--context", "prod", "--no-mouse"]) == 0
    target = seen["target"]
    assert (target.context, target.server_host, target.user) == ("prod", "prod.example:443", "u1")
    pinned = target.kubeconfig_path()
    assert pinned != str(kc) and oct(os.stat(pinned).st_mode & 0o777) == "0o600"
    assert seen["mouse"] is False
    ctx = seen["check_context_factory"]()
    assert ctx.kubeconfig == pinned and ctx.context == "prod"
    for step in seen["plan"].steps:
        if step.argv and step.argv[0] == "helm":
            assert step.argv[-4:] == ["--kubeconfig", pinned, "--kube-context", "prod"]
        elif step.argv and step.argv[0] == "kubectl":
            assert step.argv[1:5] == ["--kubeconfig", pinned, "--context", "prod"]
    # without --context the kubeconfig's current context is pinned, and named
    seen.clear()
    assert main(["--kubeconfig", str(kc)]) == 0
    assert seen["target"].context == "other" and seen["mouse"] is True


def test_tui_with_an_unknown_context_says_so_in_one_line(tmp_path, capsys):
    kc = tmp_path / "kubeconfig"
    kc.write_text("current-context: other\n")
    assert main(["--kubeconfig", str(kc), "--context", "prod"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ambient-tui: context 'prod' is not in kubeconfig {kc}; known contexts: none"]


def test_test_file_names_are_unique_across_tiers():
    """The tiers are plain folders (no packages), so two test files with one name collide at
    collection time ("import file mismatch") and the whole run stops."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in set(names) if names.count(n) > 1)
