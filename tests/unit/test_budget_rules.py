"""Budget rules without NATS: reserve the worst case, settle the real cost, once per call."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from atelier_contracts.budgets import (
    BudgetLimit,
    BudgetSpend,
    limit_key,
    period_key,
    scope_of,
    spend_key,
)
from atelier_provider_router.app.budget import SETTLED_KEPT, reserve, settle

LIMIT = BudgetLimit(limit_usd=1.0)


def test_a_call_is_held_at_its_worst_case_and_refused_when_it_would_not_fit() -> None:
    spend = reserve(BudgetSpend(period="2026-11"), LIMIT, "w1:a/m", 0.6, expires_at=100)
    assert spend is not None
    assert spend.reserved_usd == pytest.approx(0.6)
    assert reserve(spend, LIMIT, "w2:a/m", 0.5, expires_at=100) is None, "0.6 held + 0.5 > 1.0"
    assert reserve(spend, LIMIT, "w2:a/m", 0.4, expires_at=100) is not None, "exactly the limit fits"


def test_settling_replaces_the_hold_by_the_real_cost() -> None:
    held = reserve(BudgetSpend(period="p"), LIMIT, "w1:a/m", 0.6, expires_at=100)
    assert held is not None
    spend, alert = settle(held, LIMIT, "w1:a/m", 0.1)
    assert (spend.spent_usd, spend.reserved_usd, alert) == (pytest.approx(0.1), 0.0, False)
    # The 0.5 the worst case over-estimated is free again.
    assert reserve(spend, LIMIT, "w2:a/m", 0.9, expires_at=100) is not None


def test_the_same_call_again_neither_holds_nor_bills_twice() -> None:
    held = reserve(BudgetSpend(period="p"), LIMIT, "w1:a/m", 0.3, expires_at=100)
    assert held is not None
    assert reserve(held, LIMIT, "w1:a/m", 0.3, expires_at=100) is held, "a redelivery holds nothing more"
    spent, _ = settle(held, LIMIT, "w1:a/m", 0.3)
    again, alert = settle(spent, LIMIT, "w1:a/m", 0.3)
    assert again is spent
    assert not alert
    assert reserve(spent, LIMIT, "w1:a/m", 0.3, expires_at=100) is spent, "already billed: nothing to hold"


def test_the_alert_is_raised_once_when_spending_crosses_eighty_percent() -> None:
    spend, alerts = BudgetSpend(period="p"), []
    for i, cost in enumerate([0.5, 0.29, 0.02, 0.1]):
        spend, alert = settle(spend, LIMIT, f"w{i}", cost)
        alerts.append(alert)
    assert alerts == [False, False, True, False]
    assert spend.alerted


def test_a_hold_whose_router_died_runs_out_and_frees_the_budget() -> None:
    held = reserve(BudgetSpend(period="p"), LIMIT, "w1", 0.9, expires_at=100)
    assert held is not None
    assert reserve(held.current("p", now=99), LIMIT, "w2", 0.5, expires_at=200) is None
    assert reserve(held.current("p", now=101), LIMIT, "w2", 0.5, expires_at=200) is not None


def test_a_new_period_starts_from_zero_but_keeps_calls_in_flight() -> None:
    spend = BudgetSpend(period="2026-10", spent_usd=0.9, alerted=True)
    held = reserve(spend, LIMIT, "w1", 0.05, expires_at=100)
    assert held is not None
    november = held.current("2026-11", now=50)
    assert (november.spent_usd, november.reserved_usd, november.alerted) == (0.0, pytest.approx(0.05), False)


def test_only_the_most_recent_settlements_are_remembered() -> None:
    spend = BudgetSpend(period="p")
    for i in range(SETTLED_KEPT + 10):
        spend, _ = settle(spend, None, f"w{i}", 0.0)
    assert len(spend.settled) == SETTLED_KEPT
    assert spend.settled[-1] == f"w{SETTLED_KEPT + 9}"


def test_without_a_limit_spend_is_kept_and_nothing_is_refused() -> None:
    spend = reserve(BudgetSpend(period="p"), None, "w1", 1e6, expires_at=100)
    assert spend is not None
    spend, alert = settle(spend, None, "w1", 5.0)
    assert spend.spent_usd == 5.0
    assert not alert


@pytest.mark.parametrize(
    ("tenant", "project"), [("acme", ""), ("acme", "spring-catalog"), ("a.b", "x y/z"), ("t", "日本=")]
)
def test_scope_names_become_kv_keys_and_back(tenant: str, project: str) -> None:
    key = limit_key(tenant, project)
    assert key.count(".") == (2 if project else 1), "names cannot add levels to the key"
    assert scope_of(key) == (tenant, project)
    assert scope_of(spend_key(tenant, project)) == (tenant, project)


def test_periods() -> None:
    at = datetime(2026, 11, 25, 23, 59, tzinfo=UTC)
    assert period_key("month", at) == "2026-11"
    assert period_key("total", at) == "total"
