"""Processes a step left behind, read from /proc: is the pid the journal recorded still that
command, and which descendants (in whatever session they moved to) must a cancel reach.

A pid alone is not an identity: after the app is gone the kernel may give it to anything. A
recorded pid counts as alive only while /proc/PID exists, is not a zombie, started at the
recorded time (when recorded) and runs the recorded program with the same first arguments.
"""

from __future__ import annotations

import os


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1], pgrp [2],
    session [3], starttime [19]); None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].decode().split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """Clock ticks after boot at which the process started; None when it is gone."""
    st = _stat(pid)
    try:
        return int(st[19]) if st else None
    except (IndexError, ValueError):
        return None


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def same_command(actual: list[str], argv: list[str]) -> bool:
    """The running command line is the recorded one: same program name, and the recorded
    arguments (redacted ones aside) in the same order at the start."""
    if not actual or not argv:
        return False
    if os.path.basename(actual[0]) != os.path.basename(argv[0]) or len(actual) < min(len(argv), 4):
        return False
    return all(a == b or "REDACTED" in a for a, b in zip(argv[1:4], actual[1:4]))


def alive(pid: int, argv: list[str] | None = None, started: int | None = None) -> bool:
    """The recorded process still runs (not a zombie, not a reused pid)."""
    if not isinstance(pid, int) or pid <= 1:
        return False
    st = _stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    if started is not None and start_time(pid) != started:
        return False
    return same_command(cmdline(pid), argv) if argv else True


def descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, process group) of every living descendant of pid, found by parent links; a child
    that called setsid() is in its own group, which a kill of pid's group would miss."""
    parents: dict[int, int] = {}
    groups: dict[int, int] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for d in names:
        if d.isdigit():
            st = _stat(int(d))
            if st and st[0] not in ("Z", "X"):
                try:
                    parents[int(d)], groups[int(d)] = int(st[1]), int(st[2])
                except ValueError:
                    pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for child, parent in parents.items():
            if parent == p:
                out.append((child, groups[child]))
                todo.append(child)
    return out
