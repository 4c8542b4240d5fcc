"""Per-provider circuit breakers: closed → open (cooling down) → half-open (one probe) → closed.

A breaker trips on a 429 at once (for Retry-After when given), and on a failure rate over the
last ``window`` calls once ``min_calls`` were made. When the cooldown ends, one real request
is let through as a probe: its success closes the breaker, its failure opens it again for twice
as long. Time comes in as an argument, so the rules are tested without sleeping.

Every router replica keeps its own breakers, and they share what they learn
(``adapters/breaker_sync.py``): a trip another replica saw is *adopted* — the breaker opens
until that replica's end time, unless it is already open for longer — and a recovery another
replica saw (its probe succeeded) closes a breaker that is open only because of an adopted
trip. Probes stay per replica: when an adopted trip ends, each replica that has not learnt of
a recovery in the meantime lets one request of its own through, so a provider gets up to one
probe per replica. A probe that fails is a trip of this replica's own, and is shared like any
other.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from atelier_provider_router.app.matrix import ProviderConfig
from atelier_provider_router.app.ports import ErrorClass

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
AUTH_COOLDOWN_S = 3600.0
ADOPT_SLACK_S = 0.5
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
    adopted_from: str = ""
    """The replica whose trip (or recovery) this breaker follows; empty when the state is its own."""
    own: tuple[float, str, float] | None = None
    """This replica's own latest trip (until, reason, cooldown), kept while an adopted one covers it."""

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

    def no_probe(self) -> None:
        """The call ``allow`` let through did not go out (a limit or budget refused it, or it
        broke before reaching the provider): the next one may probe instead."""
        self.probing = False

    def succeeded(self) -> None:
        self._record(True)
        if self.state == HALF_OPEN:
            self._close()

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

    def adopt(self, until: float, reason: str, now: float, by: str = "another replica") -> bool:
        """Follow a trip replica ``by`` saw: stay open until ``until`` (this process's clock).

        Nothing changes when the trip is over or this breaker is already open at least as long
        (give or take ``ADOPT_SLACK_S``: reading the same trip again converts its wall-clock end
        a hair differently, and must not shorten the cooldown a failed probe doubles).
        A half-open breaker opens again (its probe, if one is out, no longer closes it). When the
        adopted trip ends, this replica probes once like after a trip of its own, and a failed
        probe doubles the adopted cooldown. Returns whether the breaker changed.
        """
        if until <= now or (self.state == OPEN and self.until >= until - ADOPT_SLACK_S):
            return False
        self.state, self.until, self.cooldown_s, self.probing = OPEN, until, until - now, False
        self.reason = f"tripped by {by}: {reason}"
        self.adopted_from = by
        return True

    def adopt_closed(self, now: float, by: str = "another replica") -> bool:
        """Follow a recovery replica ``by`` saw (its probe succeeded).

        Only a breaker that is open (or half-open) because of an adopted trip closes; one open
        because of a trip of its own stays open, and one whose own trip an adopted one outlasted
        goes back to its own trip. Returns whether the breaker changed.
        """
        if self.state == CLOSED or not self.adopted_from:
            return False
        if self.own is not None and self.own[0] > now:
            (self.until, self.reason, self.cooldown_s), self.state = self.own, OPEN
            self.adopted_from, self.probing = "", False
            return True
        self._close()
        self.adopted_from = by
        return True

    def _open(self, now: float, cooldown_s: float, reason: str) -> None:
        if self.state == OPEN and self.adopted_from and self.until >= now + cooldown_s:
            # A call that went out before an adopted, longer trip: that trip stands.
            self.own = (now + cooldown_s, reason, cooldown_s)
            return
        self.state, self.until, self.reason, self.cooldown_s, self.probing = (
            OPEN,
            now + cooldown_s,
            reason,
            cooldown_s,
            False,
        )
        self.own, self.adopted_from = (self.until, reason, cooldown_s), ""

    def _close(self) -> None:
        self.state, self.reason, self.cooldown_s, self.probing = CLOSED, "", 0.0, False
        self.own, self.adopted_from = None, ""
        self.recent.clear()

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

    def __contains__(self, provider: object) -> bool:
        return provider in self._breakers

    def items(self) -> list[tuple[str, Breaker]]:
        return list(self._breakers.items())

    def snapshot(self, now: float) -> dict[str, dict[str, object]]:
        """What the API shows: each provider's state, why, and for how much longer. A breaker
        whose cooldown is over shows as half-open: its next call will be the probe."""
        return {
            name: {
                "state": HALF_OPEN if b.state == OPEN and b.remaining(now) == 0 else b.state,
                "reason": b.reason,
                "remaining_s": round(b.remaining(now), 3),
            }
            for name, b in self._breakers.items()
        }
