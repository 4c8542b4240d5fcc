"""Budgets through the API and the platform: set over HTTP, enforced by the router, seen in the log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atelier_contracts.common import Usage
from atelier_contracts.events import BudgetAlerted, ProviderCalled
from atelier_devstack.natsserver import NatsServer
from atelier_provider_router.app.capabilities import handlers as ai_handlers
from atelier_provider_router.app.matrix import parse
from atelier_provider_router.app.ports import CallOptions, TextRequest, TextResult
from atelier_provider_router.app.router import Router
from atelier_provider_router.main import shared_gate
from tests.integration.harness import platform
from tests.integration.test_gateway_api import Gateway, assert_problem, open_gateway

pytestmark = pytest.mark.integration

MATRIX = """
[providers.paid]
adapter = "offline"
[[capabilities."text.generate"]]
provider = "paid"
model = "p-1"
price = { input_token = 0.001, output_token = 0.0001 }
"""


class Paid:
    """Bills 100 + 200 tokens a call: $0.12 at the matrix's prices (the worst case of a call,
    with its 1,200-token output cap, is $0.168)."""

    name = "paid"
    capabilities = frozenset({"text.generate"})

    async def generate_text(self, request: TextRequest, options: CallOptions) -> TextResult:
        usage = Usage(units={"input_tokens": 100, "output_tokens": 200})
        return TextResult(text="# A tale\n\nShort.", model=options.model, usage=usage)


@pytest.fixture
async def gateway(nats_server: NatsServer, database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with open_gateway(nats_server.url, database_url, tmp_path, tenant="t1") as gw:
        yield gw


async def test_budgets_are_set_listed_and_removed(gateway: Gateway) -> None:
    client = gateway.client
    assert (await client.get("/v1/budgets")).json() == {"items": []}
    tenant = await client.put("/v1/budgets/tenant", json={"limit_usd": 50})
    assert tenant.status_code == 200, tenant.text
    project = await client.put(
        "/v1/budgets/projects/spring catalog", json={"limit_usd": 5, "period": "total"}
    )
    assert project.json()["remaining_usd"] == 5
    items = (await client.get("/v1/budgets")).json()["items"]
    assert [(b["scope"], b["project"], b["limit_usd"], b["period"]) for b in items] == [
        ("tenant", None, 50, "month"),
        ("project", "spring catalog", 5, "total"),
    ]
    assert items[0]["current_period"].count("-") == 1, "a monthly budget counts this month (YYYY-MM)"
    assert (items[0]["spent_usd"], items[0]["reserved_usd"], items[0]["alerted"]) == (0, 0, False)

    assert (await client.delete("/v1/budgets/projects/spring catalog")).status_code == 204
    assert_problem(await client.delete("/v1/budgets/projects/spring catalog"), 404, "budget_not_found")
    assert [b["scope"] for b in (await client.get("/v1/budgets")).json()["items"]] == ["tenant"]


@pytest.mark.parametrize(
    "body",
    [
        {"limit_usd": 0},
        {"limit_usd": -1},
        {"limit_usd": "ten"},
        {"limit_usd": 5, "period": "week"},
        {"cap": 5},
    ],
)
async def test_an_invalid_budget_is_refused_with_a_problem(gateway: Gateway, body: dict[str, object]) -> None:
    assert_problem(await gateway.client.put("/v1/budgets/tenant", json=body), 422, "validation_failed")


async def test_a_project_over_budget_fails_its_job_and_the_alert_is_in_the_log(
    nats_server: NatsServer, database_url: str, gateway: Gateway, tmp_path: Path
) -> None:
    """$0.29: the second job's worst case still fits (0.12 + 0.168), it crosses 80 % (0.24), and
    the third's does not fit (0.24 + 0.168)."""
    response = await gateway.client.put("/v1/budgets/projects/spring", json={"limit_usd": 0.29})
    assert response.status_code == 200, response.text
    async with platform(nats_server.url, database_url, tmp_path) as p:
        router = Router(parse(MATRIX), {"paid": Paid()}, gate=shared_gate(p.nc))  # type: ignore[dict-item]
        p.pool("ai", ai_handlers(router, p.blobs), concurrency=1)
        first, second, third = [
            await p.submit(capability="text.generate", project="spring", prompt=f"tale {i}") for i in range(3)
        ]
        for job_id in (first, second):
            await p.wait_status(job_id, "succeeded")
        refused = await p.wait_status(third, "failed")
        alerts = {
            job_id: [e for e in await p.events(job_id) if isinstance(e, BudgetAlerted)]
            for job_id in (first, second, third)
        }
        calls = [e for e in await p.events(third) if isinstance(e, ProviderCalled)]

    error = refused.steps["task"].last_error
    assert error is not None
    assert error.code == "budget_exceeded"
    assert "project 'spring' budget would be exceeded" in error.message
    assert refused.steps["task"].run_attempts == 1, "a budget refusal is final: no retries"
    assert [c.call.error_class for c in calls] == ["over_budget"]
    assert (len(alerts[first]), len(alerts[second]), len(alerts[third])) == (0, 1, 0)
    alert = alerts[second][0].alert
    assert (alert.project, alert.limit_usd, alert.spent_usd) == ("spring", 0.29, pytest.approx(0.24))

    budget = (await gateway.client.get("/v1/budgets")).json()["items"][0]
    assert budget["project"] == "spring"
    assert budget["spent_usd"] == pytest.approx(0.24)
    assert budget["reserved_usd"] == 0
    assert budget["alerted"] is True


async def test_budgets_answer_503_when_nats_is_down(gateway: Gateway, nats_server: NatsServer) -> None:
    assert (await gateway.client.get("/v1/budgets")).status_code == 200
    nats_server.stop()
    assert_problem(await gateway.client.get("/v1/budgets"), 503, "service_unavailable")
    assert_problem(
        await gateway.client.put("/v1/budgets/tenant", json={"limit_usd": 5}), 503, "service_unavailable"
    )


@pytest.mark.parametrize("project", ["", "x" * 65, 7, ["a"]])
async def test_a_job_names_its_project_with_a_short_string(gateway: Gateway, project: object) -> None:
    body = {"kind": "story", "title": "t", "input": {"prompt": "p", "project": project}}
    assert_problem(await gateway.client.post("/v1/jobs", json=body), 422, "validation_failed")
