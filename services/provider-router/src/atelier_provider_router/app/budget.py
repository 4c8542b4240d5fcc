"""Budget rules, pure: reserve a call's worst case before it, settle its real cost after.

A scope (a tenant, or a project of a tenant) has a :class:`BudgetSpend`. A call may go out
only if what was spent, plus what calls in flight hold, plus this call's worst case fits under
the limit. After the call the hold becomes the real cost. Both steps are keyed by the call's
hold id (``<work_id>:<provider>/<model>``, also its idempotency key): a redelivered work item
that calls again neither reserves nor bills a second time. A hold whose router died runs out
after its TTL, so a crash frees the budget it held.
"""

from __future__ import annotations

import msgspec

from atelier_contracts.budgets import ALERT_AT, BudgetLimit, BudgetSpend, Hold

SETTLED_KEPT = 512
"""How many settled hold ids a scope remembers (far more than calls in flight at once)."""


def reserve(
    spend: BudgetSpend, limit: BudgetLimit | None, hold_id: str, amount_usd: float, expires_at: float
) -> BudgetSpend | None:
    """The spend with this call's hold added, or None when it does not fit under the limit."""
    if hold_id in spend.holds or hold_id in spend.settled:
        return spend  # the same call again (a redelivery): it holds or was billed already
    if limit is not None and spend.spent_usd + spend.reserved_usd + amount_usd > limit.limit_usd + 1e-9:
        return None
    holds = {**spend.holds, hold_id: Hold(amount_usd, expires_at)}
    return msgspec.structs.replace(spend, holds=holds)


def settle(
    spend: BudgetSpend, limit: BudgetLimit | None, hold_id: str, cost_usd: float
) -> tuple[BudgetSpend, bool]:
    """The spend with the call's hold replaced by its cost; True when this crossed the alert line."""
    if hold_id in spend.settled:
        return spend, False
    holds = {k: h for k, h in spend.holds.items() if k != hold_id}
    spent = round(spend.spent_usd + cost_usd, 8)
    alert = limit is not None and not spend.alerted and spent >= ALERT_AT * limit.limit_usd
    settled = [*spend.settled, hold_id][-SETTLED_KEPT:]
    new = BudgetSpend(
        period=spend.period, spent_usd=spent, holds=holds, settled=settled, alerted=spend.alerted or alert
    )
    return new, alert
