"""Connection errors keep whole sentences (issue 15, item 9): the cause of a real urllib3
failure against a closed loopback port, not the first 160 characters of its wrapper."""

from __future__ import annotations

import socket

import pytest
import urllib3

from ambient_tui.cluster.client import REASON_LIMIT, api_error, connection_reason


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket goes


def test_real_refused_connection_names_the_cause():
    port = closed_port()
    with pytest.raises(urllib3.exceptions.MaxRetryError) as e:
        urllib3.PoolManager(retries=urllib3.Retry(0)).request(
            "GET", f"https://127.0.0.1:{port}/api/v1/namespaces/istio-system/pods?limit=500&watch=false")
    err = api_error(e.value, "listing pods", f"https://127.0.0.1:{port}")
    msg = str(err)
    assert "Connection refused" in msg, msg
    assert "object at 0x" not in msg
    assert msg.endswith("check the network/VPN and the endpoint's public/private access")


def test_long_reasons_end_at_a_sentence_boundary():
    text = ("The first sentence explains what failed in detail. " * 10).strip()
    out = connection_reason(text)
    assert len(out) <= REASON_LIMIT + 2 and out.endswith("in detail …")
    assert connection_reason("short: reason") == "short: reason"
    assert connection_reason("") == ""
