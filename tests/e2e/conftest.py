"""End-to-end fixtures: the five services as processes around their own nats-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from atelier_devstack.stack import Stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    # Short ack waits, so messages held by a killed process come back within seconds.
    s = Stack.with_free_ports(
        tmp_path / "state",
        ATELIER_WORK_ACK_WAIT_S="4",
        ATELIER_ORCHESTRATOR_ACK_WAIT_S="3",
        ATELIER_SWEEP_INTERVAL_S="0.5",
        ATELIER_PROVIDER_ROUTER_CONCURRENCY="8",
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()
