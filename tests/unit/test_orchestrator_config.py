"""The orchestrator's settings from the environment."""

from __future__ import annotations

import pytest

from atelier_orchestrator.config import Settings


def test_one_variable_sets_both_concurrencies_and_each_has_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATELIER_ORCHESTRATOR_CONCURRENCY", "8")
    assert (Settings.from_env().command_concurrency, Settings.from_env().report_concurrency) == (8, 8)
    monkeypatch.setenv("ATELIER_ORCHESTRATOR_REPORT_CONCURRENCY", "32")
    assert (Settings.from_env().command_concurrency, Settings.from_env().report_concurrency) == (8, 32)
