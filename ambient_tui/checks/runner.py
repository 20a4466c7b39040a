"""Run checks concurrently: each in a thread, each with its own timeout."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Callable

from ambient_tui.checks.model import FAIL, SKIP, Check, CheckContext, Skip


async def _outcome(check_id: str, title: str, fut: asyncio.Future, timeout: float, t0: float) -> Check:
    try:
        result = await asyncio.wait_for(fut, timeout)
    except asyncio.TimeoutError:
        result = Check(check_id, title, FAIL, f"timed out after {timeout:g}s")
    except Skip as e:
        result = Check(check_id, title, SKIP, str(e))
    except Exception as e:  # noqa: BLE001 - a check's crash is that check's failure only
        result = Check(check_id, title, FAIL, getattr(e, "message", None) or f"{type(e).__name__}: {e}")
    result.elapsed = time.monotonic() - t0
    return result


def start_order(checks) -> list[int]:
    """Indexes of the checks in the order their threads start: STARTS_FIRST ones, then the rest,
    each group in the checks' own order."""
    from ambient_tui.checks.core import STARTS_FIRST

    return sorted(range(len(checks)), key=lambda i: checks[i][0] not in STARTS_FIRST)


async def run_checks_async(ctx: CheckContext, checks=None,
                           on_result: Callable[[Check], None] | None = None,
                           timeout_scale: float = 1.0) -> list[Check]:
    """All checks at once; results come back in the checks' order, on_result as each finishes."""
    from ambient_tui.checks.core import ALL

    checks = list(checks or ALL)
    loop = asyncio.get_running_loop()
    # Our own pool, shut down without waiting: a hung client call must not hold up the exit.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(4, len(checks)),
                                                 thread_name_prefix="check")
    try:
        # A new thread must get the GIL once before the next can start, so with 11 checks the
        # last started ~50 ms late. The checks that mostly wait on a helm or istioctl process go
        # first: their processes then run while the others take turns. Results keep the order.
        t0 = time.monotonic()
        started: dict[int, asyncio.Future] = {}
        for i in start_order(checks):
            started[i] = loop.run_in_executor(pool, checks[i][2], ctx)
        futures = [started[i] for i in range(len(checks))]

        async def one(spec, fut):
            r = await _outcome(spec[0], spec[1], fut, spec[3] * timeout_scale, t0)
            if on_result:
                on_result(r)
            return r
        return list(await asyncio.gather(*(one(s, f) for s, f in zip(checks, futures))))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def run_checks(ctx: CheckContext, checks=None, on_result=None) -> list[Check]:
    return asyncio.run(run_checks_async(ctx, checks, on_result))
