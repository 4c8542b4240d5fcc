"""The local stack `make up` runs: what it restarts, and what it leaves for commands beside it."""

from __future__ import annotations

import signal
from pathlib import Path

import nats
import pytest

from atelier_contracts.runtime.localenv import with_local_stack
from atelier_devstack.natsserver import start_nats
from atelier_devstack.stack import Stack

pytestmark = pytest.mark.integration


async def test_a_dead_nats_server_is_restarted_on_its_port_with_its_store(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "state", ports={}, nats_port=0)
    stack.nats = start_nats(tmp_path / "state" / "nats")
    try:
        nc = await nats.connect(stack.nats.url)
        await nc.jetstream().add_stream(name="KEPT", subjects=["kept.>"])
        await nc.jetstream().publish("kept.one", b"1")
        await nc.close()
        assert stack.supervise() == [], "nothing died"
        assert stack.nats.proc is not None
        stack.nats.proc.send_signal(signal.SIGKILL)
        stack.nats.proc.wait(10)
        port = stack.nats.port
        assert stack.supervise() == ["nats-server"]
        assert stack.nats.port == port, "on its port"
        nc = await nats.connect(stack.nats.url)
        info = await nc.jetstream().stream_info("KEPT")
        await nc.close()
        assert info.state.messages == 1, "the store survived the restart"
    finally:
        stack.stop()


def test_commands_beside_the_stack_find_it_and_the_environment_wins(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "state", ports={}, nats_port=4999)
    stack.state_dir.mkdir(parents=True)
    stack.write_local_env()
    found = with_local_stack({"ATELIER_STATE_DIR": str(stack.state_dir)})
    assert found["ATELIER_NATS_URL"] == "nats://127.0.0.1:4999"
    assert found["ATELIER_DATABASE_URL"] == stack.database_url
    mine = with_local_stack(
        {"ATELIER_STATE_DIR": str(stack.state_dir), "ATELIER_NATS_URL": "nats://elsewhere"}
    )
    assert mine["ATELIER_NATS_URL"] == "nats://elsewhere"
    assert with_local_stack({"ATELIER_STATE_DIR": str(tmp_path / "none")}) == {
        "ATELIER_STATE_DIR": str(tmp_path / "none")
    }
