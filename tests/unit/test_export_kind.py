"""The export kind: an upload is a step given at submission, each preset a variant step of it."""

from __future__ import annotations

import msgspec
import pytest

from atelier_contracts.commands import RetryStep, SubmitJob
from atelier_contracts.common import Artifact, BlobRef
from atelier_contracts.events import JobFailed, StepDispatched, StepSucceeded
from atelier_contracts.kinds import KINDS, InvalidInput
from atelier_contracts.snapshot import JobStatus, StepStatus
from tests.unit.story_sim import Sim, succeeded

UPLOAD = "upl_" + "ab" * 12
ORIGINAL = Artifact(
    name="original", kind="image", blob=BlobRef(key="c" * 64, size=10, content_type="image/png")
)


def export(presets: list[str], attached: bool = True) -> SubmitJob:
    job_input: dict[str, object] = {"upload": UPLOAD, "presets": presets}
    if attached:
        job_input["attached"] = {UPLOAD: msgspec.to_builtins(ORIGINAL)}
    return SubmitJob(kind="export", title="Export", input=job_input)


def test_the_upload_succeeds_at_submission_and_every_preset_is_dispatched_from_it() -> None:
    sim = Sim()
    events = sim.send(export(["web-1080", "market-1500"]))
    [given] = [e for e in events if isinstance(e, StepSucceeded)]
    assert (given.step, given.outputs, given.provider) == ("source", [ORIGINAL], "upload")
    variants = [e for e in events if isinstance(e, StepDispatched)]
    assert [(v.step, v.capability, v.params["preset"]) for v in variants] == [
        ("variant-web-1080", "image.variant", "web-1080"),
        ("variant-market-1500", "image.variant", "market-1500"),
    ]
    assert all(v.inputs == {"source.original": ORIGINAL} for v in variants)  # the original, never a variant
    for v in variants:
        sim.send(succeeded(v))
    assert sim.state is not None
    assert sim.state.status == JobStatus.SUCCEEDED
    assert sim.replay() == sim.state


def test_retrying_the_upload_step_succeeds_it_again_without_work() -> None:
    sim = Sim()
    [variant] = [e for e in sim.send(export(["web-1080"])) if isinstance(e, StepDispatched)]
    sim.send(succeeded(variant))
    events = sim.send(RetryStep(step="source"))
    assert not [e for e in events if isinstance(e, StepDispatched) and e.step == "source"]
    assert sim.state is not None
    assert sim.state.steps["source"].status == StepStatus.SUCCEEDED


def test_an_export_whose_upload_was_not_resolved_fails_at_once() -> None:
    sim = Sim()
    events = sim.send(export(["web-1080"], attached=False))
    assert isinstance(events[-1], JobFailed)
    assert events[-1].error.code == "upload_not_found"


@pytest.mark.parametrize(
    ("job_input", "where"),
    [
        ({"upload": UPLOAD, "presets": []}, "presets"),
        ({"upload": UPLOAD, "presets": ["a", "a"]}, "presets"),
        ({"upload": "upl_../../etc", "presets": ["a"]}, "upload"),
        ({"upload": UPLOAD, "presets": ["Has Space"]}, "presets"),
    ],
)
def test_bad_export_inputs_are_refused_with_the_field(job_input: dict[str, object], where: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        KINDS["export"].parse(job_input)
    assert refused.value.issues[0].loc[0] == where
