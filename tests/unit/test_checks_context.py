"""CheckContext.memo: one DescribeCluster per preflight, shared by the checks that need it."""

import threading

import pytest

from ambient_tui.checks.model import CheckContext
from ambient_tui.settings import Settings


def test_memo_computes_once_across_threads_and_shares_errors():
    ctx = CheckContext(Settings(istio_version="1.31.0"))
    calls = []

    def describe():
        calls.append(1)
        return {"platformVersion": "eks.4"}
    results = []
    threads = [threading.Thread(target=lambda: results.append(ctx.memo("k", describe))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and results == [{"platformVersion": "eks.4"}] * 8

    def broken():
        calls.append(2)
        raise RuntimeError("eks:DescribeCluster: AccessDenied")
    for _ in range(2):
        with pytest.raises(RuntimeError, match="AccessDenied"):
            ctx.memo("bad", broken)
    assert calls.count(2) == 1
