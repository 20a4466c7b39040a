"""A loopback TCP relay that delays every byte by a fixed time each way: a remote cluster, here.

`sandbox up --latency-ms N` puts one in front of the API server and the AWS endpoint that
kubeconfig and AWS_ENDPOINT_URL name, so each request/response pays N ms of round trip, as
over a network (tc netem is not available everywhere). Data is relayed unchanged (TLS passes
through); bandwidth is not limited. The sandbox's own components bypass it.

    python -m ambient_tui.sandbox.latency --delay-ms 20 --route 41001=127.0.0.1:41000 [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio

CHUNK = 65536


async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy reader to writer, each chunk delivered `delay` seconds after it arrived, in order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:  # the sender closed its side: pass the end on, as late as the data
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(CHUNK)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()


async def _relay(client_r, client_w, target: tuple[str, int], delay: float) -> None:
    try:
        server_r, server_w = await asyncio.open_connection(*target)
    except OSError:
        client_w.close()
        return
    try:
        await asyncio.gather(_forward(client_r, server_w, delay), _forward(server_r, client_w, delay))
    finally:
        for w in (client_w, server_w):
            w.close()


async def serve(routes: dict[int, tuple[str, int]], delay_ms: float, ready=None) -> None:
    """Listen on 127.0.0.1:port for each route; `ready` (if given) is called once all listen."""
    delay = delay_ms / 2000.0  # half the round trip each way
    servers = [await asyncio.start_server(lambda r, w, t=target: _relay(r, w, t, delay), "127.0.0.1", port)
               for port, target in routes.items()]
    if ready:
        ready([s.sockets[0].getsockname()[1] for s in servers])
    await asyncio.gather(*(s.serve_forever() for s in servers))


def parse_route(text: str) -> tuple[int, tuple[str, int]]:
    port, _, target = text.partition("=")
    host, _, tport = target.rpartition(":")
    if not (port.isdigit() and host and tport.isdigit()):
        raise argparse.ArgumentTypeError(f"route {text!r}: expected LISTEN_PORT=HOST:PORT")
    return int(port), (host, int(tport))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ambient_tui.sandbox.latency")
    ap.add_argument("--delay-ms", type=float, required=True, help="round trip added to every exchange")
    ap.add_argument("--route", type=parse_route, action="append", required=True,
                    help="LISTEN_PORT=HOST:PORT (repeatable); listens on 127.0.0.1 only")
    ap.add_argument("--state-dir", help="the sandbox this relay belongs to: in the command line, "
                                        "it tells `sandbox status` this process from a reused pid")
    a = ap.parse_args(argv)
    routes = dict(a.route)
    print(f"latency relay: {a.delay_ms:g} ms round trip on "
          + ", ".join(f"127.0.0.1:{p} -> {h}:{t}" for p, (h, t) in routes.items()), flush=True)
    asyncio.run(serve(routes, a.delay_ms))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
