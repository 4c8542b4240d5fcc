"""A client follows a story job's stream through a kill -9 of the gateway and a restart of
nats-server: the ids it received are exactly the log's positions, each once, in order."""

from __future__ import annotations

import time

import httpx
import pytest
from httpx_sse import connect_sse

from atelier_devstack.stack import Stack
from tests.e2e.client import wait_terminal

pytestmark = pytest.mark.e2e

RETRY_S = 0.2

SLOW = {
    "prompt": "a lighthouse keeper and a moth",
    "simulate": {"slow": {"cover": 1, "narration": 1}, "slow_s": 6},
}


def test_a_stream_survives_a_killed_gateway_and_a_restarted_nats_server(stack: Stack) -> None:
    received: list[str] = []
    kinds: list[str] = []
    with httpx.Client(base_url=stack.gateway_url, timeout=httpx.Timeout(10, read=30)) as client:
        r = client.post("/v1/jobs", json={"kind": "story", "title": "Followed", "input": SLOW})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        path = f"/v1/jobs/{job_id}/stream"
        disruptions = ["gateway", "nats"]
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, f"the stream never came back: {kinds}"
            headers = {"Last-Event-ID": received[-1]} if received else {}
            try:
                with connect_sse(client, "GET", path, headers=headers) as source:
                    if source.response.status_code == 204:
                        break
                    if source.response.status_code == 503:  # NATS not back yet: as EventSource
                        time.sleep(RETRY_S)  # does, try again after the stream's retry: time
                        continue
                    for sse in source.iter_sse():
                        if not sse.data or sse.event == "progress":
                            continue
                        received.append(sse.id)
                        kinds.append(sse.event)
                        if disruptions and len(received) >= 4:  # the gateway, then on the next event nats
                            disrupt(stack, disruptions.pop(0))
                if kinds and kinds[-1] in ("succeeded", "failed", "cancelled"):
                    break
            except httpx.TransportError:
                continue  # the gateway died under us: reconnect with the last id we got
        assert not disruptions, "both disruptions happened while the job ran"
        assert kinds[-1] == "succeeded"
        job = wait_terminal(client, job_id)
        assert job["status"] == "succeeded"
        positions = [e["position"] for e in client.get(f"/v1/jobs/{job_id}/events").json()["events"]]
    assert received == positions, "each event once, in order, none missing"
    assert len(set(received)) == len(received)


def disrupt(stack: Stack, what: str) -> None:
    if what == "gateway":
        stack.kill("gateway")  # kill -9 mid-stream
        stack.restart("gateway")
    else:
        assert stack.nats is not None
        stack.nats.stop()
        stack.nats.start()
