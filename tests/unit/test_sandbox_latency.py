"""The sandbox's latency relay: bytes arrive intact, each exchange pays the round trip (loopback)."""

import asyncio
import time

import pytest

from ambient_tui.sandbox import latency


async def _echo_server():
    async def echo(r, w):
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
        w.close()
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _run_with_relay(delay_ms, body, target=None):
    """body(relay port), with the relay in front of target (default: an echo server)."""
    async def main():
        server = None
        if target is None:
            server, port = await _echo_server()
        ports = []
        relay = asyncio.create_task(latency.serve({0: target or ("127.0.0.1", port)}, delay_ms,
                                                  ready=ports.extend))
        while not ports:
            await asyncio.sleep(0.001)
        try:
            return await body(ports[0])
        finally:
            relay.cancel()
            if server:
                server.close()
    return asyncio.run(main())


def test_round_trips_pay_the_delay_and_data_is_intact():
    async def body(port):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        times = []
        for i in range(3):
            t = time.monotonic()
            w.write(b"ping %d\n" % i)
            await w.drain()
            assert await r.readline() == b"ping %d\n" % i
            times.append(time.monotonic() - t)
        big = bytes(range(256)) * 8192  # 2 MiB, many chunks: order must hold
        w.write(big)
        w.write_eof()  # the end is relayed too: the echo server closes, and so does the relay
        got = await r.read()
        w.close()
        return times, got == big
    times, intact = _run_with_relay(60, body)
    assert intact
    assert min(times) >= 0.058, times  # 30 ms each way


def test_unreachable_target_closes_the_client():
    async def body(port):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        return await asyncio.wait_for(r.read(), 5)
    assert _run_with_relay(10, body, target=("127.0.0.1", 1)) == b""  # nothing listens on port 1


@pytest.mark.parametrize("bad", ["x=127.0.0.1:1", "1=127.0.0.1", "1=:5"])
def test_bad_route(bad):
    with pytest.raises(Exception, match="expected LISTEN_PORT=HOST:PORT"):
        latency.parse_route(bad)
