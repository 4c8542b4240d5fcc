"""Budgets per tenant and project, as they live in the NATS KV bucket ``ATELIER_BUDGETS``.

The gateway writes the limits (``limit.<tenant>`` and ``limit.<tenant>.<project>``); the
provider routers keep the spend of each scope (``spend.<tenant>`` and
``spend.<tenant>.<project>``) with compare-and-set updates: a call first *reserves* its worst
case, then *settles* at its real cost. Both sides read the same shapes from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import msgspec

ALERT_AT = 0.8
"""Share of a budget whose crossing raises the (one per period) budget alert."""

Period = Literal["month", "total"]


class BudgetLimit(msgspec.Struct, frozen=True, kw_only=True):
    """A spending cap in US dollars, per calendar month (UTC) or for all time."""

    limit_usd: float
    period: Period = "month"


class Hold(msgspec.Struct, frozen=True, kw_only=True):
    """A reservation for one call: its worst-case cost, until its lease runs out (wall clock)."""

    amount_usd: float
    expires_at: float


ALERTS_KEPT = 12


class BudgetSpend(msgspec.Struct, kw_only=True):
    """What one scope spent this month and in all, and what calls in flight hold.

    Both totals are always kept, so changing a budget's period loses nothing.
    """

    month: str = ""
    """The calendar month (``2026-11``) ``month_usd`` counts; a new month starts it from zero."""
    month_usd: float = 0.0
    total_usd: float = 0.0
    holds: dict[str, Hold] = {}
    alerted: list[str] = []
    """The periods (``2026-11``, ``total``) whose alert at ``ALERT_AT`` was raised (the last few)."""

    def spent(self, period: str) -> float:
        """What was spent in ``period``: a month's key or ``total``."""
        if period == "total":
            return self.total_usd
        return self.month_usd if period == self.month else 0.0

    @property
    def reserved_usd(self) -> float:
        return sum(h.amount_usd for h in self.holds.values())

    def current(self, month: str, now: float) -> BudgetSpend:
        """As of ``month`` and wall-clock ``now``: a new month starts ``month_usd`` from zero;
        holds whose lease ran out (their router died mid-call) are dropped."""
        holds = {k: h for k, h in self.holds.items() if h.expires_at > now}
        month_usd = self.month_usd if self.month == month else 0.0
        return BudgetSpend(
            month=month, month_usd=month_usd, total_usd=self.total_usd, holds=holds, alerted=self.alerted
        )


PROJECT_MAX = 64


def project_of(job_input: Mapping[str, Any]) -> str:
    """The project a job's usage counts toward: ``input.project`` (1 to 64 characters, checked by
    the gateway), or "" when it names none."""
    project = job_input.get("project")
    return project if isinstance(project, str) and 0 < len(project) <= PROJECT_MAX else ""


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
