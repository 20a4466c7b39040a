"""The one clean-up the cluster tier uses between tests: no Istio helm release, istioctl install,
Istio or Gateway API CRD, or Istio namespace.

The tier shares one control plane and runs files in name order, so every test starts from and
leaves this state. Deletions start without waiting and are then polled, because a CRD deleted
just after it was (re)established can stay Terminating for minutes in kube-apiserver ("could
not list instances: storage is (re)initializing"): an annotation bump re-queues its clean-up
(see ambient_tui/cluster/crd_cleanup.py), and after a minute its finalizer is dropped.
Afterwards, lists of other custom resources may answer 429 for a moment while the API server
rebuilds its CRD handlers; the clean-up waits that out too.
"""

from __future__ import annotations

import json
import subprocess
import time

ISTIO_NAMESPACES = ("istio-system", "istio-ingress")
CRD_SUFFIXES = (".istio.io", ".gateway.networking.k8s.io", ".gateway.networking.x-k8s.io")


def sh(env, *argv, check=True, timeout=300) -> subprocess.CompletedProcess:
    p = subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> {p.returncode}: {p.stderr[-800:]}")
    return p


def clean_cluster(env, extra_namespaces=(), timeout: float = 300) -> None:
    """env: the admin environment (KUBECONFIG, PATH with the built helm/kubectl/istioctl)."""
    for r in json.loads(sh(env, "helm", "list", "-A", "-a", "-o", "json").stdout or "[]"):
        if r["namespace"] in ISTIO_NAMESPACES:
            sh(env, "helm", "uninstall", r["name"], "-n", r["namespace"], "--wait", "--timeout", "3m",
               check=False, timeout=240)
    if sh(env, "kubectl", "get", "deploy,ds", "-A", "-l", "operator.istio.io/component", "-o", "name",
          check=False).stdout.split():
        sh(env, "istioctl", "uninstall", "--purge", "-y", check=False)
    # Gateway API admission policies ship beside the CRDs (the uninstall removes them too).
    # Left behind, it refuses experimental-channel CRDs over standard ones.
    for kind in ("validatingadmissionpolicybinding", "validatingadmissionpolicy"):
        sh(env, "kubectl", "delete", kind, "safe-upgrades.gateway.networking.k8s.io", "--ignore-not-found",
           "--wait=false", check=False)
    crds = [c for c in sh(env, "kubectl", "get", "crd", "-o", "name").stdout.split() if c.endswith(CRD_SUFFIXES)]
    if crds:
        sh(env, "kubectl", "delete", "--wait=false", "--ignore-not-found", *crds)
    # The tool's in-cluster install record (plans/install_record.py).
    sh(env, "kubectl", "delete", "configmap", "ambient-tui-install", "-n", "kube-system", "--ignore-not-found",
       check=False)
    namespaces = (*ISTIO_NAMESPACES, *extra_namespaces)
    sh(env, "kubectl", "delete", "namespace", *namespaces, "--ignore-not-found", "--wait=false")
    t0 = time.monotonic()
    names: list[str] = []
    bumped = 0.0
    while time.monotonic() < t0 + timeout:
        names = [n for n in sh(env, "kubectl", "get", "crd,namespace", "-o", "name").stdout.split()
                 if n.endswith(CRD_SUFFIXES) or n.split("/")[-1] in namespaces]
        if not names:
            break
        crds_left = [n for n in names if n.startswith("customresourcedefinition")]
        waited = time.monotonic() - t0
        if crds_left and waited > bumped + 5:  # as the product's uninstall does
            bumped = waited
            sh(env, "kubectl", "annotate", "--overwrite", *crds_left,
               f"ambient-tui.io/cleanup-retry={int(waited)}", check=False)
        if waited > 60:  # last resort in tests only: the tier must go on
            for n in crds_left:
                sh(env, "kubectl", "patch", n, "--type=merge", "-p", '{"metadata":{"finalizers":[]}}',
                   check=False)
        time.sleep(1)
    else:
        raise AssertionError(f"the cluster did not get clean: {names}")
    while sh(env, "kubectl", "get", "securitygrouppolicies.vpcresources.k8s.aws", "-A",
             check=False).returncode != 0:
        if time.monotonic() > t0 + timeout:
            raise AssertionError("custom resources still not listable after the clean-up")
        time.sleep(1)
