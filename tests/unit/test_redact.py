"""Redaction in free text (issue 15, item 7): realistic helm, kubectl and AWS error lines."""

from __future__ import annotations

import pytest

from ambient_tui.engine.redact import redact

# AWS's documented example credentials (not real), split so no scanner mistakes this file.
KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
TEMP_ID = "ASIA" + "Y34FZKBOKMUTVV7A"
SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
SESSION = "IQoJb3JpZ2lu" + "X2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDvR8dIq2dV7nsWwCu+3AbpqK"
JWT = ("eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ" + ".eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50In0"
       + ".ZGVtby1zaWduYXR1cmUtbm90LXJlYWwtYXQtYWxs")


@pytest.mark.parametrize("line, secrets", [
    # helm echoing a values file or --set that held credentials, in an error
    (f"Error: INSTALLATION FAILED: template: istiod/templates/deployment.yaml:88: executing "
     f"\"env\": {SECRET} is not a valid value", [SECRET]),
    (f"Error: UPGRADE FAILED: unable to build kubernetes objects: error validating \"\": "
     f"unknown field \"awsAccessKeyId\" value {KEY_ID} secret {SECRET}", [KEY_ID, SECRET]),
    (f"  credentials: {KEY_ID}:{SECRET}", [KEY_ID, SECRET]),
    (f"Error: failed to fetch https://user:{SECRET}@charts.example.com/istio/index.yaml : 401", [SECRET]),
    (f"An error occurred (ExpiredToken) when calling the DescribeAddon operation: token {SESSION}", [SESSION]),
    (f"env AWS_ACCESS_KEY_ID={TEMP_ID} AWS_SECRET_ACCESS_KEY={SECRET} AWS_SESSION_TOKEN={SESSION}",
     [TEMP_ID, SECRET, SESSION]),
    (f"GET https://eks.amazonaws.com/?X-Amz-Security-Token={SESSION}%2F&X-Amz-Credential={TEMP_ID}%2F",
     [SESSION, TEMP_ID]),
    (f"I1204 19:00:01 round_trippers.go:553] curl -k -v -XGET -H \"Authorization: Bearer {JWT}\" "
     "https://127.0.0.1:6443/api", [JWT]),
    (f"    token: {JWT}", [JWT]),
    ("    token: 0123456789abcdef0123456789abcdef", ["0123456789abcdef0123456789abcdef"]),
    ('{"kind":"ExecCredential","status":{"token":"k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8"}}',
     ["k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8"]),
    ("    password: hunter2hunter2", ["hunter2hunter2"]),
    ("Error: login failed: password=S3cr3t!Pass for registry istio.example.com", ["S3cr3t!Pass"]),
    ("    client-key-data: LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCk1IY0NBUUVF",
     ["LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCk1IY0NBUUVF"]),
    ("curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA==' https://x", ["dXNlcjpwYXNzd29yZA=="]),
    (f"{SECRET}", [SECRET]),  # standing alone
])
def test_secrets_in_free_text_are_redacted(line, secrets):
    out = redact(line)
    for s in secrets:
        assert s not in out, out
    assert "REDACTED" in out


@pytest.mark.parametrize("line", [
    # sha1 / git commits, digests, chart names, PEM lines, ordinary helm output: untouched
    "istio/proxyv2@sha256:4f1c2b7d0a9e8f6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
    "ETag: 9FCEB02D0AE598E95DC970B74767F19372D61AF8",
    "checksum/config: 3b2e1f0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f",
    "MIIDBTCCAe2gAwIBAgIIQ2xvdWQtYXV0aG9yaXR5LWluLWEtcGVtLWxpbmUtdGhhdC1pcy02NC1jaGFycw==",
    "NAME: istiod LAST DEPLOYED: Wed Dec  4 19:00:00 2026 NAMESPACE: istio-system STATUS: deployed REVISION: 1",
    "Error: INSTALLATION FAILED: context deadline exceeded",
    "Release \"istio-base\" does not exist. Installing it now.",
    "- name: istio-token",
    "serviceaccount/istio-reader-service-account created",
    "path /root/.cache/ambient-tui/parts/istio-1.31.0/charts/istiod/values.yaml",
    "a basic configuration for the ingress gateway",
    "configmap/istio-ca-root-cert unchanged",
])
def test_ordinary_output_and_hashes_are_kept(line):
    assert redact(line) == line


def test_redaction_is_idempotent():
    line = f"AWS_SECRET_ACCESS_KEY={SECRET} {KEY_ID} Bearer {JWT}"
    once = redact(line)
    assert redact(once) == once


def _plan_with_secret():
    from ambient_tui.engine import Phase, Plan, Step

    return Plan("t", [Phase("p", "p", [
        Step("s", "Install", argv=["helm", "install", "x", "--set", f"aws.secretKey={SECRET}",
                                   "--password", "hunter2hunter2"], undo=["helm", "uninstall", "x", "--token", "abc"],
             note=f"uses {KEY_ID}")])])


@pytest.mark.parametrize("fmt", ["markdown", "shell", "json"])
def test_runbook_never_holds_a_secret(fmt):
    from ambient_tui.engine.runbook import FORMATS

    text = FORMATS[fmt](_plan_with_secret())
    for s in (SECRET, KEY_ID, "hunter2hunter2"):
        assert s not in text, fmt
    assert "helm install x" in text or '"install"' in text


def test_headless_printer_redacts_and_marks_a_cancelled_step():
    import io

    from ambient_tui.commands.install import _printer
    from ambient_tui.engine.events import Event, EventKind

    out = io.StringIO()
    on = _printer(_plan_with_secret(), stream=out)
    on(Event(EventKind.STARTED, "s", state="running", line=f"helm install --set k={SECRET}"))
    on(Event(EventKind.OUTPUT, "s", line=f"Error: bad value {SECRET}"))
    on(Event(EventKind.FINISHED, "s", state="cancelled", message="interrupted by SIGHUP"))
    on(Event(EventKind.FINISHED, "s", state="succeeded"))
    on(Event(EventKind.FINISHED, "s", state="skipped", message="dry-run: not run"))
    lines = out.getvalue().splitlines()
    assert SECRET not in out.getvalue()
    assert lines[2] == "■ s cancelled: interrupted by SIGHUP"  # never a tick for a cancelled step
    assert lines[3] == "✔ s succeeded" and lines[4].startswith("- s skipped")
