"""The API server's "now", seen from this machine: local time plus a skew learnt from the
server's own timestamps.

Ages (AGE columns) are server timestamps subtracted from a "now". With this machine's clock
behind the server's, a pod created a moment ago has a creationTimestamp in our future, and
its age came out negative (`<invalid>`). Two things tell the skew:

- the `Date` header of an API response: the server's time to the second, either direction;
- a new object's creationTimestamp: the server's clock was at least that when it told us.

Both are truncated to whole seconds, so the skew is known to about a second; ages are
clamped at zero besides (rows.human_duration).
"""

from __future__ import annotations

import threading
import time
from email.utils import parsedate_to_datetime
from typing import Callable


class ServerClock:
    def __init__(self, local: Callable[[], float] = time.time) -> None:
        self.local = local
        self._lock = threading.Lock()
        self._date_skew: float | None = None  # from the last Date header
        self._floor = float("-inf")            # server clock >= local + floor (creation times)

    @property
    def skew(self) -> float:
        """Seconds the server's clock is ahead of this machine's (negative: behind)."""
        with self._lock:
            return max(self._date_skew or 0.0, self._floor)

    def now(self) -> float:
        """The server's time now, as well as it is known (called fresh for every render)."""
        return self.local() + self.skew

    def saw_date(self, header: str | None, local_now: float | None = None) -> None:
        """An HTTP `Date` header of a response just received ("Fri, 04 Dec 2026 19:05:00 GMT")."""
        if not header:
            return
        try:
            server = parsedate_to_datetime(header).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        local = self.local() if local_now is None else local_now
        with self._lock:
            # The header is truncated to the second: the server's time was in [server, server+1).
            self._date_skew = server + 0.5 - local
            self._floor = float("-inf")  # the header is the better measure; creation times refine it again

    def saw_created(self, created: float | None, local_now: float | None = None) -> None:
        """A creationTimestamp of an object just added: the server's clock had reached it."""
        if created is None:
            return
        local = self.local() if local_now is None else local_now
        with self._lock:
            if created - local > self._floor:
                self._floor = created - local
