"""Build and cache the sandbox's real programs from their Go modules.

Each part lands in ``<cache>/parts/<name>-<version>/`` and gets a stamp file only after it
built completely, so a second run builds nothing and an interrupted run retries cleanly.

Entry point: ``python -m ambient_tui.sandbox.build [--only PART ...] [--list]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ambient_tui.dirs import cache_root

ETCD_VERSION = "v3.6.16"
KUBE_VERSION = "v1.34.4"
KWOK_VERSION = "v0.7.0"
HELM3_VERSION = "v3.22.0"
HELM4_VERSION = "v4.3.1"
# The module proxy here serves only this istio.io/istio pseudo-version (Istio 1.31 source;
# its go.mod pins istio.io/api v1.31.0-rc.0). Other pseudo-versions answer 403.
ISTIO_VERSION = "1.31.0"
ISTIO_MODULE_VERSION = "v0.0.0-20260827124520-eed52ebb66ad"
GATEWAY_API_VERSION = "v1.5.1"  # the Gateway API release Istio 1.31 documents

STAMP = ".complete.json"


class BuildError(RuntimeError):
    """A build step failed; the message says why and what to do."""


def parts_dir() -> Path:
    return cache_root() / "parts"


@dataclass
class Part:
    name: str
    version: str
    outputs: list[str]  # paths relative to the part dir that must exist
    builder: Callable[["Part", Path, "Builder"], None] = field(repr=False)

    @property
    def dirname(self) -> str:
        return f"{self.name}-{self.version}"

    def path(self) -> Path:
        return parts_dir() / self.dirname

    def is_built(self) -> bool:
        d = self.path()
        return (d / STAMP).is_file() and all((d / o).exists() for o in self.outputs)


# --- Go helpers -------------------------------------------------------------------------

_NET_ERR = re.compile(
    r"dial tcp|no such host|connection refused|i/o timeout|network is unreachable|"
    r"proxyconnect|TLS handshake|403 Forbidden|410 Gone|server misbehaving|"
    r"connection reset|temporary failure in name resolution",
    re.I,
)


class Builder:
    def __init__(self, out=None, jobs: int | None = None) -> None:
        self.out = out or sys.stdout
        self.go = shutil.which("go")
        self.jobs = jobs

    def say(self, msg: str) -> None:
        print(f"[sandbox-build] {msg}", file=self.out, flush=True)

    def require_go(self) -> str:
        if not self.go:
            raise BuildError(
                "no Go toolchain found on PATH: install Go >= 1.26 (istio and helm need it; https://go.dev/dl/) "
                "and run `python -m ambient_tui.sandbox.build` again"
            )
        return self.go

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        # Pure-Go static binaries; never let go fetch another toolchain.
        env.update(CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-mod=mod -buildvcs=false")
        env.update(extra)
        return env

    def run(self, args: list[str], cwd: Path | None = None, env: dict | None = None,
            what: str = "") -> str:
        """Run a go command, streaming a trimmed view; raise BuildError with a clear reason."""
        self.say(f"$ {' '.join(args[:6])}{' ...' if len(args) > 6 else ''}")
        proc = subprocess.Popen(args, cwd=cwd, env=env or self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("go: downloading"):
                continue  # hundreds of these; the count is printed instead
            if len(lines) < 400:
                print("    " + line.rstrip("\n"), file=self.out, flush=True)
        rc = proc.wait()
        text = "\n".join(lines)
        if rc != 0:
            tail = "\n".join(lines[-15:])
            if _NET_ERR.search(text):
                proxy = os.environ.get("GOPROXY") or "https://proxy.golang.org,direct"
                raise BuildError(
                    f"{what or args[1]}: cannot reach the Go module proxy (GOPROXY={proxy}). "
                    "The first build downloads modules; check the network or GOPROXY and run "
                    f"the build again (finished parts are kept).\n{tail}"
                )
            raise BuildError(f"{what or args[1]} failed (exit {rc}):\n{tail}")
        n = sum(1 for ln in lines if ln.startswith("go: downloading"))
        if n:
            self.say(f"downloaded {n} modules")
        return text

    def module_dir(self, mod: str, version: str) -> Path:
        out = self.run([self.require_go(), "mod", "download", "-json", f"{mod}@{version}"],
                       what=f"download {mod}@{version}")
        info = json.loads(out[out.index("{"):])
        if info.get("Error"):
            raise BuildError(f"download {mod}@{version}: {info['Error']}")
        return Path(info["Dir"])

    def ldflags(self, *xs: str) -> str:
        return " ".join(["-s", "-w", *(f"-X {x}" for x in xs)])

    def go_build(self, wrapper: Path, pkgs: list[str], outdir: Path, ldflags: str,
                 what: str) -> None:
        outdir.mkdir(parents=True, exist_ok=True)
        args = [self.require_go(), "build", "-trimpath", "-ldflags", ldflags]
        if self.jobs:
            args += ["-p", str(self.jobs)]
        args += ["-o", str(outdir) + os.sep, *pkgs]
        self.run(args, cwd=wrapper, what=what)


def _wrapper(tmp: Path, name: str, gomod: str) -> Path:
    d = tmp / name
    d.mkdir(parents=True)
    (d / "go.mod").write_text(gomod)
    return d


# --- the parts -------------------------------------------------------------------------

def _build_etcd(part: Part, tmp: Path, b: Builder) -> None:
    # server/v3's own go.mod replaces its siblings with ../ paths, so it cannot be
    # `go install`ed; a wrapper module resolves them to their published versions.
    w = _wrapper(tmp, "etcd", f"module ambient-tui.local/etcd\n\ngo 1.24\n\n"
                 f"require go.etcd.io/etcd/server/v3 {part.version}\n")
    b.run([b.require_go(), "mod", "download", "-json", f"go.etcd.io/etcd/server/v3@{part.version}"],
          cwd=w, what="download etcd")
    b.go_build(w, ["go.etcd.io/etcd/server/v3"], tmp / "out", b.ldflags(), "build etcd")
    (part.path() / "bin").mkdir(parents=True, exist_ok=True)
    # go names the binary after the path element before /v3 ("server"); take what it wrote.
    (built,) = list((tmp / "out").iterdir())
    shutil.move(str(built), part.path() / "bin" / "etcd")


def _build_kubernetes(part: Part, tmp: Path, b: Builder) -> None:
    src = b.module_dir("k8s.io/kubernetes", part.version)
    gomod = (src / "go.mod").read_text()
    # Every staging module (`k8s.io/x => ./staging/src/k8s.io/x`) is published as v0.<minor>.<patch>.
    staging = re.findall(r"^\s*(\S+)\s*=>\s*\./staging/\S+\s*$", gomod, re.M)
    if not staging:
        raise BuildError("could not read the staging module list from k8s.io/kubernetes go.mod")
    major, minor, patch = part.version.lstrip("v").split(".")
    pub = f"v0.{minor}.{patch}"
    godebug = "\n".join(re.findall(r"^godebug .*$", gomod, re.M))
    gover = re.search(r"^go (\S+)", gomod, re.M).group(1)
    text = (f"module ambient-tui.local/kubernetes\n\ngo {gover}\n\n{godebug}\n\n"
            f"require k8s.io/kubernetes {part.version}\n\nreplace (\n"
            + "".join(f"\t{m} => {m} {pub}\n" for m in staging) + ")\n")
    w = _wrapper(tmp, "kubernetes", text)
    b.say(f"wrapper go.mod replaces {len(staging)} staging modules with {pub}")
    xs = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        xs += [f"{pkg}.gitVersion={part.version}", f"{pkg}.gitMajor={major}",
               f"{pkg}.gitMinor={minor}", f"{pkg}.gitTreeState=clean",
               f"{pkg}.buildDate=1970-01-01T00:00:00Z"]
    cmds = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"]
    b.go_build(w, [f"k8s.io/kubernetes/cmd/{c}" for c in cmds], part.path() / "bin",
               b.ldflags(*xs), "build kubernetes")


def _go_install(part: Part, b: Builder, pkg: str, version: str, xs: list[str], what: str) -> None:
    # Modules without replace directives install directly; GOBIN puts the binary in the part.
    bindir = part.path() / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    args = [b.require_go(), "install", "-trimpath", "-ldflags", b.ldflags(*xs)]
    if b.jobs:
        args += ["-p", str(b.jobs)]
    # go install pkg@version ignores -mod; it must not be set in GOFLAGS.
    b.run(args + [f"{pkg}@{version}"], env=b.env(GOBIN=str(bindir), GOFLAGS="-buildvcs=false"),
          what=what)


def _build_kwok(part: Part, tmp: Path, b: Builder) -> None:
    _go_install(part, b, "sigs.k8s.io/kwok/cmd/kwok", part.version,
                [f"sigs.k8s.io/kwok/pkg/consts.Version={part.version.lstrip('v')}"], "build kwok")


def _helm(major: str) -> Callable[[Part, Path, Builder], None]:
    def build(part: Part, tmp: Path, b: Builder) -> None:
        mod = f"helm.sh/helm/{major}"
        _go_install(part, b, f"{mod}/cmd/helm", part.version,
                    [f"{mod}/internal/version.version={part.version}",
                     f"{mod}/internal/version.gitTreeState=clean"], f"build helm {part.version}")
    return build


def _build_istio(part: Part, tmp: Path, b: Builder) -> None:
    mv = ISTIO_MODULE_VERSION
    x = "istio.io/istio/pkg/version"
    _go_install(part, b, "istio.io/istio/istioctl/cmd/istioctl", mv,
                [f"{x}.buildVersion={part.version}", f"{x}.buildTag={part.version}",
                 f"{x}.buildGitRevision={mv.rsplit('-', 1)[-1]}", f"{x}.buildStatus=Clean",
                 f"{x}.buildHub=docker.io/istio"], "build istioctl")
    src = b.module_dir("istio.io/istio", mv) / "manifests" / "charts"
    dst = part.path() / "charts"
    charts = {"base": "base", "istiod": "istio-control/istio-discovery", "cni": "istio-cni",
              "ztunnel": "ztunnel", "gateway": "gateway"}
    for name, rel in charts.items():
        shutil.copytree(src / rel, dst / name, dirs_exist_ok=True)
    # The module cache is read-only; make the copies writable, then stamp the release version
    # into Chart.yaml the way Istio's release-builder does (git charts say 1.0.0).
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    for name in charts:
        cy = dst / name / "Chart.yaml"
        t = re.sub(r"^(version|appVersion): .*$", rf"\1: {part.version}", cy.read_text(), flags=re.M)
        cy.write_text(t)


def _build_gateway_api(part: Part, tmp: Path, b: Builder) -> None:
    src = b.module_dir("sigs.k8s.io/gateway-api", part.version) / "config" / "crd"
    for channel in ("standard", "experimental"):
        files = sorted((src / channel).glob("*.yaml"))
        if not files:
            raise BuildError(f"gateway-api {part.version}: no CRDs in config/crd/{channel}")
        out = part.path() / channel
        out.mkdir(parents=True, exist_ok=True)
        bundle = []
        for f in files:
            text = f.read_text()
            (out / f.name).write_text(text)
            if "kind: CustomResourceDefinition" in text:
                bundle.append(text.strip())
        # One file per channel, like the release's *-install.yaml (CRDs only); apply server-side.
        (part.path() / f"{channel}-install.yaml").write_text(
            "---\n" + "\n---\n".join(bundle) + "\n")


KUBE_BINS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"]

PARTS: list[Part] = [
    Part("etcd", ETCD_VERSION, ["bin/etcd"], _build_etcd),
    Part("kwok", KWOK_VERSION, ["bin/kwok"], _build_kwok),
    Part("gateway-api", GATEWAY_API_VERSION, ["standard-install.yaml", "experimental-install.yaml"],
         _build_gateway_api),
    Part("kubernetes", KUBE_VERSION, [f"bin/{n}" for n in KUBE_BINS], _build_kubernetes),
    Part("helm3", HELM3_VERSION, ["bin/helm"], _helm("v3")),
    Part("istio", ISTIO_VERSION, ["bin/istioctl", "charts/base/Chart.yaml",
                                  "charts/istiod/Chart.yaml", "charts/cni/Chart.yaml",
                                  "charts/ztunnel/Chart.yaml"], _build_istio),
    Part("helm4", HELM4_VERSION, ["bin/helm"], _helm("v4")),
]


def part(name: str) -> Part:
    for p in PARTS:
        if p.name == name:
            return p
    raise KeyError(name)


def missing() -> list[Part]:
    return [p for p in PARTS if not p.is_built()]


# Paths other modules use -------------------------------------------------------------------

def bin_path(name: str) -> Path:
    """Path of a built program: etcd, kube-*, kubectl, kwok, helm (v3), helm4, istioctl."""
    owner = {"etcd": "etcd", "kwok": "kwok", "helm": "helm3", "helm4": "helm4",
             "istioctl": "istio"}.get(name, "kubernetes")
    exe = "helm" if name == "helm4" else name
    return part(owner).path() / "bin" / exe


def charts_dir() -> Path:
    return part("istio").path() / "charts"


def gateway_api_dir() -> Path:
    return part("gateway-api").path()


def build(names: list[str] | None = None, out=None, jobs: int | None = None) -> list[str]:
    """Build every missing part (or only `names`); return the names actually built."""
    b = Builder(out=out, jobs=jobs)
    todo = [p for p in PARTS if names is None or p.name in names]
    unknown = set(names or []) - {p.name for p in PARTS}
    if unknown:
        raise BuildError(f"unknown part(s): {', '.join(sorted(unknown))}")
    built: list[str] = []
    pending = [p for p in todo if not p.is_built()]
    for p in todo:
        if p.is_built():
            b.say(f"{p.dirname}: cached at {p.path()}")
    if pending:
        b.require_go()
    for i, p in enumerate(pending, 1):
        b.say(f"[{i}/{len(pending)}] building {p.dirname} -> {p.path()}")
        t0 = time.monotonic()
        # A half-built part from an interrupted run is discarded first.
        shutil.rmtree(p.path(), ignore_errors=True)
        p.path().mkdir(parents=True)
        with tempfile.TemporaryDirectory(prefix=f"ambient-build-{p.name}-") as tmp:
            try:
                p.builder(p, Path(tmp), b)
            except BaseException:
                shutil.rmtree(p.path(), ignore_errors=True)
                raise
        absent = [o for o in p.outputs if not (p.path() / o).exists()]
        if absent:
            raise BuildError(f"{p.dirname}: build finished but {', '.join(absent)} missing")
        secs = round(time.monotonic() - t0, 1)
        (p.path() / STAMP).write_text(json.dumps(
            {"name": p.name, "version": p.version, "seconds": secs,
             "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1))
        b.say(f"{p.dirname}: done in {secs}s")
        built.append(p.name)
    if not built:
        b.say("nothing to build: all parts cached")
    return built


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ambient_tui.sandbox.build",
                                 description="Build and cache the sandbox parts from Go modules.")
    ap.add_argument("--only", action="append", metavar="PART",
                    help="build only this part (repeatable): " + ", ".join(p.name for p in PARTS))
    ap.add_argument("--list", action="store_true", help="list parts and whether they are cached")
    ap.add_argument("-p", "--jobs", type=int, help="go build -p (parallel packages)")
    a = ap.parse_args(argv)
    if a.list:
        for p in PARTS:
            print(f"{p.dirname:24} {'cached' if p.is_built() else 'missing':8} {p.path()}")
        return 0
    try:
        build(a.only, jobs=a.jobs)
    except BuildError as e:
        print(f"[sandbox-build] error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("[sandbox-build] interrupted; finished parts are kept, run again to resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
