"""A job that plans 150 steps from a step's result, through the services, with the orchestrator
killed (-9) in the middle of appending the plan: every step runs exactly once, and the rebuild
equals the live read model."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import nats
import pytest

from atelier_contracts.events import StepsPlanned, StepSucceeded
from atelier_devstack.stack import Stack
from atelier_orchestrator.adapters.eventstore import JetStreamEventStore
from tests.e2e.client import e2e_stack, running, step_successes, verify_rebuild, wait_terminal

pytestmark = pytest.mark.e2e

PICTURES = 150


class _Event(msgspec.Struct):
    type: str = ""
    step: str = ""


class _Record(msgspec.Struct):
    event: _Event


class _Commit(msgspec.Struct):
    job_id: str
    events: list[_Record]


@pytest.fixture
def small_commits(tmp_path: Path) -> Iterator[Stack]:
    # Commits of at most 2 KiB: the plan of 150 pictures takes dozens of commits, each appended
    # after the one before is stored, so the kill lands well inside the plan.
    with running(e2e_stack(tmp_path, ATELIER_MAX_COMMIT_BYTES="2048")) as s:
        yield s


async def kill_mid_plan(stack: Stack, client: httpx.AsyncClient) -> tuple[str, int]:
    """Submit the gallery and kill the orchestrator once part of its plan is in the log; the
    job id, and how many steps the log had planned (-1: the plan was whole after all)."""
    decode = msgspec.json.Decoder(_Commit)
    nc = await nats.connect(f"nats://127.0.0.1:{stack.nats_port}")
    killed = asyncio.Event()
    job_id = ""

    async def on_commit(msg: nats.aio.msg.Msg) -> None:
        commit = decode.decode(msg.data)
        if killed.is_set() or commit.job_id != job_id:
            return
        if any(r.event.type == "steps_planned" for r in commit.events):
            os.kill(stack.procs["orchestrator"].pid, signal.SIGKILL)
            killed.set()

    await nc.subscribe("atelier.job.>", cb=on_commit)
    body = {
        "kind": "gallery",
        "title": "Foxes",
        "input": {"prompt": "foxes in the snowy woods", "count": PICTURES, "size": 256},
    }
    r = await client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    await asyncio.wait_for(killed.wait(), 60)
    stack.procs["orchestrator"].wait(10)
    # What the log holds now: part of the plan, and the ideas step not yet succeeded.
    store = JetStreamEventStore(nc.jetstream(), cache_size=0)
    planned, ideas_done = 0, False
    async for commit, _ in store.read(job_id):
        for record in commit.events:
            if isinstance(record.event, StepsPlanned):
                planned += len(record.event.steps)
            ideas_done |= isinstance(record.event, StepSucceeded) and record.event.step == "ideas"
    await nc.close()
    return job_id, planned if not ideas_done else -1


def test_a_plan_of_150_steps_survives_kill_9_and_runs_each_step_once(
    small_commits: Stack, tmp_path: Path
) -> None:
    stack = small_commits

    async def scenario() -> tuple[str, int]:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=10) as client:
            return await kill_mid_plan(stack, client)

    job_id, planned = asyncio.run(scenario())
    assert 0 < planned < PICTURES, f"killed in the middle of the plan ({planned} of {PICTURES} planned)"
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        stack.restart("orchestrator")
        job = wait_terminal(client, job_id, within=300)
        assert job["status"] == "succeeded", job
        names = [s["name"] for s in job["steps"]]
        assert names == ["ideas", *(f"picture_{i:03d}" for i in range(1, PICTURES + 1)), "package"]
        assert step_successes(client, job_id) == dict.fromkeys(names, 1), "each step exactly once"
        package = next(a for a in job["assets"] if a["step"] == "package")
        assert package["kind"] == "bundle"

    verify_rebuild(stack, tmp_path)
