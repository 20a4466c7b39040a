"""Run a program in a real pseudo-terminal and record everything it writes, with timestamps.

The benchmark is the terminal: it reads the pty master continuously (so the app never blocks
on a full pty buffer), keeps every chunk with its arrival time (monotonic), and writes key
presses to the master as a user's terminal would. Window size is set with TIOCSWINSZ before
the program starts. CPU and peak RSS come from /proc/PID of the program itself.
"""

from __future__ import annotations

import bisect
import fcntl
import os
import signal
import struct
import subprocess
import termios
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


class PtyApp:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, cols: int, rows: int) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

        def as_terminal_session() -> None:  # child: own session, the pty is its controlling tty
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                     start_new_session=True, preexec_fn=as_terminal_session,
                                     close_fds=True)
        os.close(slave)
        self.master = master
        self.pid = self.proc.pid
        self.times: list[float] = []   # arrival time of each chunk
        self.chunks: list[bytes] = []
        self.total = 0
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="pty-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the program exited and the slave side closed
                return
            if not data:
                return
            now = time.monotonic()
            with self._lock:
                self.times.append(now)
                self.chunks.append(data)
                self.total += len(data)

    # -- input --
    def send(self, keys: bytes) -> float:
        """Write a key press; returns the monotonic time just before the write."""
        t = time.monotonic()
        os.write(self.master, keys)
        return t

    # -- output analysis --
    def n_chunks(self) -> int:
        with self._lock:
            return len(self.chunks)

    def bytes_between(self, t0: float, t1: float) -> int:
        with self._lock:
            i, j = bisect.bisect_left(self.times, t0), bisect.bisect_left(self.times, t1)
            return sum(len(c) for c in self.chunks[i:j])

    def text_since(self, index: int) -> bytes:
        with self._lock:
            return b"".join(self.chunks[index:])

    def first_output_after(self, t: float, timeout: float) -> float | None:
        """Arrival time of the first chunk after t (waits up to timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                i = bisect.bisect_right(self.times, t)
                if i < len(self.times):
                    return self.times[i]
            if time.monotonic() > deadline:
                return None
            time.sleep(0.001)

    def quiet_after(self, t: float, gap: float, timeout: float) -> float | None:
        """Arrival time of the last chunk after t that is followed by `gap` seconds of silence."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                i = bisect.bisect_right(self.times, t)
                last = self.times[-1] if i < len(self.times) else None
            if last is not None and time.monotonic() - last >= gap:
                return last
            time.sleep(0.002)
        return None

    def wait_for(self, marker: bytes, since_index: int, timeout: float) -> float | None:
        """Arrival time of the chunk that completes the first `marker` after chunk since_index."""
        deadline = time.monotonic() + timeout
        scanned = since_index
        tail = b""
        while True:
            with self._lock:
                new = self.chunks[scanned:]
                new_times = self.times[scanned:]
            for chunk, t in zip(new, new_times):
                buf = tail + chunk
                if marker in buf:
                    return t
                tail = buf[-(len(marker) - 1):] if len(marker) > 1 else b""
            scanned += len(new)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.001)

    # -- the process --
    def cpu_seconds(self) -> float:
        """utime + stime of the program (all its threads), from /proc/PID/stat."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def runqueue_wait(self) -> float:
        """Seconds the main (UI) thread has spent runnable but waiting for a CPU
        (/proc/PID/schedstat, field 2): how much of a latency is other processes' doing."""
        try:
            with open(f"/proc/{self.pid}/schedstat") as f:
                return int(f.read().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return float("nan")

    def status_kb(self, key: str) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, quit_keys: bytes = b"q", timeout: float = 10.0) -> int | None:
        if self.alive():
            try:
                os.write(self.master, quit_keys)
                self.proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.alive():
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._reader.join(2)
        try:
            os.close(self.master)
        except OSError:
            pass
        return self.proc.returncode
