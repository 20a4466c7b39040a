"""One-off: record real Helm release Secrets from the sandbox control plane."""
import json, os, subprocess, sys, tempfile
from pathlib import Path
from ambient_tui.sandbox import build
from ambient_tui.sandbox.control_plane import ControlPlane
from ambient_tui.sandbox.aws_local import CLIENT_ENV_UNSET

out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
tmp = Path(tempfile.mkdtemp())
cp = ControlPlane(state_dir=tmp / "sandbox")
cp.start(timeout=180)
try:
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV_UNSET}
    env.update(cp.env()); env["HOME"] = str(tmp)
    helm, kubectl = str(build.bin_path("helm")), str(build.bin_path("kubectl"))
    chart = tmp / "tiny"; (chart / "templates").mkdir(parents=True)
    def write_chart(version, app, bad=False):
        (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: tiny\nversion: {version}\nappVersion: \"{app}\"\n")
        (chart / "templates" / "cm.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tiny-config\ndata:\n  greeting: {{ .Values.greeting | quote }}\n")
        (chart / "values.yaml").write_text("greeting: hello\n")
        bogus = chart / "templates" / "bogus.yaml"
        if bad:
            bogus.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Valid_Name\n")
        elif bogus.exists():
            bogus.unlink()
    def run(*a):
        r = subprocess.run(list(a), env=env, capture_output=True, text=True)
        print(" ".join(a[1:]), "->", r.returncode, r.stdout[-300:], r.stderr[-300:])
    run(kubectl, "create", "namespace", "rec")
    write_chart("0.1.0", "1.0"); run(helm, "install", "tiny", str(chart), "-n", "rec")
    write_chart("0.2.0", "1.1"); run(helm, "upgrade", "tiny", str(chart), "-n", "rec")
    write_chart("0.3.0", "1.2", bad=True); run(helm, "upgrade", "tiny", str(chart), "-n", "rec")
    run(helm, "history", "tiny", "-n", "rec")
    # A release left pending-install: helm killed while it waits for a post-install hook Job.
    stuck = tmp / "stuck"; (stuck / "templates").mkdir(parents=True)
    (stuck / "Chart.yaml").write_text("apiVersion: v2\nname: stuck\nversion: 0.1.0\nappVersion: \"9.9\"\n")
    (stuck / "templates" / "svc.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: stuck-lb\nspec:\n  type: LoadBalancer\n"
        "  ports:\n  - port: 80\n  selector:\n    app: stuck\n")
    import time, signal
    p = subprocess.Popen([helm, "install", "stuck", str(stuck), "-n", "rec", "--wait", "--timeout", "120s"], env=env)
    time.sleep(8); p.send_signal(signal.SIGKILL); p.wait()
    run(helm, "list", "-a", "-n", "rec")
    r = subprocess.run([kubectl, "get", "secrets", "-n", "rec", "-l", "owner=helm", "-o", "json"],
                       env=env, capture_output=True, text=True, check=True)
    items = json.loads(r.stdout)["items"]
    for it in items:
        for k in ("managedFields", "uid", "resourceVersion", "creationTimestamp"):
            it["metadata"].pop(k, None)
        (out / (it["metadata"]["name"] + ".json")).write_text(json.dumps(it, indent=1) + "\n")
    print("recorded", [i["metadata"]["name"] for i in items])
finally:
    cp.stop(quiet=True)
