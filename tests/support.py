"""Helpers shared by tests: waiting on conditions (never sleeping blindly), reading the log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Clock:
    """A clock the test moves by hand (``clock.now += 5``), for code that takes ``clock=``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def eventually(
    probe: Callable[[], Awaitable[T | None]], within: float = 30.0, every: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with its last value after ``within`` seconds."""
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met within {within}s (last: {last!r})")


def eventually_sync(probe: Callable[[], T | None], within: float = 30.0, every: float = 0.05) -> T:
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met within {within}s (last: {last!r})")
