"""Budget rules without NATS: reserve the worst case, settle the real cost, keep both totals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from atelier_contracts.budgets import (
    ALERTS_KEPT,
    BudgetLimit,
    BudgetSpend,
    limit_key,
    period_key,
    project_of,
    scope_of,
    spend_key,
)
from atelier_provider_router.app.budget import Refused, release, reserve, settle

LIMIT = BudgetLimit(limit_usd=1.0)
NOV = "2026-11"


def held(spend: BudgetSpend, hold_id: str, amount: float, limit: BudgetLimit = LIMIT) -> BudgetSpend:
    new = reserve(spend, limit, NOV, hold_id, amount, expires_at=100)
    assert isinstance(new, BudgetSpend), new
    return new


def test_a_call_is_held_at_its_worst_case_and_refused_when_it_would_not_fit() -> None:
    spend = held(BudgetSpend(month=NOV), "w1:a/m", 0.6)
    assert spend.reserved_usd == pytest.approx(0.6)
    refused = reserve(spend, LIMIT, NOV, "w2:a/m", 0.5, expires_at=100)
    assert refused == Refused(spent_usd=0.0, held_usd=pytest.approx(0.6), transient=True)
    assert isinstance(reserve(spend, LIMIT, NOV, "w2:a/m", 0.4, expires_at=100), BudgetSpend), "exactly fits"


def test_a_refusal_is_transient_only_while_calls_in_flight_stand_in_the_way() -> None:
    spent, _ = settle(BudgetSpend(month=NOV), LIMIT, NOV, "w0", 0.7)
    assert isinstance(reserve(spent, LIMIT, NOV, "w1", 0.2, expires_at=100), BudgetSpend)
    refused = reserve(spent, LIMIT, NOV, "w1", 0.4, expires_at=100)
    assert isinstance(refused, Refused)
    assert not refused.transient, "0.7 spent + 0.4 can never fit: waiting will not help"


def test_settling_replaces_the_hold_by_the_real_cost() -> None:
    spend = held(BudgetSpend(month=NOV), "w1:a/m", 0.6)
    spend, alert = settle(spend, LIMIT, NOV, "w1:a/m", 0.1)
    assert (spend.spent(NOV), spend.reserved_usd, alert) == (pytest.approx(0.1), 0.0, False)
    held(spend, "w2:a/m", 0.9)  # the 0.5 the worst case over-estimated is free again


def test_the_same_call_holds_once_and_a_failed_call_lets_its_hold_go() -> None:
    spend = held(BudgetSpend(month=NOV), "w1:a/m", 0.3)
    assert reserve(spend, LIMIT, NOV, "w1:a/m", 0.3, expires_at=100) is spend, (
        "a redelivery holds nothing more"
    )
    released = release(spend, "w1:a/m")
    assert released is not None
    assert released.reserved_usd == 0.0
    assert release(released, "w1:a/m") is None, "nothing to let go twice"


def test_the_alert_is_raised_once_a_period_when_spending_crosses_eighty_percent() -> None:
    spend, alerts = BudgetSpend(month=NOV), []
    for i, cost in enumerate([0.5, 0.29, 0.02, 0.1]):
        spend, alert = settle(spend, LIMIT, NOV, f"w{i}", cost)
        alerts.append(alert)
    assert alerts == [False, False, True, False]
    assert spend.alerted == [NOV]
    december = spend.current("2026-12", now=0)
    december, alert = settle(december, LIMIT, "2026-12", "w9", 0.85)
    assert alert, "a new month, a new alert"


def test_a_hold_whose_router_died_runs_out_and_frees_the_budget() -> None:
    spend = held(BudgetSpend(month=NOV), "w1", 0.9)
    assert isinstance(reserve(spend.current(NOV, now=99), LIMIT, NOV, "w2", 0.5, expires_at=200), Refused)
    assert isinstance(
        reserve(spend.current(NOV, now=101), LIMIT, NOV, "w2", 0.5, expires_at=200), BudgetSpend
    )


def test_a_new_month_starts_from_zero_but_the_total_and_calls_in_flight_go_on() -> None:
    spend, _ = settle(BudgetSpend(month="2026-10"), LIMIT, "2026-10", "w0", 0.9)
    spend = held(spend, "w1", 0.05)
    november = spend.current(NOV, now=50)
    assert (november.spent(NOV), november.spent("total"), november.reserved_usd) == (
        0.0,
        pytest.approx(0.9),
        pytest.approx(0.05),
    )


def test_changing_a_budgets_period_loses_no_spend() -> None:
    spend, _ = settle(BudgetSpend(month=NOV), LIMIT, NOV, "w0", 0.4)
    spend, _ = settle(spend, BudgetLimit(limit_usd=1.0, period="total"), "total", "w1", 0.3)
    assert (spend.spent(NOV), spend.spent("total")) == (pytest.approx(0.7), pytest.approx(0.7))


def test_only_the_latest_alerts_are_remembered() -> None:
    spend = BudgetSpend(month=NOV)
    for month in range(1, ALERTS_KEPT + 5):
        period = f"2030-{month:02}"
        spend, alert = settle(spend.current(period, now=0), LIMIT, period, f"w{month}", 1.0)
        assert alert
    assert len(spend.alerted) == ALERTS_KEPT


def test_without_a_limit_spend_is_kept() -> None:
    spend, alert = settle(BudgetSpend(month=NOV), None, NOV, "w1", 5.0)
    assert spend.spent(NOV) == 5.0
    assert not alert


@pytest.mark.parametrize(
    ("tenant", "project"), [("acme", ""), ("acme", "spring-catalog"), ("a.b", "x y/z"), ("t", "日本=")]
)
def test_scope_names_become_kv_keys_and_back(tenant: str, project: str) -> None:
    key = limit_key(tenant, project)
    assert key.count(".") == (2 if project else 1), "names cannot add levels to the key"
    assert scope_of(key) == (tenant, project)
    assert scope_of(spend_key(tenant, project)) == (tenant, project)


@pytest.mark.parametrize(
    ("job_input", "project"),
    [
        ({"project": "spring"}, "spring"),
        ({}, ""),
        ({"project": None}, ""),
        ({"project": 7}, ""),
        ({"project": "x" * 65}, ""),
    ],
)
def test_only_a_short_string_names_a_project(job_input: dict[str, object], project: str) -> None:
    assert project_of(job_input) == project


def test_periods() -> None:
    at = datetime(2026, 11, 25, 23, 59, tzinfo=UTC)
    assert period_key("month", at) == NOV
    assert period_key("total", at) == "total"
