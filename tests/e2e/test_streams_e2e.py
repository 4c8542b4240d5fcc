"""A client follows a story job's stream through a kill -9 of its gateway (another gateway
answers the reconnect) and a restart of nats-server: the ids it received are exactly the log's
positions, each once, in order."""

from __future__ import annotations

import time

import httpx
import pytest
from httpx_sse import connect_sse

from atelier_devstack.stack import Stack
from tests.e2e.client import wait_terminal

pytestmark = pytest.mark.e2e

RETRY_S = 0.2
"""How long the client waits before it reconnects after a 503, as EventSource waits ``retry:``."""

SLOW = {
    "prompt": "a lighthouse keeper and a moth",
    "simulate": {"slow": {"cover": 1, "narration": 1}, "slow_s": 6},
}


def test_a_stream_survives_a_killed_gateway_and_a_restarted_nats_server(stack: Stack) -> None:
    other = stack.url_of(stack.add_replica("gateway"))
    received: list[str] = []
    kinds: list[str] = []
    base = stack.gateway_url
    with httpx.Client(timeout=httpx.Timeout(10, read=30)) as client:
        r = client.post(f"{base}/v1/jobs", json={"kind": "story", "title": "Followed", "input": SLOW})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        disruptions = ["gateway", "nats"]
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, f"the stream never came back: {kinds}"
            headers = {"Last-Event-ID": received[-1]} if received else {}
            try:
                with connect_sse(client, "GET", f"{base}/v1/jobs/{job_id}/stream", headers=headers) as source:
                    if source.response.status_code == 204:
                        break
                    if source.response.status_code == 503:  # NATS not back yet
                        time.sleep(RETRY_S)
                        continue
                    for sse in source.iter_sse():
                        if not sse.data or sse.event == "progress":
                            continue
                        received.append(sse.id)
                        kinds.append(sse.event)
                        if disruptions and len(received) >= 4:  # the gateway, then on the next event nats
                            what = disruptions.pop(0)
                            disrupt(stack, what)
                            if what == "gateway":
                                base = other  # the client's next connection reaches another gateway
                if kinds and kinds[-1] in ("succeeded", "failed", "cancelled"):
                    break
            except httpx.TransportError:
                continue  # the gateway died under us: reconnect with the last id we got
        assert not disruptions, "both disruptions happened while the job ran"
        assert base == other
        assert kinds[-1] == "succeeded"
        with httpx.Client(base_url=other, timeout=10) as survivor:
            assert wait_terminal(survivor, job_id)["status"] == "succeeded"
        positions = [e["position"] for e in client.get(f"{other}/v1/jobs/{job_id}/events").json()["events"]]
    assert received == positions, "each event once, in order, none missing"
    assert len(set(received)) == len(received)


def disrupt(stack: Stack, what: str) -> None:
    if what == "gateway":
        stack.kill("gateway")  # kill -9 mid-stream; it stays dead
    else:
        assert stack.nats is not None
        stack.nats.stop()
        stack.nats.start()
