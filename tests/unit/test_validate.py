"""Input is checked before anything changes (issue 15, item 8): plan, install --dry-run and the
TUI start all go through cli._settings -> validate.check_settings; one line, exit 2."""

from __future__ import annotations

import pytest

from ambient_tui.cli import main
from ambient_tui.settings import Settings
from ambient_tui.validate import InvalidInput, check_namespace, check_settings


@pytest.fixture
def files(tmp_path):
    (tmp_path / "list.yaml").write_text("# istiod values\n- pilot\n- env\n")
    (tmp_path / "broken.yaml").write_text("pilot:\n  env: [a, b\nmeshConfig: {}\n")
    (tmp_path / "scalar.yaml").write_text("just a string\n")
    (tmp_path / "ok.yaml").write_text("pilot:\n  env:\n    X: '1'\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
    charts = tmp_path / "charts"
    for c in ("base", "istiod", "cni"):  # ztunnel missing
        (charts / c).mkdir(parents=True)
        (charts / c / "Chart.yaml").write_text(f"name: {c}\nversion: 1.31.0\n")
    return tmp_path


@pytest.mark.parametrize("argv, expect", [
    (["--enroll", "BAD NS"], "--enroll 'BAD NS': not a valid namespace name"),
    (["--enroll", "apps,Shop"], "--enroll 'Shop': not a valid namespace name"),
    (["--enroll=-apps"], "--enroll '-apps'"),
    (["--enroll", "a" * 64], "at most 63 characters"),
    (["--values", "istiod={d}/list.yaml"], "list.yaml: line 2 starts a list; a values file must be a YAML mapping"),
    (["--values", "istiod={d}/broken.yaml"], "broken.yaml: not valid YAML at line 3"),
    (["--values", "istiod={d}/scalar.yaml"], "line 1 starts a single value"),
    (["--values", "istiod={d}/binary.yaml"], "not UTF-8 text"),
    (["--values", "istiod={d}/missing.yaml"], "missing.yaml: no such file"),
    (["--values", "istiod={d}"], "a directory, not a values file"),
    (["--istio-version", "1.2.3"], "--istio-version: Istio 1.2.3 is not in the catalogue; known:"),
    (["--istio-version", "banana"], "--istio-version: not a version number"),
    (["--charts", "{d}/charts"], "no Chart.yaml for ztunnel"),
    (["--charts", "{d}/nowhere"], "not a directory"),
    (["--gateway-api-file", "{d}/nope.yaml"], "--gateway-api-file"),
])
@pytest.mark.parametrize("command", [["plan"], ["install", "--dry-run", "--kubeconfig", "/nonexistent"]])
def test_bad_input_is_one_line_and_exit_2(files, capsys, command, argv, expect):
    argv = [a.replace("{d}", str(files)) for a in argv]
    assert main([*command, *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no plan printed, no preflight run
    err = captured.err.strip()
    assert "\n" not in err and expect in err, err


def test_good_values_and_namespaces_pass(files, capsys):
    assert main(["plan", "--values", f"istiod={files}/ok.yaml", "--values", f"base={files}/empty.yaml",
                 "--enroll", "apps,shop-2"]) == 0
    assert "--values" in capsys.readouterr().out


def test_tui_start_validates_before_the_app(files, capsys, monkeypatch):
    import screens.app

    monkeypatch.setattr(screens.app, "run_app", lambda *a, **k: pytest.fail("the TUI started"))
    assert main(["--enroll", "BAD NS"]) == 2
    assert "not a valid namespace name" in capsys.readouterr().err


def test_check_settings_directly():
    with pytest.raises(InvalidInput):
        check_namespace("UPPER")
    s = Settings(enroll=["ok-1"])
    assert check_settings(s) is s
