"""Budgets per tenant and project, as they live in the NATS KV bucket ``ATELIER_BUDGETS``.

The gateway writes the limits (``limit.<tenant>`` and ``limit.<tenant>.<project>``); the
provider routers keep the spend of each scope (``spend.<tenant>`` and
``spend.<tenant>.<project>``) with compare-and-set updates: a call first *reserves* its worst
case, then *settles* at its real cost. Both sides read the same shapes from here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

ALERT_AT = 0.8
"""Share of a budget whose crossing raises the (one per period) budget alert."""

Period = Literal["month", "total"]


class BudgetLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A spending cap in US dollars, per calendar month (UTC) or for all time."""

    limit_usd: float
    period: Period = "month"


class Hold(msgspec.Struct, frozen=True, array_like=True):
    """A reservation for one call: its worst-case cost, until its lease runs out (wall clock)."""

    amount_usd: float
    expires_at: float


class BudgetSpend(msgspec.Struct, kw_only=True):
    """What one scope spent in its current period, and what calls in flight hold."""

    period: str = ""
    """``2026-11`` for a monthly budget, ``total`` otherwise; a new period starts from zero."""
    spent_usd: float = 0.0
    holds: dict[str, Hold] = {}
    settled: list[str] = []
    """The most recently settled hold ids: a repeated settlement is recognised and ignored."""
    alerted: bool = False
    """The alert at ``ALERT_AT`` of the limit was raised in this period."""

    @property
    def reserved_usd(self) -> float:
        return sum(h.amount_usd for h in self.holds.values())

    def current(self, period: str, now: float) -> BudgetSpend:
        """The spend in ``period`` at wall-clock ``now``: a new period starts from zero; holds
        whose lease ran out (their router died mid-call) are dropped."""
        holds = {k: h for k, h in self.holds.items() if h.expires_at > now}
        if self.period != period:
            return BudgetSpend(period=period, holds=holds, settled=self.settled)
        return BudgetSpend(
            period=period, spent_usd=self.spent_usd, holds=holds, settled=self.settled, alerted=self.alerted
        )


def period_key(period: Period, at: datetime) -> str:
    return at.strftime("%Y-%m") if period == "month" else "total"


def _escape(name: str) -> str:
    """A KV-key-safe token for a tenant or project name: ``=`` and hex for each other UTF-8 byte."""
    return "".join(
        c if c.isascii() and (c.isalnum() or c in "-_") else "".join(f"={b:02x}" for b in c.encode())
        for c in name
    )


def _unescape(token: str) -> str:
    out, i = bytearray(), 0
    while i < len(token):
        if token[i] == "=":
            out.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            out += token[i].encode()
            i += 1
    return out.decode()


def scope_of(key: str) -> tuple[str, str]:
    """``(tenant, project)`` of a ``limit.*`` or ``spend.*`` key (project "" for the tenant's)."""
    _, tenant, *project = key.split(".")
    return _unescape(tenant), _unescape(project[0]) if project else ""


def scope_id(tenant: str, project: str = "") -> str:
    return _escape(tenant) + (f".{_escape(project)}" if project else "")


def limit_key(tenant: str, project: str = "") -> str:
    return f"limit.{scope_id(tenant, project)}"


def spend_key(tenant: str, project: str = "") -> str:
    return f"spend.{scope_id(tenant, project)}"


limit_codec = msgspec.json.Decoder(BudgetLimit)
spend_codec = msgspec.json.Decoder(BudgetSpend)
