"""A session through the services: rounds are child jobs that receive the session's context as it
stood when each began and the candidate adopted last; each round's end, candidates and adoption
are recorded; context changes are events; the rebuild equals the live read model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atelier_devstack.stack import Stack
from tests.e2e.client import e2e_stack, running, verify_rebuild, wait_terminal
from tests.support import eventually_sync

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running(e2e_stack(tmp_path)) as s:
        yield s


def round_ended(client: httpx.Client, session_id: str, number: int) -> dict[str, Any] | None:
    session = client.get(f"/v1/sessions/{session_id}").json()
    rounds = session["rounds"]
    if len(rounds) >= number and rounds[number - 1]["status"] != "running":
        return session
    return None


def test_a_session_runs_rounds_with_its_context_and_adopted_candidate(stack: Stack, tmp_path: Path) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        created = client.post(
            "/v1/sessions",
            json={"kind": "task", "title": "Teapot shots", "context": {"lighting": "soft window light"}},
        )
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]
        assert created.json()["context"] == {"lighting": "soft window light"}

        first = client.post(
            f"/v1/sessions/{session_id}/rounds",
            json={"input": {"prompt": "a teapot on a table", "capability": "image.generate"}},
        )
        assert first.status_code == 202, first.text
        [round_1] = first.json()["rounds"]
        job = wait_terminal(client, round_1["job_id"])
        assert job["status"] == "succeeded", job
        assert job["input"]["session"] == {"context": {"lighting": "soft window light"}}
        assert job["origin"] == {"session": session_id, "round": 1, "schedule": None, "fire_time": None}

        session = eventually_sync(lambda: round_ended(client, session_id, 1))
        [candidate] = session["rounds"][0]["candidates"]
        assert candidate["asset_id"] in {a["id"] for a in job["assets"]}

        adopted = client.post(
            f"/v1/sessions/{session_id}/rounds/1/adopt", json={"asset_id": candidate["asset_id"]}
        )
        assert adopted.status_code == 200, adopted.text
        assert adopted.json()["adopted"]["asset_id"] == candidate["asset_id"]

        changed = client.patch(
            f"/v1/sessions/{session_id}",
            json={"context": {"color_tone": "warm", "extra": {"background": "marble"}}},
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["context"] == {
            "lighting": "soft window light", "color_tone": "warm", "extra": {"background": "marble"}
        }  # fmt: skip

        second = client.post(
            f"/v1/sessions/{session_id}/rounds",
            json={"input": {"prompt": "the teapot, closer", "capability": "image.generate"}},
        )
        round_2 = second.json()["rounds"][1]
        assert round_2["base"]["asset_id"] == candidate["asset_id"]
        job_2 = wait_terminal(client, round_2["job_id"])
        assert job_2["input"]["session"]["context"]["color_tone"] == "warm"
        assert job_2["input"]["session"]["base"]["asset_id"] == candidate["asset_id"]
        eventually_sync(lambda: round_ended(client, session_id, 2))

        closed = client.post(f"/v1/sessions/{session_id}/close")
        assert closed.json()["status"] == "closed"
        refused = client.post(
            f"/v1/sessions/{session_id}/rounds", json={"input": {"prompt": "x", "capability": "tts"}}
        )
        assert refused.status_code == 409
        assert refused.json()["code"] == "session_closed"
        listed = client.get("/v1/sessions", params={"status": "closed"}).json()["items"]
        assert [s["id"] for s in listed] == [session_id]

    verify_rebuild(stack, tmp_path)
