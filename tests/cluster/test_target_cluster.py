"""One pinned cluster target, on the real control plane: a merged KUBECONFIG list, a context
switched in another process while the TUI runs, exec credential plugins (real plugin scripts
run by ambient-tui, helm, kubectl and istioctl), AWS_PROFILE from the exec env reaching boto3
(two profiles, two identities in the loopback AWS), and --read-only in both front ends."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ambient_tui.checks.model import FAIL, PASS, CheckContext
from ambient_tui.cluster import target as tg
from ambient_tui.engine.journal import Journal
from ambient_tui.engine.plan import Phase, Plan, Step, StepState
from ambient_tui.engine.runner import Runner
from ambient_tui.sandbox import build
from ambient_tui.settings import Settings

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).parents[2]
EXEC_API = "client.authentication.k8s.io/v1beta1"


def cli(env, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "ambient_tui.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=ROOT)


def checks(proc) -> dict:
    assert proc.stdout.strip(), proc.stderr
    return {c["id"]: c for c in json.loads(proc.stdout)["checks"]}


@pytest.fixture
def env(admin_env, tmp_path):
    return {**admin_env, "XDG_STATE_HOME": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}


def load(path) -> dict:
    import yaml  # kubectl writes YAML back

    return yaml.safe_load(Path(path).read_text())


def write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, indent=1))
    path.chmod(0o600)
    return path


def with_exec(kubeconfig: Path, dst: Path, command: str, env_vars: dict | None = None) -> Path:
    """The sandbox kubeconfig with the admin user's token replaced by an exec plugin."""
    doc = load(kubeconfig)
    for u in doc["users"]:
        if u["name"] == "admin":
            u["user"] = {"exec": {"apiVersion": EXEC_API, "command": command, "args": ["eks", "get-token"],
                                  "env": [{"name": k, "value": v} for k, v in (env_vars or {}).items()],
                                  "interactiveMode": "IfAvailable"}}
    return write(dst, doc)


def plugin(tmp_path: Path, name: str, body: str) -> str:
    exe = tmp_path / name
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)
    return str(exe)


def working_plugin(tmp_path, control_plane) -> str:
    """A real exec plugin: it prints an ExecCredential with the admin token (and talks on stderr)."""
    cred = {"apiVersion": EXEC_API, "kind": "ExecCredential", "status": {"token": control_plane.admin_token}}
    return plugin(tmp_path, "token-plugin", "echo 'PLUGIN-STDERR: fetching a token' >&2\n"
                                            f"cat <<'EOF'\n{json.dumps(cred)}\nEOF\n")


# -- a merged KUBECONFIG list -------------------------------------------------------------------
def merged_list(kubeconfig: Path, tmp_path: Path) -> str:
    """a: another cluster (no current-context); b: the sandbox kubeconfig (its current-context)."""
    a = write(tmp_path / "a.kubeconfig", {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "elsewhere", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "nobody", "user": {"token": "x"}}],
        "contexts": [{"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "nobody"}}]})
    return f"{a}:{kubeconfig}"


def test_a_merged_kubeconfig_list_works_headless(env, kubeconfig, control_plane, tmp_path):
    env = {**env, "KUBECONFIG": merged_list(kubeconfig, tmp_path)}
    p = cli(env, "preflight", "--json", "--istio-version", build.ISTIO_VERSION)
    c = checks(p)
    assert c["cluster-access"]["status"] == PASS, c["cluster-access"]
    assert control_plane.admin_context in c["cluster-access"]["detail"] and "as admin" in c["cluster-access"]["detail"]
    # helm and istioctl read the pinned single-context file, so they see the sandbox too
    assert c["existing-istio"]["status"] in (PASS, "warn"), c["existing-istio"]
    assert c["istioctl-precheck"]["status"] in (PASS, "warn"), c["istioctl-precheck"]
    assert c["rbac"]["status"] == PASS
    s = cli(env, "status", "--json")
    assert s.stderr == "" and json.loads(s.stdout)["context"] == control_plane.admin_context
    # and a context of the first file is found as well
    s = cli(env, "status", "--context", "elsewhere")
    assert s.returncode == 1 and s.stderr.count("\n") == 1 and "unreachable" in s.stderr


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def whoami_plan(kubectl: str) -> Plan:
    return Plan("who", [Phase("who", "Who am I", [
        Step("whoami", "kubectl auth whoami",
             argv=["kubectl", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"])])])


@pytest.mark.asyncio
async def test_tui_stays_on_the_pinned_target_when_another_shell_switches(env, kubeconfig, control_plane,
                                                                          tools, tmp_path, monkeypatch):
    """Started on a merged KUBECONFIG list; then another process runs `kubectl config
    use-context` and even `set-context` to point the pinned context at the restricted user;
    the TUI's steps, preflight and header do not move."""
    from screens.app import AmbientApp
    from screens.preflight import PreflightPane

    monkeypatch.setenv("XDG_STATE_HOME", env["XDG_STATE_HOME"])
    mine = write(tmp_path / "mine.kubeconfig", load(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", merged_list(mine, tmp_path))  # the context is in the 2nd file
    target = tg.resolve()
    plan = whoami_plan(tools.kubectl)
    tg.pin_steps(plan.steps, target)
    # Local charts: the sandbox has no network, and a failing chart-source check would make
    # `r` only warn ("press r again to run anyway") instead of running the step.
    settings = Settings(istio_version=build.ISTIO_VERSION, chart_source=str(tools.charts))
    runner = Runner(plan, journal=Journal(tmp_path / "journal.jsonl"), env={**env, **target.tool_env()})
    app = AmbientApp(plan, runner, target=target, keymap_path=tmp_path / "none.yaml",
                     check_context_factory=lambda: CheckContext(settings, target=target, env=env))
    async with app.run_test(size=(160, 40)) as pilot:
        screen = app.screen
        shell = {**env, "KUBECONFIG": str(mine)}
        for argv in (["config", "use-context", control_plane.restricted_context],
                     ["config", "set-context", control_plane.admin_context, "--user", "restricted"]):
            subprocess.run([tools.kubectl, *argv], env=shell, check=True, capture_output=True)
        assert load(mine)["current-context"] == control_plane.restricted_context
        await wait_for(lambda: screen.preflight_done, 120, "preflight")
        await pilot.press("p")  # checks again, after the switch
        await wait_for(lambda: screen.preflight_done, 120, "preflight again")
        access = screen.query_one(PreflightPane).results["cluster-access"]
        assert access.status == PASS and "as admin" in access.detail, access.detail
        results = screen.query_one(PreflightPane).results
        assert not [c.id for c in results.values() if c.status == FAIL], \
            {c.id: c.detail for c in results.values() if c.status == FAIL}
        await pilot.press("r")
        await wait_for(lambda: plan.steps[0].state not in (StepState.PENDING, StepState.RUNNING), 60, "the step")
        assert plan.steps[0].state is StepState.SUCCEEDED
        assert "admin" in "\n".join(screen.buffers.lines("whoami"))
        assert "restricted" not in "\n".join(screen.buffers.lines("whoami"))
        title = app.sub_title
        assert title.startswith(f"context: {control_plane.admin_context} · {target.server_host} · user: admin"), title
        await pilot.press("q")


# -- exec credential plugins ------------------------------------------------------------------
def test_a_working_exec_plugin_serves_the_client_helm_and_istioctl(env, kubeconfig, control_plane, tmp_path):
    kc = with_exec(kubeconfig, tmp_path / "exec.kubeconfig", working_plugin(tmp_path, control_plane))
    p = cli(env, "preflight", "--json", "--kubeconfig", str(kc), "--istio-version", build.ISTIO_VERSION)
    c = checks(p)
    assert c["cluster-access"]["status"] == PASS and "as admin" in c["cluster-access"]["detail"]
    assert c["rbac"]["status"] == PASS, c["rbac"]
    assert c["existing-istio"]["status"] in (PASS, "warn") and c["istioctl-precheck"]["status"] in (PASS, "warn")
    assert "PLUGIN-STDERR" not in p.stderr and p.stderr == "", p.stderr


@pytest.mark.parametrize("case", ["missing", "sso-expired", "prompts"])
def test_failing_exec_plugins_have_their_own_message_and_no_403(case, env, kubeconfig, tmp_path):
    if case == "missing":
        command = "aws-cli-that-is-not-installed"
        want = "cannot start: aws-cli-that-is-not-installed not found"
    elif case == "sso-expired":
        command = plugin(tmp_path, "aws", "echo 'PLUGIN-STDERR: loading SSO token' >&2\n"
                                          "echo 'Error when retrieving token from sso: Token has expired and "
                                          "refresh failed' >&2\nexit 1\n")
        want = "failed: Error when retrieving token from sso: Token has expired and refresh failed"
    else:
        command = plugin(tmp_path, "mfa", "echo 'PLUGIN-STDERR: assuming the role' >&2\n"
                                          "printf 'Enter MFA code for arn:aws:iam::1:mfa/me: ' >&2\n"
                                          "read -r code || exit 1\necho \"$code\" > /dev/null\nexit 1\n")
        want = "asked for input"
    kc = with_exec(kubeconfig, tmp_path / "exec.kubeconfig", command, {"AWS_PROFILE": "prod"})
    p = cli(env, "preflight", "--json", "--kubeconfig", str(kc))
    c = checks(p)
    access = c["cluster-access"]
    assert p.returncode == 1 and access["status"] == FAIL and want in access["detail"], access
    if case == "sso-expired":
        assert access["fix"] == "run `aws sso login --profile prod`"
    elif case == "missing":
        assert access["fix"].startswith("install aws-cli-that-is-not-installed")
    else:
        assert "get credentials first in a shell" in access["fix"]
    text = json.dumps(c)
    assert "403" not in text and "forbidden" not in text.lower()
    assert c["rbac"]["status"] == "skip" and c["nodes"]["status"] == "skip"
    assert p.stderr == "", p.stderr  # nothing from the plugin (or a log line) on the terminal
    # headless status: exactly one line, the plugin's own message
    s = cli(env, "status", "--kubeconfig", str(kc))
    assert s.returncode == 1 and s.stderr.count("\n") == 1 and want in s.stderr and "→" in s.stderr, s.stderr
    assert "PLUGIN-STDERR" not in s.stderr


@pytest.mark.asyncio
async def test_tui_preflight_shows_the_plugin_failure_and_nothing_reaches_the_terminal(
        env, kubeconfig, tmp_path, monkeypatch, capfd):
    from screens.app import AmbientApp
    from screens.preflight import PreflightPane

    monkeypatch.setenv("XDG_STATE_HOME", env["XDG_STATE_HOME"])
    command = plugin(tmp_path, "aws", "echo 'PLUGIN-STDERR: reading the cache' >&2\n"
                                      "echo 'Token has expired and refresh failed' >&2\nexit 1\n")
    target = tg.resolve(str(with_exec(kubeconfig, tmp_path / "exec.kubeconfig", command,
                                      {"AWS_PROFILE": "prod"})))
    plan = whoami_plan(build.bin_path("kubectl"))
    settings = Settings(istio_version=build.ISTIO_VERSION)
    app = AmbientApp(plan, Runner(plan), target=target, keymap_path=tmp_path / "none.yaml",
                     check_context_factory=lambda: CheckContext(settings, target=target, env=env))
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(lambda: app.screen.preflight_done, 120, "preflight")
        results = app.screen.query_one(PreflightPane).results
        access = results["cluster-access"]
        assert access.status == FAIL and "Token has expired" in access.detail
        assert not any("403" in r.detail or "forbidden" in r.detail for r in results.values())
        await pilot.press("q")
    out, err = capfd.readouterr()  # the real fds 1 and 2: a plugin writing there would show
    assert "PLUGIN-STDERR" not in out + err


# -- AWS_PROFILE from the exec env ----------------------------------------------------------
@pytest.fixture
def two_profiles(aws_local, tmp_path):
    """Two IAM users in the loopback AWS, each with a key, as profiles dev and prod."""
    import boto3

    iam = boto3.client("iam", region_name=aws_local.region, endpoint_url=aws_local.endpoint,
                       aws_access_key_id=aws_local.env["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=aws_local.env["AWS_SECRET_ACCESS_KEY"])
    creds, config = [], []
    for name in ("dev", "prod"):
        user = f"{name}-operator-{int(time.time() * 1000) % 10**8}"
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        creds.append(f"[{name}]\naws_access_key_id = {key['AccessKeyId']}\n"
                     f"aws_secret_access_key = {key['SecretAccessKey']}\n")
        config.append(f"[profile {name}]\nregion = {aws_local.region}\n")
    (tmp_path / "aws-credentials").write_text("\n".join(creds))
    (tmp_path / "aws-config").write_text("\n".join(config))
    return {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
            "AWS_CONFIG_FILE": str(tmp_path / "aws-config")}


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_aws_profile_from_the_exec_env_reaches_boto3(profile, env, kubeconfig, control_plane, two_profiles,
                                                     tmp_path):
    kc = with_exec(kubeconfig, tmp_path / "exec.kubeconfig", working_plugin(tmp_path, control_plane),
                   {"AWS_PROFILE": profile})
    p = cli({**env, **two_profiles}, "preflight", "--json", "--kubeconfig", str(kc))
    eks = checks(p)["aws-eks"]
    assert eks["status"] == PASS, eks
    assert f":user/{profile}-operator-" in eks["detail"], eks["detail"]
    assert f"profile {profile}, from the kubeconfig's exec env" in eks["detail"]


# -- --read-only ------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["install", "--yes"], ["--read-only", "install", "--yes", "--fix"],
    ["uninstall", "--yes"], ["--read-only", "uninstall", "--yes", "--purge-crds"]])
def test_read_only_refuses_every_write_headless(argv, env, tmp_path):
    if "--read-only" not in argv:
        argv = [*argv, "--read-only"]
    p = cli(env, *argv)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.count("\n") == 1 and "--read-only" in p.stderr and "nothing was done" in p.stderr
    assert not (tmp_path / "state" / "ambient-tui" / "journal").exists()  # nothing ran, nothing journaled


def test_read_only_still_reads(env):
    p = cli(env, "--read-only", "preflight", "--json")
    assert checks(p)["cluster-access"]["status"] == PASS
    # a dry run changes nothing, so --read-only lets it show the plan
    d = cli(env, "install", "--dry-run", "--read-only", "--istio-version", build.ISTIO_VERSION,
            "--charts", str(build.charts_dir()))
    assert "--read-only" not in d.stderr and "preflight for Istio" in d.stdout, (d.stdout, d.stderr)


@pytest.mark.asyncio
async def test_tui_read_only_has_no_mutating_keys(env, kubeconfig, tmp_path, monkeypatch):
    from textual.app import SystemCommand

    from screens.app import AmbientApp
    from screens.main import MUTATING

    monkeypatch.setenv("XDG_STATE_HOME", env["XDG_STATE_HOME"])
    target = tg.resolve(str(kubeconfig), read_only=True)
    plan = whoami_plan(build.bin_path("kubectl"))
    tg.pin_steps(plan.steps, target)
    app = AmbientApp(plan, Runner(plan, env={**env, **target.tool_env()}), target=target,
                     keymap_path=tmp_path / "none.yaml")
    async with app.run_test(size=(160, 40)) as pilot:
        assert app.sub_title.endswith("READ-ONLY"), app.sub_title
        screen = app.screen
        shown = {b.binding.id for b in screen.active_bindings.values() if b.enabled}
        assert not shown & MUTATING, shown & MUTATING
        palette = [c.title for c in app.get_system_commands(screen) if isinstance(c, SystemCommand)]
        assert not any(t.startswith(("Run the plan", "Run the selected", "Skip", "Retry", "Uninstall", "Add the", "Toggle dry")) for t in palette)
        await pilot.press("r")
        await pilot.press("u")
        await pilot.pause(0.5)
        assert plan.steps[0].state is StepState.PENDING and screen._worker is None
        assert app.screen is screen  # `u` opened no uninstall screen
        await pilot.press("q")
