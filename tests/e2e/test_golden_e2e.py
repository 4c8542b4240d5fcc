"""The studio's golden run (``atelier eval golden``) on a small subset, through the services: every
case succeeds, the CSV has a row per case, and the look held on the pixels (the light read back
within tolerance of the session's look, the logo not moved)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from atelier_devstack import golden
from tests.e2e.client import e2e_stack, running

pytestmark = pytest.mark.e2e


def test_the_golden_subset(tmp_path: Path) -> None:
    cases = [c for c in golden.CASES if c.product in {"shoe", "watch", "cup"}]
    out = tmp_path / "golden.csv"
    with running(e2e_stack(tmp_path)) as stack:
        rows, summary = golden.run(stack.gateway_url, cases, out, size=600, candidates=4)
    assert [r.error for r in rows] == ["", "", ""]
    assert summary.failure_rate == 0.0
    assert summary.max_kelvin_error <= 150, summary
    assert summary.max_direction_error_deg <= 5, summary
    assert summary.max_logo_drift_px == 0, summary
    assert all(r.kelvin_error is not None and r.logo_drift_px is not None for r in rows), rows
    with out.open() as fh:
        written = list(csv.DictReader(fh))
    assert [r["case"] for r in written] == ["cup", "shoe", "watch"]
    assert all(1 <= int(r["judge_pick"]) <= 4 for r in written)
    assert "P95 first image" in summary.line()
