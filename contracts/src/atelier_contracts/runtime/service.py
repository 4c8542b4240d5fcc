"""Running a service process: signals to a stop event, and tasks that end together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


Part = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
T = TypeVar("T")


GC_THRESHOLDS = (50_000, 20, 20)
"""Young collections every 50,000 allocations instead of 700: a service allocates a few hundred
objects per message, and each collection walks every young object (docs/benchmarks.md)."""


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a service's main coroutine on uvloop (asyncio's loop where uvloop is missing), with
    the garbage collector tuned for a long-running message handler."""
    gc.freeze()  # what start-up made (modules, settings) is never garbage: no need to scan it
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a runtime dependency
        return asyncio.run(main)
    return uvloop.run(main)


async def run_until_stopped(stop: asyncio.Event, *parts: Part) -> None:
    """Run each part with the shared stop event; if one fails, stop the others and re-raise."""
    tasks = [asyncio.create_task(part(stop)) for part in parts]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result


async def every(
    interval_s: float, once: Callable[[], Awaitable[int]], stop: asyncio.Event, what: str
) -> None:
    """``once()`` every ``interval_s`` until ``stop``; a failed round is tried again at the next."""
    while not stop.is_set():
        try:
            if found := await once():
                log.debug("%s: %d due", what, found)
        except Exception:
            log.exception("%s failed", what)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
