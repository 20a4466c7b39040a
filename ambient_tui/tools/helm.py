"""The one place helm argv are put together: the read commands (list, history, get values,
get manifest) that preflight, repair, the install session and uninstall discovery run, and
the target flags every plan step carries.

stdin is closed and output captured: helm (or a credential plugin it runs) never reads the
keyboard or draws on a TUI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess


class HelmError(RuntimeError):
    """helm is missing, timed out or failed; the message says which command and why."""


def target_flags(kubeconfig: str | None = None, context: str | None = None) -> list[str]:
    out = []
    if kubeconfig:
        out += ["--kubeconfig", kubeconfig]
    if context:
        out += ["--kube-context", context]
    return out


def argv(args: list[str], kubeconfig: str | None = None, context: str | None = None,
         helm: str = "helm") -> list[str]:
    return [helm, *args, *target_flags(kubeconfig, context)]


def _resolve(helm: str, env: dict | None) -> tuple[str, dict]:
    full_env = {**os.environ, **(env or {})}
    exe = helm if os.sep in helm else shutil.which(helm, path=full_env.get("PATH"))
    if not exe:
        raise HelmError(f"{helm} not found on PATH; install helm >= 3.6: https://helm.sh/docs/intro/install/")
    return exe, full_env


def start(args: list[str], env: dict | None = None, kubeconfig: str | None = None,
          context: str | None = None, helm: str = "helm") -> subprocess.Popen:
    """Start `helm ARGS --kubeconfig .. --kube-context ..`; `finish` collects it."""
    exe, full_env = _resolve(helm, env)
    # No stdin and no terminal: a credential plugin helm runs must not read the keyboard.
    return subprocess.Popen(argv(args, kubeconfig, context, exe), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
                            start_new_session=True)


def finish(proc: subprocess.Popen, what: str, timeout: float) -> str:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise HelmError(f"helm {what} did not answer within {timeout:g}s") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode != 0:
        raise HelmError(f"helm {what} failed: {(err.strip() or out.strip())[:300]}")
    return out


def run(args: list[str], env: dict | None = None, kubeconfig: str | None = None,
        context: str | None = None, timeout: float = 60, helm: str = "helm") -> str:
    return finish(start(args, env, kubeconfig, context, helm), " ".join(args[:2]), timeout)


def release_values(name: str, namespace: str, env: dict | None = None, kubeconfig: str | None = None,
                   context: str | None = None, timeout: float = 30) -> dict:
    """The values the user gave the release (`helm get values -o json`), {} when none."""
    out = run(["get", "values", name, "--namespace", namespace, "-o", "json"], env, kubeconfig,
              context, timeout)
    data = json.loads(out or "null")
    return data if isinstance(data, dict) else {}


def history(name: str, namespace: str, env: dict | None = None, kubeconfig: str | None = None,
            context: str | None = None, timeout: float = 30) -> list[dict]:
    out = run(["history", name, "--namespace", namespace, "-o", "json"], env, kubeconfig, context, timeout)
    return json.loads(out or "[]")
