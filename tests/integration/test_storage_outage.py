"""A blob store that refuses writes for a while: steps wait and resume, nothing fails, every
provider call is recorded, and no temporary file stays behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from atelier_contracts.events import JobEvent, ProviderCalled, StepFailed
from atelier_devstack.natsserver import NatsServer
from tests.integration.harness import platform
from tests.support import eventually

pytestmark = pytest.mark.integration


def storage_waits(events: list[JobEvent]) -> list[StepFailed]:
    return [e for e in events if isinstance(e, StepFailed) and e.error.code == "storage_unavailable"]


async def test_steps_wait_out_a_storage_outage_and_every_call_is_recorded(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with platform(nats_server.url, database_url, tmp_path) as p:
        p.workers()
        temp = p.blobs.root / "tmp"
        shutil.rmtree(temp)
        temp.write_bytes(b"")  # from now on every write fails (ENOTDIR), as with a full disk

        jobs = [await p.submit(capability="text.generate", prompt=f"story {i}") for i in range(3)]
        jobs += [await p.submit(capability="image.generate", prompt=f"kite {i}") for i in range(2)]

        async def all_waiting() -> bool:
            return all([storage_waits(await p.events(j)) for j in jobs])

        await eventually(all_waiting, within=30)
        temp.unlink()
        temp.mkdir()  # the store is back
        for job_id in jobs:
            done = await p.wait_status(job_id, "succeeded", "failed", within=60)
            assert done.status == "succeeded", done.last_error
            events = await p.events(job_id)
            waits = storage_waits(events)
            assert waits
            assert all(w.will_retry for w in waits), "a wait, never the step's end"
            calls = [e for e in events if isinstance(e, ProviderCalled) and e.call.outcome == "succeeded"]
            assert len(calls) == len(waits) + 1, "each call is recorded, its output stored or not"
        assert list(temp.iterdir()) == [], "no temporary file stays behind"
