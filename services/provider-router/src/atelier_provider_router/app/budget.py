"""Budget rules, pure: reserve a call's worst case before it, settle its real cost after.

A scope (a tenant, or a project of a tenant) has a :class:`BudgetSpend`. A call may go out
only if what the period spent, plus what calls in flight hold, plus this call's worst case fits
under the limit. After the call its hold becomes its real cost (a call that failed releases
its hold; one whose answer never came keeps it until it runs out, since the provider may have
billed it). Holds are keyed by the call's hold id (``<work_id>:<provider>/<model>``, also its
idempotency key), so a redelivered call holds once; that it is billed once is the settlement
marker's job (see ``adapters/budgets.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from atelier_contracts.budgets import ALERT_AT, ALERTS_KEPT, BudgetLimit, BudgetSpend, Hold


@dataclass(frozen=True)
class Refused:
    """Why a hold was refused; ``transient`` when only other calls' holds stand in the way (they
    will settle, usually far below their worst case), so waiting may help."""

    spent_usd: float
    held_usd: float
    transient: bool


def reserve(
    spend: BudgetSpend, limit: BudgetLimit, period: str, hold_id: str, amount_usd: float, expires_at: float
) -> BudgetSpend | Refused:
    """The spend with this call's hold added, or why it does not fit under the limit."""
    if hold_id in spend.holds:
        return spend  # the same call again (a redelivery): it holds already
    spent, held = spend.spent(period), spend.reserved_usd
    if spent + held + amount_usd > limit.limit_usd + 1e-9:
        return Refused(spent, held, transient=spent + amount_usd <= limit.limit_usd + 1e-9)
    return msgspec.structs.replace(
        spend, holds={**spend.holds, hold_id: Hold(amount_usd=amount_usd, expires_at=expires_at)}
    )


def settle(
    spend: BudgetSpend, limit: BudgetLimit | None, period: str, hold_id: str, cost_usd: float
) -> tuple[BudgetSpend, bool]:
    """The spend with the call's hold replaced by its cost; True when this crossed the alert line."""
    holds = {k: h for k, h in spend.holds.items() if k != hold_id}
    new = msgspec.structs.replace(
        spend,
        month_usd=round(spend.month_usd + cost_usd, 8),
        total_usd=round(spend.total_usd + cost_usd, 8),
        holds=holds,
    )
    alert = (
        limit is not None and period not in spend.alerted and new.spent(period) >= ALERT_AT * limit.limit_usd
    )
    if alert:
        new.alerted = [*spend.alerted, period][-ALERTS_KEPT:]
    return new, alert


def release(spend: BudgetSpend, hold_id: str) -> BudgetSpend | None:
    """The spend without the call's hold (it never went out, or failed unbilled); None if none."""
    if hold_id not in spend.holds:
        return None
    return msgspec.structs.replace(spend, holds={k: h for k, h in spend.holds.items() if k != hold_id})
