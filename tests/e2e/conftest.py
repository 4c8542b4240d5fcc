"""End-to-end fixtures: the five services as processes around their own nats-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from atelier_devstack.stack import Stack
from tests.e2e.client import e2e_stack, running


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running(e2e_stack(tmp_path)) as s:
        yield s
