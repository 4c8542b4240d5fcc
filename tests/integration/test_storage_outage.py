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


async def test_steps_wait_out_a_storage_outage_and_no_call_is_paid_twice(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    """Writes refused until work holds an output it cannot store: the router keeps what the
    providers made (its work slots full, so the rest waits in the queue) and stores it when the
    store is back, with no second call; without that patience the refused attempt would be
    retried and its provider paid again."""
    async with platform(nats_server.url, database_url, tmp_path) as p:
        p.workers()
        temp = p.blobs.root / "tmp"
        shutil.rmtree(temp)
        temp.write_bytes(b"")  # from now on every write fails (ENOTDIR), as with a full disk
        try:
            jobs = [await p.submit(capability="text.generate", prompt=f"story {i}") for i in range(3)]
            jobs += [await p.submit(capability="image.generate", prompt=f"kite {i}") for i in range(2)]
            stories = [await p.submit(kind="story", title=f"Outage {i}") for i in range(2)]

            async def held() -> bool:  # work that made something it cannot store yet
                snaps = [await p.snapshot(j) for j in jobs + stories]
                return any(s is not None and s.status != "queued" for s in snaps)

            await eventually(held, within=30)  # the store comes back once work holds an output
        finally:
            temp.unlink()
            temp.mkdir()  # the store is back
        for job_id in jobs + stories:
            done = await p.wait_status(job_id, "succeeded", "failed", within=90)
            assert done.status == "succeeded", done.last_error
            events = await p.events(job_id)
            assert all(w.will_retry for w in storage_waits(events)), "a wait, never the step's end"
            for step in done.steps.values():
                paid = [
                    e for e in events
                    if isinstance(e, ProviderCalled) and e.step == step.name and e.call.outcome == "succeeded"
                ]  # fmt: skip
                assert len(paid) <= 1, f"{job_id} {step.name}: a provider paid twice for one output"
        assert list(temp.iterdir()) == [], "no temporary file stays behind"
