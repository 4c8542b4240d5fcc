"""A blob store that refuses: a clear error, no temporary file left, and a step that waits."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import pytest

from atelier_contracts.blobstore import BlobNotFound, BlobStoreUnavailable, FileBlobStore
from atelier_contracts.common import ProviderAttempt, Usage
from atelier_contracts.events import ProviderCalled, StepDispatched, StepRetryScheduled
from atelier_contracts.snapshot import StepStatus
from tests.unit.story_sim import T0, Sim, failed, submit


def refuse_writes(store: FileBlobStore) -> None:
    """The store's temp folder is a file: every write fails with a real OS error (ENOTDIR), even
    for root, who passes every permission check."""
    shutil.rmtree(store.root / "tmp")
    (store.root / "tmp").write_bytes(b"")


def test_writes_to_a_refusing_store_raise_and_leave_nothing(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    kept = store.put_bytes(b"before the outage", "text/plain")
    refuse_writes(store)
    with pytest.raises(BlobStoreUnavailable):
        store.put_bytes(b"during the outage", "text/plain")
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * 100_000)
    with pytest.raises(BlobStoreUnavailable):
        store.put_file(source, "application/octet-stream")
    with pytest.raises(BlobStoreUnavailable):
        store.stage()
    assert store.read_bytes(kept.key) == b"before the outage", "reads still work"
    with pytest.raises(BlobNotFound):  # a blob that is not there is not an outage
        store.open("0" * 64)


def test_a_write_cut_short_by_the_disk_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A file-size limit (RLIMIT_FSIZE) makes the write itself fail halfway, as a full disk does."""
    script = textwrap.dedent(
        f"""
        import resource, signal
        from pathlib import Path
        from atelier_contracts.blobstore import BlobStoreUnavailable, FileBlobStore
        store = FileBlobStore(Path({str(tmp_path / "blobs")!r}))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        try:
            store.put_bytes(b"y" * 100_000, "application/octet-stream")
        except BlobStoreUnavailable as exc:
            print("refused:", exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "refused:" in done.stdout, done.stdout + done.stderr
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    assert list(FileBlobStore(tmp_path / "blobs").stored()) == []


def storage_failed(d: StepDispatched, calls: int = 0) -> object:
    report = failed(d)
    attempts = [
        ProviderAttempt(
            provider="offline",
            model="m1",
            outcome="succeeded",
            started_at=T0,
            usage=Usage(units={"characters": 30.0}, cost_usd=0.01),
        )
    ] * calls
    return msgspec.structs.replace(report, code="storage_unavailable", message="disk full", attempts=attempts)


def test_a_storage_outage_makes_the_step_wait_without_using_its_attempts() -> None:
    sim = Sim()
    [story] = [e for e in sim.send(submit()) if isinstance(e, StepDispatched)]
    for round_ in range(10):  # far past max_attempts (3): a wait is not a try
        events = sim.send(storage_failed(story))  # type: ignore[arg-type]
        [retry] = [e for e in events if isinstance(e, StepRetryScheduled)]
        assert retry.waiting
        assert retry.delay_s == min(2.0**round_, 30.0)  # backing off, capped
        [story] = [e for e in events if isinstance(e, StepDispatched)]
    assert sim.state is not None
    assert sim.state.steps["story"].status != StepStatus.FAILED


def test_an_outage_that_outlasts_a_paid_call_counts_as_a_try_and_the_calls_are_recorded() -> None:
    """The worker held the provider's output as long as it would; the call was billed, so its
    retries are bounded by max_attempts rather than by the deadline alone."""
    sim = Sim()
    [story] = [e for e in sim.send(submit()) if isinstance(e, StepDispatched)]
    for _ in range(3):
        events = sim.send(storage_failed(story, calls=1))  # type: ignore[arg-type]
        retries = [e for e in events if isinstance(e, StepRetryScheduled)]
        assert all(not r.waiting for r in retries)
        dispatched = [e for e in events if isinstance(e, StepDispatched)]
        if not dispatched:
            break
        [story] = dispatched
    assert sim.state is not None
    assert sim.state.steps["story"].status == StepStatus.FAILED
    recorded = [e for e in sim.events() if isinstance(e, ProviderCalled)]
    assert len(recorded) == 3, "every provider call is recorded, its output stored or not"
    assert sum(e.call.usage.cost_usd for e in recorded) == pytest.approx(0.03)
