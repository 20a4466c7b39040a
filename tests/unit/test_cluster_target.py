"""The cluster target: kubectl's merge of $KUBECONFIG, pinning, and the exec credential plugin
run with no terminal (real plugin scripts, run as real processes)."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat

import pytest

from ambient_tui.cluster import exec_plugin as ep
from ambient_tui.cluster import target as tg
from ambient_tui.cluster.client import ClusterAccessError


def kubeconfig(path, clusters=(), users=(), contexts=(), current=None):
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": n, "cluster": c} for n, c in clusters],
           "users": [{"name": n, "user": u} for n, u in users],
           "contexts": [{"name": n, "context": c} for n, c in contexts]}
    if current:
        doc["current-context"] = current
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    ep._tokens.clear()


def test_merge_first_file_wins_per_name_and_current_context(tmp_path):
    a = kubeconfig(tmp_path / "a", clusters=[("c", {"server": "https://a:1"})],
                   users=[("u", {"token": "from-a"})], contexts=[("x", {"cluster": "c", "user": "u"})])
    b = kubeconfig(tmp_path / "b", clusters=[("c", {"server": "https://b:2"}), ("d", {"server": "https://d:3"})],
                   users=[("u", {"token": "from-b"}), ("w", {"token": "w"})],
                   contexts=[("x", {"cluster": "d", "user": "w"}), ("y", {"cluster": "d", "user": "w"})],
                   current="y")
    c = kubeconfig(tmp_path / "c", contexts=[("z", {"cluster": "c", "user": "u"})], current="z")
    env = {"KUBECONFIG": os.pathsep.join([a, str(tmp_path / "missing"), b, c])}
    t = tg.resolve(environ=env)
    # current-context from the first file that sets it (b, not c); entries from the 2nd file
    assert (t.context, t.cluster, t.server, t.user) == ("y", "d", "https://d:3", "w")
    assert t.files == (a, b, c)  # the missing entry is skipped, as kubectl does
    # context x: a's definition wins over b's, and a's cluster c and user u over b's
    x = tg.resolve(context="x", environ=env)
    assert (x.server, x.config["users"][0]["user"]["token"]) == ("https://a:1", "from-a")
    z = tg.resolve(context="z", environ=env)
    assert z.server == "https://a:1"


def test_explicit_kubeconfig_is_read_alone_and_errors_name_the_files(tmp_path):
    a = kubeconfig(tmp_path / "a", contexts=[("x", {"cluster": "c"})], current="x",
                   clusters=[("c", {"server": "https://a"})])
    env = {"KUBECONFIG": str(tmp_path / "other")}
    assert tg.resolve(a, environ=env).context == "x"
    with pytest.raises(ClusterAccessError, match=r"context 'nope' is not in kubeconfig .*; known contexts: x"):
        tg.resolve(a, "nope", environ=env)
    with pytest.raises(ClusterAccessError, match="no kubeconfig at") as e:
        tg.resolve(str(tmp_path / "absent"), environ=env)
    assert e.value.kind == "no-kubeconfig"
    bad = tmp_path / "bad"
    bad.write_text("clusters: [\n")
    with pytest.raises(ClusterAccessError, match="cannot read kubeconfig"):
        tg.resolve(str(bad), environ=env)


def test_relative_paths_are_made_absolute_from_their_own_file(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    a = kubeconfig(sub / "a", clusters=[("c", {"server": "https://a", "certificate-authority": "ca.pem"})],
                   users=[("u", {"client-certificate": "crt.pem", "client-key": "/abs/key.pem",
                                 "exec": {"command": "./bin/plugin", "apiVersion": "v1"}})],
                   contexts=[("x", {"cluster": "c", "user": "u"})], current="x")
    t = tg.resolve(a)
    assert t.config["clusters"][0]["cluster"]["certificate-authority"] == str(sub / "ca.pem")
    user = t.config["users"][0]["user"]
    assert user["client-certificate"] == str(sub / "crt.pem") and user["client-key"] == "/abs/key.pem"
    assert user["exec"]["command"] == str(sub / "bin" / "plugin")


def test_pinned_file_is_private_single_context_and_survives_a_context_switch(tmp_path):
    path = tmp_path / "kc"
    kubeconfig(path, clusters=[("c1", {"server": "https://one:443"}), ("c2", {"server": "https://two:443"})],
               users=[("u1", {"token": "a"}), ("u2", {"token": "b"})],
               contexts=[("one", {"cluster": "c1", "user": "u1"}), ("two", {"cluster": "c2", "user": "u2"})],
               current="one")
    t = tg.resolve(str(path))
    pinned = t.kubeconfig_path()
    assert stat.S_IMODE(os.stat(pinned).st_mode) == 0o600
    # `kubectl config use-context two` in another shell rewrites the user's file ...
    doc = json.loads(path.read_text())
    doc["current-context"] = "two"
    path.write_text(json.dumps(doc))
    # ... not the pinned one, which holds only the pinned context
    again = tg.resolve(pinned, "one")
    assert (again.context, again.server_host, again.user) == ("one", "one:443", "u1")
    pinned_doc = json.loads(open(pinned).read())
    assert [c["name"] for c in pinned_doc["contexts"]] == ["one"] and pinned_doc["current-context"] == "one"
    assert t.tool_flags("helm") == ["--kubeconfig", pinned, "--kube-context", "one"]
    assert t.tool_flags("kubectl") == ["--kubeconfig", pinned, "--context", "one"]


def test_pin_steps_names_the_target_once_for_each_tool(tmp_path):
    from ambient_tui.engine.plan import Step

    t = tg.resolve(kubeconfig(tmp_path / "kc", clusters=[("c", {"server": "https://s"})],
                              contexts=[("x", {"cluster": "c"})], current="x"))
    steps = [Step("a", "helm", argv=["helm", "upgrade", "--install", "istiod"]),
             Step("b", "kubectl", argv=["kubectl", "apply", "-f", "x.yaml"]),
             Step("c", "other", argv=["sh", "-c", "true"])]
    tg.pin_steps(steps, t)
    tg.pin_steps(steps, t)  # twice: still once
    p = t.kubeconfig_path()
    assert steps[0].argv == ["helm", "upgrade", "--install", "istiod", "--kubeconfig", p, "--kube-context", "x"]
    assert steps[1].argv == ["kubectl", "--kubeconfig", p, "--context", "x", "apply", "-f", "x.yaml"]
    assert steps[2].argv == ["sh", "-c", "true"]


def test_aws_profile_and_region_come_from_the_exec_block(tmp_path):
    ex = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
          "args": ["--region", "eu-west-1", "eks", "get-token", "--cluster-name", "prod"],
          "env": [{"name": "AWS_PROFILE", "value": "prod-admin"}]}
    t = tg.resolve(kubeconfig(tmp_path / "kc", clusters=[("c", {"server": "https://s"})],
                              users=[("u", {"exec": ex})], contexts=[("x", {"cluster": "c", "user": "u"})],
                              current="x"))
    assert (t.aws_profile, t.aws_region) == ("prod-admin", "eu-west-1")
    assert t.exec_plugin.name == "aws eks get-token"  # `--region eu-west-1` skipped
    ex2 = dict(ex, args=["eks", "get-token", "--cluster-name", "prod", "--profile", "p2"], env=[])
    plugin = ep.ExecPlugin.from_user({"exec": ex2})
    assert plugin.name == "aws eks get-token" and plugin.arg("--profile") == "p2"


# -- the exec plugin ---------------------------------------------------------------------------
def plugin_target(tmp_path, script: str | None, command: str | None = None, **exec_extra):
    if script is not None:
        exe = tmp_path / "plugin"
        exe.write_text("#!/bin/sh\n" + script)
        exe.chmod(0o755)
        command = str(exe)
    ex = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": command,
          "args": ["eks", "get-token"], **exec_extra}
    return tg.resolve(kubeconfig(tmp_path / "kc", clusters=[("c", {"server": "https://127.0.0.1:1"})],
                                 users=[("u", {"exec": ex})], contexts=[("x", {"cluster": "c", "user": "u"})],
                                 current="x"))


def cred(token: str, expires: dt.datetime | None = None) -> str:
    status = {"token": token}
    if expires:
        status["expirationTimestamp"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                       "status": status})


def test_a_working_plugin_gives_the_client_its_token_and_is_rerun_when_it_expires(tmp_path):
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)  # inside the refresh skew
    counter = tmp_path / "runs"
    t = plugin_target(tmp_path, f"echo run >> {counter}\n"
                                "test -z \"$KUBERNETES_EXEC_INFO\" && exit 3\n"
                                f"echo 'debug: stderr is captured' >&2\ncat <<'EOF'\n{cred('tok-1', soon)}\nEOF\n")
    api = tg.api_client(t)
    assert api.configuration.get_api_key_with_prefix("BearerToken") == "Bearer tok-1"
    runs = len(counter.read_text().splitlines())
    api.configuration.get_api_key_with_prefix("BearerToken")  # the hook refreshes an expiring token
    assert len(counter.read_text().splitlines()) > runs


def test_a_token_without_expiry_is_fetched_once(tmp_path):
    counter = tmp_path / "runs"
    t = plugin_target(tmp_path, f"echo run >> {counter}\ncat <<'EOF'\n{cred('tok')}\nEOF\n")
    tg.api_client(t)
    tg.api_client(t)
    assert counter.read_text().splitlines() == ["run"]


def test_a_missing_plugin_says_install_it(tmp_path):
    t = plugin_target(tmp_path, None, command="aws-not-installed-here")
    with pytest.raises(ep.CredentialPluginError) as e:
        tg.api_client(t)
    assert e.value.kind == "credential-plugin" and e.value.reason == "missing"
    assert "aws-not-installed-here not found" in str(e.value)
    aws = ep.classify(ep.ExecPlugin("aws", ("eks", "get-token")), missing=True)
    assert str(aws).startswith("the credential plugin `aws eks get-token` cannot start: aws not found → "
                               "install the AWS CLI")


def test_an_expired_sso_session_says_aws_sso_login_with_the_profile(tmp_path):
    t = plugin_target(tmp_path, "echo 'Error when retrieving token from sso: Token has expired and "
                                "refresh failed' >&2\nexit 255\n",
                      env=[{"name": "AWS_PROFILE", "value": "prod"}])
    with pytest.raises(ep.CredentialPluginError) as e:
        ep.run_plugin(t)
    assert e.value.reason == "expired"
    assert e.value.message.endswith("failed: Error when retrieving token from sso: Token has expired and refresh failed")
    # the script is not called aws, so the generic login advice; an `aws` command names the profile
    aws = ep.classify(ep.ExecPlugin("aws", ("eks", "get-token")), code=255,
                      output="Token has expired and refresh failed", profile="prod")
    assert aws.fix == "run `aws sso login --profile prod`"
    assert str(aws) == ("the credential plugin `aws eks get-token` failed: Token has expired and "
                        "refresh failed → run `aws sso login --profile prod`")


def test_a_plugin_that_prompts_gets_no_stdin_and_no_terminal_and_is_named(tmp_path):
    # It asks for an MFA code on the terminal when it can, else on stdin; it gets neither.
    t = plugin_target(tmp_path, "printf 'Enter MFA code for arn:aws:iam::1:mfa/me: ' >&2\n"
                                "if ( : > /dev/tty ) 2>/dev/null; then echo tty-open >&2; exit 9; fi\n"
                                "read -r code || exit 1\necho \"got $code\" >&2\nexit 1\n")
    with pytest.raises(ep.CredentialPluginError) as e:
        ep.run_plugin(t)
    assert e.value.reason == "interactive", str(e.value)
    assert "asked for input (Enter MFA code" in e.value.message
    assert "get credentials first in a shell" in e.value.fix


def test_interactive_mode_always_is_not_even_started(tmp_path):
    marker = tmp_path / "started"
    t = plugin_target(tmp_path, f"touch {marker}\n", interactiveMode="Always")
    with pytest.raises(ep.CredentialPluginError, match="interactiveMode: Always") as e:
        ep.run_plugin(t)
    assert e.value.reason == "interactive" and not marker.exists()


def test_a_hung_plugin_is_stopped(tmp_path):
    t = plugin_target(tmp_path, "sleep 30\n")
    with pytest.raises(ep.CredentialPluginError, match=r"did not finish within 0.5s and was stopped"):
        ep.run_plugin(t, timeout=0.5)


def test_garbage_output_is_its_own_failure(tmp_path):
    t = plugin_target(tmp_path, "echo not-json\n")
    with pytest.raises(ep.CredentialPluginError, match="printed no ExecCredential"):
        ep.run_plugin(t)


def test_cluster_access_check_fails_with_the_plugin_message_and_others_skip(tmp_path):
    """No 403s: the plugin's failure is the cluster-access result, the cluster checks skip."""
    from ambient_tui.checks.core import cluster_access, rbac
    from ambient_tui.checks.model import FAIL, CheckContext, Skip
    from ambient_tui.settings import Settings

    t = plugin_target(tmp_path, "echo 'Token has expired and refresh failed' >&2\nexit 1\n")
    ctx = CheckContext(Settings(), target=t)
    c = cluster_access(ctx)
    assert c.status == FAIL and c.data["kind"] == "credential-plugin"
    assert "Token has expired" in c.detail and c.fix
    with pytest.raises(Skip, match="credential-plugin"):
        rbac(ctx)


@pytest.mark.parametrize("argv", [["--read-only", "install", "--yes"], ["install", "--yes", "--read-only"],
                                  ["--read-only", "uninstall", "--yes"], ["uninstall", "--read-only"]])
def test_read_only_refuses_writes_in_one_line_before_touching_anything(argv, tmp_path, monkeypatch, capsys):
    from ambient_tui.cli import main

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))  # nothing to reach: refused first
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--read-only" in err and "nothing was done" in err
    assert not (tmp_path / "state").exists()


def test_an_aws_mfa_prompt_says_how_to_cache_credentials_first():
    e = ep.classify(ep.ExecPlugin("aws", ("eks", "get-token")), code=255, profile="prod",
                    output="Enter MFA code for arn:aws:iam::123456789012:mfa/me: \nEOFError")
    assert e.reason == "interactive" and "asked for input (Enter MFA code for arn:aws:iam::123456789012:mfa/me:)" in e.message
    assert e.fix.startswith("get credentials first in a shell: `aws sts get-caller-identity --profile prod`")
