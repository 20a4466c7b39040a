"""Run checks concurrently: each in a thread, each with its own timeout."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Callable

from ambient_tui.checks.model import FAIL, SKIP, Check, CheckContext, Skip


async def run_one(ctx: CheckContext, check_id: str, title: str, func, timeout: float,
                  pool: concurrent.futures.Executor) -> Check:
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    try:
        result = await asyncio.wait_for(loop.run_in_executor(pool, func, ctx), timeout)
    except asyncio.TimeoutError:
        result = Check(check_id, title, FAIL, f"timed out after {timeout:g}s")
    except Skip as e:
        result = Check(check_id, title, SKIP, str(e))
    except Exception as e:  # noqa: BLE001 - a check's crash is that check's failure only
        result = Check(check_id, title, FAIL, getattr(e, "message", None) or f"{type(e).__name__}: {e}")
    result.elapsed = time.monotonic() - t0
    return result


async def run_checks_async(ctx: CheckContext, checks=None,
                           on_result: Callable[[Check], None] | None = None,
                           timeout_scale: float = 1.0) -> list[Check]:
    """All checks at once; results come back in the checks' order, on_result as each finishes."""
    from ambient_tui.checks.core import ALL

    checks = list(checks or ALL)
    # Our own pool, shut down without waiting: a hung client call must not hold up the exit.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(4, len(checks)),
                                                 thread_name_prefix="check")
    try:
        async def one(spec):
            r = await run_one(ctx, spec[0], spec[1], spec[2], spec[3] * timeout_scale, pool)
            if on_result:
                on_result(r)
            return r
        return list(await asyncio.gather(*(one(s) for s in checks)))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def run_checks(ctx: CheckContext, checks=None, on_result=None) -> list[Check]:
    return asyncio.run(run_checks_async(ctx, checks, on_result))
