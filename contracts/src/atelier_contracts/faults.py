"""Fault injection (``input.simulate``) is a deployment's choice: off unless it is switched on.

The gateway refuses a job that asks for it where it is off (422 ``simulate_disabled``), and the
provider router ignores it there too (a job may reach the router by another way than the API).
``make up`` and the tests switch it on; ``compose.yaml`` does not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

import msgspec

ENABLE_ENV = "ATELIER_ALLOW_SIMULATE"
MAX_DELAY_ENV = "ATELIER_SIMULATE_MAX_DELAY_S"
MAX_ATTEMPTS_FAILED = 100
"""The most attempts of one step a job may ask to fail or slow down."""

Attempts = Annotated[int, msgspec.Meta(ge=0, le=MAX_ATTEMPTS_FAILED)]
StepName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Simulate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``input.simulate``: failures and delays the offline providers act out, to watch retries."""

    fail: dict[StepName, Attempts] = {}
    """step → how many of its first attempts fail."""
    slow: dict[StepName, Attempts] = {}
    """step → how many of its first attempts answer only after ``slow_s``."""
    slow_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    """The delay of a slow attempt; at most the deployment's ``max_delay_s``."""
    final: bool = False
    """The failures are final (not retried)."""


@dataclass(frozen=True)
class FaultInjection:
    enabled: bool = False
    max_delay_s: float = 60.0
    """The longest ``slow_s`` a job may ask for."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FaultInjection:
        env = os.environ if env is None else env
        raw = env.get(MAX_DELAY_ENV, "")
        try:
            max_delay_s = float(raw) if raw else cls.max_delay_s
        except ValueError:
            raise ValueError(f"{MAX_DELAY_ENV} must be a number of seconds, not {raw!r}") from None
        if not 0 < max_delay_s <= 3600:
            raise ValueError(f"{MAX_DELAY_ENV} must be above 0 and at most 3600, not {raw!r}")
        return cls(enabled=env.get(ENABLE_ENV, "") == "1", max_delay_s=max_delay_s)
