"""Per-provider circuit breakers: closed → open (cooling down) → half-open (one probe) → closed.

A breaker trips on a 429 at once (for Retry-After when given), and on a failure rate over the
last ``window`` calls once ``min_calls`` were made. When the cooldown ends, one real request
is let through as a probe: its success closes the breaker, its failure opens it again for twice
as long. Time comes in as an argument, so the rules are tested without sleeping.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from atelier_provider_router.app.matrix import ProviderConfig
from atelier_provider_router.app.ports import ErrorClass

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
AUTH_COOLDOWN_S = 3600.0
# Failures that say something about the provider's health (not about the request).
HEALTH_FAILURES = {
    ErrorClass.RATE_LIMITED,
    ErrorClass.SERVER_ERROR,
    ErrorClass.TIMEOUT,
    ErrorClass.CONNECTION,
}


@dataclass
class Breaker:
    config: ProviderConfig
    state: str = CLOSED
    until: float = 0.0
    reason: str = ""
    cooldown_s: float = 0.0
    probing: bool = False
    recent: deque[bool] = field(default_factory=deque)

    def allow(self, now: float) -> bool:
        """May a call go out now? In half-open, only the one probe may."""
        if self.state == OPEN and now >= self.until:
            self.state = HALF_OPEN
            self.probing = False
        if self.state == CLOSED:
            return True
        if self.state == HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def succeeded(self) -> None:
        self._record(True)
        if self.state == HALF_OPEN:
            self.state, self.reason, self.cooldown_s, self.probing = CLOSED, "", 0.0, False
            self.recent.clear()

    def failed(self, error: ErrorClass, now: float, retry_after_s: float | None = None) -> None:
        if error == ErrorClass.AUTH:
            self._open(now, AUTH_COOLDOWN_S, "auth")
            return
        if error not in HEALTH_FAILURES:
            self.probing = False
            return
        self._record(False)
        if self.state == HALF_OPEN:
            self._open(
                now, retry_after_s or max(self.cooldown_s * 2, self.config.cooldown_s), f"probe: {error}"
            )
        elif error == ErrorClass.RATE_LIMITED:
            self._open(now, retry_after_s or self.config.cooldown_s, "429")
        elif self._failure_rate_exceeded():
            self._open(now, retry_after_s or self.config.cooldown_s, f"failure rate: {error}")

    def remaining(self, now: float) -> float:
        return max(self.until - now, 0.0) if self.state == OPEN else 0.0

    def _open(self, now: float, cooldown_s: float, reason: str) -> None:
        self.state, self.until, self.reason, self.cooldown_s, self.probing = (
            OPEN,
            now + cooldown_s,
            reason,
            cooldown_s,
            False,
        )

    def _record(self, ok: bool) -> None:
        self.recent.append(ok)
        while len(self.recent) > self.config.window:
            self.recent.popleft()

    def _failure_rate_exceeded(self) -> bool:
        calls = len(self.recent)
        failures = calls - sum(self.recent)
        return calls >= self.config.min_calls and failures / calls >= self.config.failure_rate


class Breakers:
    """The breakers of all configured providers (one per provider name)."""

    def __init__(self, configs: dict[str, ProviderConfig]) -> None:
        self._breakers = {name: Breaker(config) for name, config in configs.items()}

    def reconfigure(self, configs: dict[str, ProviderConfig]) -> None:
        """Keep the state of providers that stay; new ones start closed."""
        old = self._breakers
        self._breakers = {name: old.get(name) or Breaker(config) for name, config in configs.items()}
        for name, config in configs.items():
            self._breakers[name].config = config

    def __getitem__(self, provider: str) -> Breaker:
        return self._breakers[provider]

    def snapshot(self, now: float) -> dict[str, dict[str, object]]:
        """What the API shows: each provider's state, why, and for how much longer."""
        return {
            name: {"state": b.state, "reason": b.reason, "remaining_s": round(b.remaining(now), 3)}
            for name, b in self._breakers.items()
        }
