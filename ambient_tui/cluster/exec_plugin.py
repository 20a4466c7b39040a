"""The exec credential plugin of a kubeconfig user (`aws eks get-token`, kubelogin, ...), run
by ambient-tui itself and never by the kubernetes client library, which hands a terminal's
stdin and stderr to the plugin.

Here a plugin runs with stdin closed, stdout and stderr captured, in a new session (so it
cannot open /dev/tty either), with a timeout. Its token is cached until shortly before its
expirationTimestamp. A failure is a CredentialPluginError with its own reason and next step:
missing binary, an expired SSO session, a plugin that wanted input, a timeout, bad output.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import threading
from dataclasses import dataclass

from ambient_tui.cluster.client import ClusterAccessError

PLUGIN_TIMEOUT = 20.0
EXPIRY_SKEW = dt.timedelta(seconds=30)  # refresh a token this long before it expires
INSTALL_HINTS = {
    "aws": "install the AWS CLI (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)",
    "aws-iam-authenticator": "install aws-iam-authenticator, or rerun `aws eks update-kubeconfig` to use the AWS CLI",
    "kubelogin": "install kubelogin (https://github.com/int128/kubelogin)",
    "gke-gcloud-auth-plugin": "install it: gcloud components install gke-gcloud-auth-plugin",
}
# What a plugin that asked for input says once it finds stdin closed and no terminal.
PROMPT = re.compile(r"\b(mfa|one[- ]time|otp|passcode|password|pin)\b|enter (the |your )?\w*\s*(code|token)"
                    r"|verification code|EOFError|GetPassWarning|/dev/tty|not a (terminal|tty)"
                    r"|inappropriate ioctl|no such device or address", re.I)
SSO_EXPIRED = re.compile(r"\bsso\b|token has expired|expired token|session (has )?expired"
                         r"|refresh failed|ExpiredToken", re.I)


class CredentialPluginError(ClusterAccessError):
    """The kubeconfig user's exec plugin did not give credentials: `message` says why,
    `fix` what to do first. str() is the one line: reason → fix."""

    def __init__(self, message: str, fix: str, reason: str = "failed") -> None:
        super().__init__("credential-plugin", message)
        self.fix, self.reason = fix, reason

    def __str__(self) -> str:
        return f"{self.message} → {self.fix}"


@dataclass(frozen=True)
class ExecPlugin:
    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    api_version: str = "client.authentication.k8s.io/v1beta1"
    interactive_mode: str = "IfAvailable"
    provide_cluster_info: bool = False
    install_hint: str = ""

    @classmethod
    def from_user(cls, user: dict) -> "ExecPlugin | None":
        ex = user.get("exec")
        if not isinstance(ex, dict) or not ex.get("command"):
            return None
        env = tuple((str(e.get("name")), str(e.get("value", ""))) for e in ex.get("env") or []
                    if isinstance(e, dict) and e.get("name"))
        return cls(str(ex["command"]), tuple(str(a) for a in ex.get("args") or []), env,
                   str(ex.get("apiVersion") or cls.api_version),
                   str(ex.get("interactiveMode") or "IfAvailable"),
                   bool(ex.get("provideClusterInfo")), str(ex.get("installHint") or ""))

    @property
    def name(self) -> str:
        """`aws eks get-token`: the command and its leading words, as a person would say it."""
        words, skip = [os.path.basename(self.command)], False
        for a in self.args:  # `--region us-east-1 eks get-token`: flags and their values skipped
            if len(words) >= 3:
                break
            if skip or a.startswith("-"):
                skip = a.startswith("-") and "=" not in a and not skip
                continue
            words.append(a)
        return " ".join(words)

    def arg(self, *flags: str) -> str | None:
        for i, a in enumerate(self.args):
            for f in flags:
                if a == f and i + 1 < len(self.args):
                    return self.args[i + 1]
                if a.startswith(f + "="):
                    return a.split("=", 1)[1]
        return None

    def env_value(self, *names: str) -> str | None:
        d = dict(self.env)
        return next((d[n] for n in names if d.get(n)), None)


def classify(plugin: ExecPlugin, *, missing: bool = False, timed_out: bool = False, code: int = 0,
             output: str = "", profile: str | None = None, timeout: float = PLUGIN_TIMEOUT) -> CredentialPluginError:
    """One failed plugin run as its own message and next step."""
    name = f"the credential plugin `{plugin.name}`"
    login = f"get credentials first in a shell (run `{plugin.name} ...` there), then start ambient-tui again"
    if os.path.basename(plugin.command) == "aws":  # the CLI caches what an MFA prompt gave it
        login = (f"get credentials first in a shell: `aws sts get-caller-identity"
                 f"{' --profile ' + profile if profile else ''}` asks once and caches them; then start again")
    if missing:
        exe = os.path.basename(plugin.command)
        hint = plugin.install_hint.strip().splitlines()[0] if plugin.install_hint.strip() else ""
        return CredentialPluginError(f"{name} cannot start: {exe} not found",
                                     INSTALL_HINTS.get(exe) or hint or f"install {exe}, or fix the "
                                     "exec command of this kubeconfig user", "missing")
    if plugin.interactive_mode == "Always":
        return CredentialPluginError(f"{name} needs a terminal to ask for input (interactiveMode: "
                                     "Always), and ambient-tui never gives it one", login, "interactive")
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    if timed_out:
        return CredentialPluginError(f"{name} did not finish within {timeout:g}s and was stopped "
                                     "(waiting for a login or for input?)", login, "interactive")
    if PROMPT.search(output):
        said = next((ln for ln in lines if PROMPT.search(ln)), "")
        return CredentialPluginError(f"{name} asked for input ({_clip(said)}) and was stopped: "
                                     "plugins get no keyboard here", login, "interactive")
    said = next((ln for ln in reversed(lines) if SSO_EXPIRED.search(ln)), lines[-1] if lines else "")
    said = _clip(said) or f"exit code {code}"
    if SSO_EXPIRED.search(output):
        fix = (f"run `aws sso login --profile {profile}`" if profile else "run `aws sso login`") \
            if os.path.basename(plugin.command) == "aws" else f"log in again ({plugin.name})"
        return CredentialPluginError(f"{name} failed: {said}", fix, "expired")
    return CredentialPluginError(f"{name} failed: {said}",
                                 f"run `{plugin.name}` in a shell to see the whole error", "failed")


def _clip(text: str) -> str:
    from ambient_tui.engine.redact import redact

    return redact(text)[:200]


_tokens: dict[tuple, tuple[dict, dt.datetime | None]] = {}
_tokens_lock = threading.Lock()


def run_plugin(target, timeout: float = PLUGIN_TIMEOUT, fresh: bool = False) -> dict:
    """The ExecCredential status (token or client certificate) for a cluster Target's user,
    cached until it expires."""
    plugin = target.exec_plugin
    key = (plugin, target.server)
    with _tokens_lock:
        cached = _tokens.get(key)
        now = dt.datetime.now(dt.timezone.utc)
        if cached and not fresh and (cached[1] is None or cached[1] - EXPIRY_SKEW > now):
            return cached[0]
        status, expiry = _run_plugin(target, plugin, timeout)
        _tokens[key] = (status, expiry)
        return status


def _run_plugin(target, plugin: ExecPlugin, timeout: float) -> tuple[dict, dt.datetime | None]:
    profile = plugin.env_value("AWS_PROFILE") or plugin.arg("--profile") or os.environ.get("AWS_PROFILE")
    if plugin.interactive_mode == "Always":
        raise classify(plugin, profile=profile)
    info: dict = {"apiVersion": plugin.api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    if plugin.provide_cluster_info:
        cl = target.config["clusters"][0]["cluster"]
        info["spec"]["cluster"] = {k2: cl[k1] for k1, k2 in (
            ("server", "server"), ("certificate-authority-data", "certificate-authority-data"),
            ("insecure-skip-tls-verify", "insecure-skip-tls-verify"), ("tls-server-name", "tls-server-name"))
            if k1 in cl}
    env = {**os.environ, **dict(plugin.env), "KUBERNETES_EXEC_INFO": json.dumps(info)}
    try:
        # No stdin, no terminal (a new session cannot open /dev/tty), output captured.
        proc = subprocess.Popen([plugin.command, *plugin.args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
                                start_new_session=True)
    except (FileNotFoundError, NotADirectoryError):
        raise classify(plugin, missing=True) from None
    except PermissionError as e:
        raise CredentialPluginError(f"the credential plugin `{plugin.name}` cannot start: {e.strerror}",
                                    f"make {plugin.command} executable", "missing") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise classify(plugin, timed_out=True, timeout=timeout, profile=profile) from None
    if proc.returncode != 0:
        raise classify(plugin, code=proc.returncode, output=err + "\n" + out, profile=profile)
    try:
        cred = json.loads(out)
        status = cred["status"]
        if cred.get("kind") != "ExecCredential" or not isinstance(status, dict) or not (
                status.get("token") or status.get("clientCertificateData")):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise CredentialPluginError(f"the credential plugin `{plugin.name}` printed no ExecCredential "
                                    f"with a token or client certificate ({_clip(err.strip()) or 'stdout: ' + _clip(out.strip())})",
                                    f"run `{plugin.name}` in a shell and check what it prints", "failed") from None
    expiry = None
    if status.get("expirationTimestamp"):
        try:
            expiry = dt.datetime.fromisoformat(str(status["expirationTimestamp"]).replace("Z", "+00:00"))
            if expiry.tzinfo is None:
                expiry = expiry.replace(tzinfo=dt.timezone.utc)
        except ValueError:
            expiry = None
    return status, expiry


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.communicate()
