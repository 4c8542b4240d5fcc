"""Fixtures shared by the gateway's command tests: a gateway, a NATS client, a fake orchestrator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from atelier_devstack.natsserver import NatsServer
from tests.integration.gateway_harness import FakeOrchestrator
from tests.integration.test_gateway_api import Gateway, open_gateway


@pytest.fixture
async def gateway(nats_server: NatsServer, database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    """A gateway that waits long for the orchestrator's answer (modules may override it)."""
    async with open_gateway(nats_server.url, database_url, tmp_path, command_wait_s=10.0) as gw:
        yield gw


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def orchestrator(nc: Client, gateway: Gateway) -> FakeOrchestrator:
    # Depends on the gateway: it creates the streams at start-up.
    return await FakeOrchestrator(nc, nc.jetstream()).start()
