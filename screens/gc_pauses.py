"""Keeping Python's cyclic garbage collector out of key-press latency.

A full collection scans every tracked object and holds the GIL, so it pauses the UI thread:
with Textual and the kubernetes client loaded (~120,000 objects) one took 80 ms on this
machine, and the pod pane's key-press p99 showed those pauses. Objects that live as long as
the app (imported modules, classes, the rows of a full pod list) are moved out of the
collector's view with gc.freeze(); they are still freed by reference counting when dropped.
"""

from __future__ import annotations

import gc

# A full list at least this big is worth freezing after it is built.
BIG_LIST = 1000


def freeze_long_lived() -> None:
    gc.freeze()
