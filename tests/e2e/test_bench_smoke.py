"""The benchmarks still run from end to end (tiny sizes, no figures judged: speed is measured by
``make bench``, not asserted in tests)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def run_bench(module: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_the_end_to_end_benchmark_runs() -> None:
    out = run_bench("bench.e2e", BENCH_N="30", BENCH_OPEN_S="1", BENCH_RATE="20", BENCH_ALONE="2")
    for line in ("raw JetStream round trip", "burst of 30, submitted one at a time", "CPU per job:",
                 "256 submits in flight", "open loop at 20/s", "one job alone, priority 8",
                 "rebuild of this run's log"):  # fmt: skip
        assert line in out, out
    assert "not succeeded: 0" in out, out
    # Every figure also as a ratio to the raw round trip of the same run (issue 8).
    ratio = r"\([\d,.]+x"
    for figure in (
        r"raw JetStream round trip \(publish → worker → result\), one at a time: [\d,]+/s  1\.00",
        r"submitted one at a time: [\d,]+ jobs/s  [\d.]+x raw",
        rf"CPU per job: .*all [\d.]+ ms {ratio} a raw round trip's\)",
        rf"JobSucceeded → projected p50 [\d.]+ ms {ratio} raw\), p95 [\d.]+ ms {ratio} raw\)",
        rf"API shows succeeded p50 [\d.]+ ms {ratio} raw's open loop\), p95 [\d.]+ ms {ratio}\)",
        rf"POST p50 [\d.]+ ms {ratio} raw\), p95 [\d.]+ ms {ratio} raw\)",
        rf"priority 8: submit → succeeded p50 [\d.]+ ms {ratio} raw\)",
        rf"events/s {ratio} raw\)",
    ):
        assert re.search(figure, out), (figure, out)


def test_the_event_log_benchmark_runs() -> None:
    out = run_bench("bench", BENCH_N="40")
    for line in (
        "raw js.publish",
        "100 commits per transaction",
        "projector cost per commit",
        "rebuild of this run's log",
    ):
        assert line in out, out


def test_the_media_benchmark_runs() -> None:
    out = run_bench("bench.media", BENCH_MEDIA_N="1", BENCH_MEDIA_MP="1")
    for way in ("naive:", "naive-full:", "sanitise-4096:", "sanitise-2048:"):
        assert way in out, out


def test_the_package_benchmark_runs() -> None:
    out = run_bench("bench.package", BENCH_PACKAGE_MB="8", BENCH_PACKAGE_FILES="2")
    assert "GET /v1/jobs/{id}/package:" in out, out


def test_the_composite_benchmark_runs() -> None:
    out = run_bench("bench.composite", BENCH_COMPOSITE_S="3", BENCH_COMPOSITE_SIZE="160x90")
    assert "s per minute of video" in out, out


def test_the_blob_store_benchmark_runs() -> None:
    out = run_bench("bench.blobstore", BENCH_BLOB_N="2", BENCH_BLOB_SIZES_KIB="64,256")
    assert "object store put" in out, out


def test_the_progress_benchmark_runs() -> None:
    out = run_bench("bench.progress", BENCH_TICKS="20")
    assert "ratio log / bucket:" in out, out


def test_the_streams_benchmark_runs() -> None:
    out = run_bench("bench.streams", BENCH_CLIENTS="10")
    assert "one commit → 10 clients of its job" in out, out


def test_the_faststream_seam_benchmark_runs() -> None:
    out = run_bench("bench.faststream_seam", BENCH_MESSAGES="50")
    assert "FastStream, nack on error, pull batch 16" in out, out


def test_the_episode_benchmark_runs() -> None:
    out = run_bench(
        "bench.episode", BENCH_EPISODE_SIZE="160x90", BENCH_EPISODE_RUNS="1", BENCH_EPISODE_REPLICAS="0"
    )
    assert "one of each service: wall" in out
    assert "export after one shot extended" in out, out
    assert "(1 clip filmed" in out, out
