"""GET /v1/jobs: every filter alone and combined, every sort, keyset pages, cursors, Link headers.

Expected answers come from filtering and sorting the same rows in Python.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from atelier_contracts import ids
from atelier_contracts.snapshot import JobView
from atelier_devstack.natsserver import NatsServer
from tests.integration.gateway_harness import later, put_jobs, snapshot
from tests.integration.test_gateway_api import BASE, T0, Gateway, assert_problem, open_gateway

pytestmark = pytest.mark.integration

Check = Callable[[JobView], bool]


@pytest.fixture
async def gateway(nats_server: NatsServer, database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with open_gateway(nats_server.url, database_url, tmp_path) as gw:
        yield gw


def catalogue() -> list[JobView]:
    """13 jobs with repeated priorities and instants, so ties must be broken by id."""
    statuses = ["queued", "running", "failed", "succeeded", "cancelled"]
    titles = ["The Fox", "fox and lantern", "Owl", "FOXGLOVE", "Moon"]
    tag_sets: list[list[str]] = [["night"], ["night", "fox"], [], ["fox"], ["night", "fox", "x"]]
    jobs = []
    for i in range(13):
        jobs.append(
            snapshot(
                ids.new_job_id(),
                status=statuses[i % 5],
                kind="story" if i % 3 else "task",
                title=titles[i % 5],
                priority=i % 4,
                tags=tag_sets[i % 5],
                created_at=later(i // 2),  # pairs share an instant
                updated_at=later(100 - (i % 3)),
            )
        )
    return jobs


@pytest.fixture
async def listed(gateway: Gateway) -> list[JobView]:
    jobs = catalogue()
    await put_jobs(gateway.engine, jobs)
    await put_jobs(
        gateway.engine, [snapshot(ids.new_job_id(), title="The Fox", tags=["night"])], deleted=True
    )
    return jobs


async def ids_of(gateway: Gateway, params: dict[str, Any]) -> list[str]:
    response = await gateway.client.get("/v1/jobs", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["items"])
    assert not body["has_more"]
    return [item["id"] for item in body["items"]]


def expected(jobs: list[JobView], check: Check, sort: str = "-created_at") -> list[str]:
    field = sort.lstrip("-")
    chosen = sorted((j for j in jobs if check(j)), key=lambda j: (getattr(j, field), j.id))
    if sort.startswith("-"):
        chosen.reverse()
    return [j.id for j in chosen]


FILTERS: list[tuple[dict[str, Any], Check]] = [
    ({}, lambda j: True),
    ({"status": "failed"}, lambda j: j.status == "failed"),
    ({"status": ["queued", "running"]}, lambda j: j.status in {"queued", "running"}),
    ({"kind": "task"}, lambda j: j.kind == "task"),
    ({"priority": [1, 3]}, lambda j: j.priority in {1, 3}),
    ({"priority_min": 2}, lambda j: j.priority >= 2),
    ({"priority_max": 1}, lambda j: j.priority <= 1),
    ({"priority_min": 1, "priority_max": 2}, lambda j: 1 <= j.priority <= 2),
    ({"tag": "fox"}, lambda j: "fox" in j.tags),
    ({"tag": ["night", "fox"]}, lambda j: {"night", "fox"} <= set(j.tags)),
    ({"created_after": later(2).isoformat()}, lambda j: j.created_at >= later(2)),
    ({"created_before": later(2).isoformat()}, lambda j: j.created_at < later(2)),
    ({"q": "fox"}, lambda j: "fox" in j.title.lower()),
    ({"q": "FOX"}, lambda j: "fox" in j.title.lower()),
    ({"q": "%"}, lambda j: False),
    (
        {
            "status": ["queued", "running", "cancelled"],
            "tag": "night",
            "priority_max": 2,
            "created_after": later(1).isoformat(),
            "created_before": later(6).isoformat(),
            "q": "o",
        },
        lambda j: (
            j.status in {"queued", "running", "cancelled"}
            and "night" in j.tags
            and j.priority <= 2
            and later(1) <= j.created_at < later(6)
            and "o" in j.title.lower()
        ),
    ),
    ({"kind": "story", "tag": "x", "status": "succeeded"}, lambda j: False),
]


@pytest.mark.parametrize(("params", "check"), FILTERS)
async def test_filters_alone_and_combined(
    gateway: Gateway, listed: list[JobView], params: dict[str, Any], check: Check
) -> None:
    assert await ids_of(gateway, params) == expected(listed, check)


async def test_datetimes_in_other_offsets_and_naive_ones_mean_the_same_instant(
    gateway: Gateway, listed: list[JobView]
) -> None:
    want = expected(listed, lambda j: j.created_at >= later(3))
    plus_two = (later(3) + timedelta(hours=2)).replace(tzinfo=None).isoformat() + "+02:00"
    assert await ids_of(gateway, {"created_after": plus_two}) == want
    assert await ids_of(gateway, {"created_after": later(3).replace(tzinfo=None).isoformat()}) == want


SORTS = ["-created_at", "created_at", "-priority", "priority", "-updated_at", "updated_at"]


@pytest.mark.parametrize("sort", SORTS)
async def test_every_sort_pages_through_without_gaps_or_repeats(
    gateway: Gateway, listed: list[JobView], sort: str
) -> None:
    params: dict[str, Any] = {
        "sort": sort,
        "limit": 3,
        "status": ["queued", "running", "failed", "succeeded"],
    }
    seen: list[str] = []
    pages = 0
    response = await gateway.client.get("/v1/jobs", params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        seen.extend(item["id"] for item in body["items"])
        if not body["has_more"]:
            assert body["next_cursor"] is None
            assert "link" not in response.headers
            break
        link = response.headers["link"]
        assert link.endswith('>; rel="next"')
        url = urlsplit(link[1 : link.index(">")])
        assert f"{url.scheme}://{url.netloc}{url.path}" == f"{BASE}/v1/jobs"
        query = parse_qs(url.query)
        assert query["cursor"] == [body["next_cursor"]]
        assert query["status"] == params["status"]  # the filters travel with the link
        response = await gateway.client.get(link[1 : link.index(">")])
    assert pages > 2
    assert len(seen) == len(set(seen))
    assert seen == expected(listed, lambda j: j.status != "cancelled", sort)


async def test_rows_added_between_pages_do_not_shift_the_next_page(
    gateway: Gateway, listed: list[JobView]
) -> None:
    first = (await gateway.client.get("/v1/jobs", params={"limit": 4})).json()
    # A newer job would push every row one place down under OFFSET paging.
    await put_jobs(gateway.engine, [snapshot(ids.new_job_id(), created_at=later(60))])
    second = (
        await gateway.client.get("/v1/jobs", params={"limit": 4, "cursor": first["next_cursor"]})
    ).json()
    everything = expected(listed, lambda j: True)
    assert [i["id"] for i in first["items"] + second["items"]] == everything[:8]


def _cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("cursor", "sort"),
    [
        ("not-a-cursor!", "-created_at"),
        ("e30", "-created_at"),  # {}
        (_cursor([1, 2]), "-created_at"),
        (_cursor({"s": "-priority", "v": 3, "id": "job_x"}), "-created_at"),
        (_cursor({"s": "-priority", "v": "3", "id": "job_x"}), "-priority"),
        (_cursor({"s": "-created_at", "v": "yesterday", "id": "job_x"}), "-created_at"),
        (_cursor({"s": "-created_at", "v": T0.isoformat(), "id": 7}), "-created_at"),
        (_cursor({"s": "-created_at", "v": T0.isoformat(), "id": "j", "x": 1}), "-created_at"),
    ],
)
async def test_tampered_cursors_are_validation_problems(gateway: Gateway, cursor: str, sort: str) -> None:
    response = await gateway.client.get("/v1/jobs", params={"cursor": cursor, "sort": sort})
    assert_problem(response, 422, "validation_failed")


async def test_a_cursor_of_one_sort_is_refused_by_another(gateway: Gateway, listed: list[JobView]) -> None:
    cursor = (await gateway.client.get("/v1/jobs", params={"limit": 2})).json()["next_cursor"]
    response = await gateway.client.get("/v1/jobs", params={"cursor": cursor, "sort": "priority"})
    assert_problem(response, 422, "validation_failed")


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "title"},
        {"priority": 10},
        {"priority_min": -1},
        {"priority_min": 5, "priority_max": 2},
        {"created_after": "soon"},
        {"tag": "x" * 51},
        {"q": ""},
        {"limit": 201},
    ],
)
async def test_bad_list_parameters_are_validation_problems(gateway: Gateway, params: dict[str, Any]) -> None:
    assert_problem(await gateway.client.get("/v1/jobs", params=params), 422, "validation_failed")


def test_the_catalogue_has_ties_to_break() -> None:
    jobs = catalogue()
    assert len({j.created_at for j in jobs}) < len(jobs)
    assert len({j.priority for j in jobs}) < len(jobs)
    assert all(isinstance(j.created_at, datetime) for j in jobs)
