"""A lock in the cluster: every run that changes it holds one coordination.k8s.io/v1 Lease.

Two operators (or a restarted TUI and its orphaned predecessor) must never run helm against
the same cluster at once. The Lease `kube-system/ambient-tui-lock` names its holder (user,
host, pid, command, start) in `holderIdentity` and annotations; a background thread renews it
every third of its duration while the run lives, and the run clears it at the end. Writes
carry the `resourceVersion` they read, so of two runs racing for a free or expired lease the
API server lets exactly one win (the other gets 409 Conflict and refuses).

A lease that stopped renewing (its holder was killed with SIGKILL, the machine went away) is
taken over only once it has expired: renewTime + leaseDurationSeconds, read against this
machine's clock (as client-go's leader election does, so keep clocks in sync). The takeover
and a forced unlock are journaled as `lock` records. Blocking calls: use a thread in async code.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from ambient_tui.cluster.client import ClusterAccessError

NAMESPACE = "kube-system"
NAME = "ambient-tui-lock"
DURATION = 30  # seconds; renewed every DURATION/3
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"
ANNOTATION = "ambient-tui.io/"
FIELDS = ("user", "host", "pid", "command", "started")


class LockHeld(RuntimeError):
    """Another run holds the lock; the message is the one line to show."""

    def __init__(self, holder: "Holder", now: float | None = None) -> None:
        self.holder = holder
        super().__init__(f"the cluster is locked by another ambient-tui run: {holder.describe(now)}; "
                         "wait for it to finish (nothing was changed), or if that run is gone, "
                         "`ambient-tui unlock`")


class LockError(RuntimeError):
    """The lease could not be read or written; nothing was changed."""


@dataclass(frozen=True)
class Holder:
    identity: str
    user: str = "?"
    host: str = "?"
    pid: int = 0
    command: str = "?"
    started: str = ""      # ISO 8601, UTC
    renewed: float = 0.0   # epoch seconds of renewTime (acquireTime when never renewed)
    duration: int = DURATION

    @property
    def expires(self) -> float:
        return self.renewed + self.duration

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        state = (f"renewed {max(0, int(now - self.renewed))} s ago" if not self.expired(now)
                 else f"expired {int(now - self.expires)} s ago")
        return (f"{self.user}@{self.host} pid {self.pid} ({self.command}) since "
                f"{self.started or '?'}, {state}")

    def gone(self) -> bool:
        """The holder ran on this machine and its process no longer exists (killed with
        SIGKILL): its lease will not be renewed, so waiting for it to expire is worth it."""
        from ambient_tui.engine import procs

        return self.host == socket.gethostname() and self.pid > 1 and not procs.alive(self.pid)

    def short(self) -> str:
        """For the TUI header."""
        return f"{self.user}@{self.host} ({self.command}) since {self.started[11:19] or '?'}Z"

    def as_dict(self) -> dict:
        return {"identity": self.identity, "user": self.user, "host": self.host, "pid": self.pid,
                "command": self.command, "started": self.started, "renewed": round(self.renewed, 3),
                "duration": self.duration}


def micro_time(t: float) -> str:
    """The API's MicroTime: RFC 3339 with microseconds, UTC."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value) -> float:
    if not value:
        return 0.0
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def holder_of(lease) -> Holder | None:
    """The lease's holder, or None when it is free (no holderIdentity)."""
    spec = (lease or {}).get("spec") or {}
    identity = spec.get("holderIdentity")
    if not identity:
        return None
    ann = ((lease.get("metadata") or {}).get("annotations")) or {}
    try:
        pid = int(ann.get(ANNOTATION + "pid") or 0)
    except ValueError:
        pid = 0
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    return Holder(identity, ann.get(ANNOTATION + "user", "?"), ann.get(ANNOTATION + "host", "?"), pid,
                  ann.get(ANNOTATION + "command", "?"), ann.get(ANNOTATION + "started", ""),
                  renewed, int(spec.get("leaseDurationSeconds") or DURATION))


def _conflict(e: ClusterAccessError) -> bool:
    return "HTTP 409" in e.message


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry (containers)
        return str(os.getuid())


def read_lease(kube):
    """The Lease object, or None when it does not exist."""
    try:
        return kube.get_json(f"{LEASES}/{NAME}", f"reading lease {NAMESPACE}/{NAME}")
    except ClusterAccessError as e:
        if e.kind == "not-found":
            return None
        raise LockError(f"cannot read the lock (lease {NAMESPACE}/{NAME}): {e.message}") from None


def current_holder(kube) -> Holder | None:
    return holder_of(read_lease(kube))


class ClusterLock:
    """Take with acquire() (raises LockHeld or LockError), give back with release().

    `with ClusterLock(kube, "install", journal):` does both and renews in between."""

    def __init__(self, kube, command: str, journal=None, duration: int = DURATION) -> None:
        self.kube = kube
        self.command = command
        self.journal = journal
        self.duration = duration
        self.user, self.host, self.pid = _user(), socket.gethostname(), os.getpid()
        self.identity = f"{self.user}@{self.host}/{self.pid}/{uuid.uuid4().hex[:8]}"
        self.started = ""
        self.held = False
        self.lost: str | None = None  # why the lock was lost while held (taken over, deleted)
        self.took_over: Holder | None = None
        self._rv = ""
        self._transitions = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    # -- the object ----------------------------------------------------------------------------
    def _body(self, acquire_time: str, renew_time: str, resource_version: str = "") -> dict:
        meta = {"name": NAME, "namespace": NAMESPACE,
                "labels": {"app.kubernetes.io/managed-by": "ambient-tui"},
                "annotations": {ANNOTATION + "user": self.user, ANNOTATION + "host": self.host,
                                ANNOTATION + "pid": str(self.pid), ANNOTATION + "command": self.command,
                                ANNOTATION + "started": self.started}}
        if resource_version:
            meta["resourceVersion"] = resource_version
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.duration,
                         "acquireTime": acquire_time, "renewTime": renew_time,
                         "leaseTransitions": self._transitions}}

    def _write(self, method: str, body: dict, what: str):
        path = LEASES if method == "POST" else f"{LEASES}/{NAME}"
        return self.kube.request_json(method, path, what, body=body)

    # -- take ----------------------------------------------------------------------------------
    def acquire(self, say=None) -> "ClusterLock":
        """Take the lock. A holder on this machine whose process is gone is waited out until
        its lease expires (saying so through `say`), then taken over; any other live holder
        raises LockHeld at once."""
        while True:
            try:
                return self._acquire()
            except LockHeld as e:
                h = e.holder
                wait = h.expires - time.time()
                if not h.gone() or wait > 2 * self.duration:
                    raise
                if say is not None:
                    say(f"the lock holder (pid {h.pid} on this machine) is gone; waiting {max(0, int(wait)) + 1} s "
                        "for its lease to expire")
                time.sleep(max(0.0, wait) + 0.5)

    def _acquire(self) -> "ClusterLock":
        now = time.time()
        self.started = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        stamp = micro_time(now)
        lease = read_lease(self.kube)
        try:
            if lease is None:
                got = self._write("POST", self._body(stamp, stamp), "creating the lock lease")
            else:
                holder = holder_of(lease)
                if holder is not None and holder.identity != self.identity and not holder.expired(now):
                    raise LockHeld(holder, now)
                self._transitions = int((lease.get("spec") or {}).get("leaseTransitions") or 0) + 1
                got = self._write("PUT", self._body(stamp, stamp, lease["metadata"]["resourceVersion"]),
                                  "taking the lock lease")
                if holder is not None:  # it had stopped renewing and expired: journal the takeover
                    self.took_over = holder
                    self._journal("takeover", f"took over the expired lock of {holder.describe(now)}",
                                  previous=holder.as_dict())
        except ClusterAccessError as e:
            if _conflict(e) or (lease is None and "HTTP 409" in e.message):
                # Someone else wrote the lease between our read and write: they won.
                other = current_holder(self.kube)
                if other is not None:
                    raise LockHeld(other) from None
            if e.kind == "forbidden":
                raise LockError(f"cannot take the lock: this user may not write leases in {NAMESPACE} "
                                f"({e.message}); nothing was changed") from None
            raise LockError(f"cannot take the lock (lease {NAMESPACE}/{NAME}): {e.message}; "
                            "nothing was changed") from None
        self._rv = got["metadata"]["resourceVersion"]
        self.held = True
        self.lost = None
        self._start_renewing()
        return self

    # -- keep ----------------------------------------------------------------------------------
    def renew(self) -> bool:
        """One renewal; False when the lock is no longer ours (self.lost says why)."""
        with self._mutex:
            if not self.held:
                return False
            now = time.time()
            lease = read_lease(self.kube)
            holder = holder_of(lease)
            if lease is None or holder is None or holder.identity != self.identity:
                self.held = False
                self.lost = ("the lock lease was deleted" if lease is None else
                             "the lock was released by someone else (ambient-tui unlock?)" if holder is None
                             else f"the lock was taken by {holder.describe(now)}")
                return False
            spec = lease.get("spec") or {}
            body = self._body(spec.get("acquireTime") or micro_time(now), micro_time(now),
                              lease["metadata"]["resourceVersion"])
            try:
                got = self._write("PUT", body, "renewing the lock lease")
            except ClusterAccessError as e:
                if _conflict(e):  # changed since our read; the next renewal reads again
                    return True
                raise
            self._rv = got["metadata"]["resourceVersion"]
            return True

    def _renew_loop(self) -> None:
        while not self._stop.wait(max(0.2, self.duration / 3)):
            try:
                if not self.renew():
                    return
            except Exception:  # noqa: BLE001 - an API outage: try again next interval
                continue

    def _start_renewing(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name="lock-renew", daemon=True)
        self._thread.start()

    # -- give back -----------------------------------------------------------------------------
    def release(self) -> None:
        """Clear the lease if it is still ours. Never raises: the lease then simply expires."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with self._mutex:
            if not self.held:
                return
            self.held = False
            try:
                lease = read_lease(self.kube)
                holder = holder_of(lease)
                if holder is None or holder.identity != self.identity:
                    return
                free = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": NAME, "namespace": NAMESPACE,
                                     "resourceVersion": lease["metadata"]["resourceVersion"],
                                     "labels": {"app.kubernetes.io/managed-by": "ambient-tui"}},
                        "spec": {"leaseDurationSeconds": self.duration,
                                 "leaseTransitions": int((lease.get("spec") or {}).get("leaseTransitions") or 0)}}
                self._write("PUT", free, "releasing the lock lease")
            except Exception:  # noqa: BLE001 - unreachable now: the lease expires by itself
                pass

    def __enter__(self) -> "ClusterLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _journal(self, action: str, message: str, **extra) -> None:
        if self.journal is not None:
            self.journal.write({"type": "lock", "action": action, "lease": f"{NAMESPACE}/{NAME}",
                                "holder": self.identity, "command": self.command, "message": message,
                                **extra})


def force_unlock(kube, journal=None, command: str = "unlock") -> Holder | None:
    """Clear the lease whoever holds it; returns who held it (None: it was free). Journaled."""
    lease = read_lease(kube)
    holder = holder_of(lease)
    if lease is not None and holder is not None:
        free = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": NAME, "namespace": NAMESPACE,
                             "resourceVersion": lease["metadata"]["resourceVersion"]},
                "spec": {"leaseDurationSeconds": int((lease.get("spec") or {}).get("leaseDurationSeconds")
                                                     or DURATION)}}
        try:
            kube.request_json("PUT", f"{LEASES}/{NAME}", "clearing the lock lease", body=free)
        except ClusterAccessError as e:
            raise LockError(f"cannot clear the lock: {e.message}") from None
    if journal is not None:
        journal.write({"type": "lock", "action": "force-unlock", "lease": f"{NAMESPACE}/{NAME}",
                       "command": command, "user": _user(), "host": socket.gethostname(),
                       "pid": os.getpid(),
                       "message": (f"forced unlock of {holder.describe()}" if holder
                                   else "forced unlock: the lock was free"),
                       "previous": holder.as_dict() if holder else None})
    return holder


@contextlib.contextmanager
def cluster_lock(kube, command: str, journal=None, say=None):
    """`with cluster_lock(kube, "netpol apply", journal):` for a change made outside a Runner
    (enrolment, NetworkPolicy apply). Raises LockHeld/LockError before the body runs."""
    lock = ClusterLock(kube, command, journal)
    lock.acquire(say)
    try:
        yield lock
    finally:
        lock.release()
