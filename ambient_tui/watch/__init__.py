"""Resilient cluster watches (list, then watch from the resourceVersion) feeding snapshots.

Engine code: no textual import. Panes read `Watcher.version` on a timer and take a
`snapshot()` only when it changed; they never get a callback per event.
"""
