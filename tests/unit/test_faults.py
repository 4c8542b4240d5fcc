"""Fault injection is the deployment's choice, and bounded where it is allowed."""

from __future__ import annotations

import asyncio

import pytest

from atelier_contracts.faults import FaultInjection
from atelier_contracts.runtime.workpool import WorkError
from atelier_contracts.work import WorkItem
from atelier_provider_router.app.capabilities import simulate_faults


def item(simulate: dict[str, object], attempt: int = 1) -> WorkItem:
    return WorkItem(
        work_id="j.task.1", job_id="j", tenant="t", step="task", attempt=attempt,
        capability="text.generate", params={"input": {"prompt": "p", "simulate": simulate}},
    )  # fmt: skip


async def test_a_deployment_without_fault_injection_ignores_it() -> None:
    await simulate_faults(item({"fail": {"task": 1}, "final": True}), FaultInjection(enabled=False))


async def test_where_it_is_allowed_the_asked_attempts_fail() -> None:
    faults = FaultInjection(enabled=True)
    with pytest.raises(WorkError) as failed:
        await simulate_faults(item({"fail": {"task": 2}}, attempt=2), faults)
    assert failed.value.retryable
    await simulate_faults(item({"fail": {"task": 2}}, attempt=3), faults)


async def test_a_delay_is_capped_at_the_deployments_bound() -> None:
    faults = FaultInjection(enabled=True, max_delay_s=0.01)
    # Asked for an hour; the bound is 10 ms, so this ends well within the timeout.
    await asyncio.wait_for(simulate_faults(item({"slow": {"task": 1}, "slow_s": 3600}), faults), 5)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, FaultInjection(enabled=False, max_delay_s=60.0)),
        ({"ATELIER_ALLOW_SIMULATE": "1"}, FaultInjection(enabled=True, max_delay_s=60.0)),
        ({"ATELIER_ALLOW_SIMULATE": "yes"}, FaultInjection(enabled=False, max_delay_s=60.0)),
        ({"ATELIER_SIMULATE_MAX_DELAY_S": "5"}, FaultInjection(enabled=False, max_delay_s=5.0)),
    ],
)
def test_settings_come_from_the_environment(env: dict[str, str], expected: FaultInjection) -> None:
    assert FaultInjection.from_env(env) == expected


@pytest.mark.parametrize("raw", ["soon", "0", "-1", "7200"])
def test_a_bad_bound_is_a_clear_error(raw: str) -> None:
    with pytest.raises(ValueError, match="ATELIER_SIMULATE_MAX_DELAY_S"):
        FaultInjection.from_env({"ATELIER_SIMULATE_MAX_DELAY_S": raw})
