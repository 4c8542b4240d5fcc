"""An episode's composite as the gateway keeps it (``app/composites.py``): its status from its
last export, its takes, an edited timeline, which cuts an export films again, and the package."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from atelier_contracts import ids
from atelier_contracts.common import Artifact, BlobRef
from atelier_contracts.snapshot import JobView, StepView
from atelier_gateway.app import composites as cuts
from atelier_gateway.app.composites import Composite, Cut, CutEdit, Export, Source
from atelier_gateway.app.errors import InputInvalid, ShotNotFound, TakeNotFound

T0 = datetime(2026, 12, 2, tzinfo=UTC)


def clip(job: str, step: str, seconds: float) -> StepView:
    blob = BlobRef(key=ids.asset_id(job, step, "clip")[4:].ljust(64, "0"), size=1, content_type="video/mp4")
    art = Artifact(name="clip", kind="video", blob=blob, meta={"duration_s": seconds})
    return StepView(name=step, capability="video.from_image", status="succeeded", outputs=[art])


def job(job_id: str, status: str, steps: list[StepView]) -> JobView:
    return JobView(
        id=job_id,
        tenant="t1",
        kind="cut",
        title="t",
        status=status,
        input={},
        steps={s.name: s for s in steps},
        created_at=T0,
        updated_at=T0,
    )


def composite(fps: int = 24) -> Composite:
    sources = tuple(
        Source(shot=i, still=ids.asset_id("job_r", f"image_{i:03d}", "image"), voice=None, line=f"line {i}",
               move="zoom_in", prompt=f"shot {i}", duration_s=3.0, size=512, look="cel")
        for i in (1, 2, 3)
    )  # fmt: skip
    timeline = tuple(
        Cut(shot=i, duration_s=3.0, take=ids.asset_id("job_r", f"clip_{i:03d}", "clip")) for i in (1, 2, 3)
    )
    return Composite(
        episode_id="epi_1",
        project_id="prj_1",
        render_job="job_r",
        sources=sources,
        timeline=timeline,
        exports=(Export(job_id="job_r", timeline=timeline),),
        fps=fps,
        width=320,
        height=180,
        created_at=T0,
        updated_at=T0,
    )


def render(seconds: float = 3.0) -> JobView:
    return job("job_r", "succeeded", [clip("job_r", f"clip_{i:03d}", seconds) for i in (1, 2, 3)])


def test_made_from_a_render_it_is_done_and_every_shot_has_its_first_take() -> None:
    made = composite()
    jobs = {"job_r": render()}
    assert cuts.status(made, jobs) == "done"
    assert [(t.shot, t.number) for t in cuts.takes(made, jobs)] == [(1, 1), (2, 1), (3, 1)]
    assert cuts.status(made, {}) == "failed", "a deleted export's job is no export in flight"


def test_an_edit_reorders_trims_and_extends_and_only_the_extension_is_filmed() -> None:
    made, jobs = composite(), {"job_r": render()}
    known = cuts.takes(made, jobs)
    edits = [CutEdit(shot=3), CutEdit(shot=1, duration_s=2.0), CutEdit(shot=2, duration_s=4.5)]
    edited = cuts.edited(made, edits, known, T0)
    assert edited.version == made.version + 1
    assert cuts.status(edited, jobs) == "editing"
    job_input = cuts.cut_input(edited, known, seed=1)
    assert [s["shot"] for s in job_input["shots"]] == [3, 1, 2]
    assert ["take" in s for s in job_input["shots"]] == [True, True, False], "only shot 2 is filmed"
    exported = cuts.exported(edited, "job_c", known, T0)
    assert exported.timeline[2].take == ids.asset_id("job_c", "clip_002", "clip")
    jobs["job_c"] = job("job_c", "running", [])
    assert cuts.status(exported, jobs) == "exporting"
    jobs["job_c"] = job("job_c", "succeeded", [clip("job_c", "clip_002", 4.5)])
    assert cuts.status(exported, jobs) == "done"
    known = cuts.takes(exported, jobs)
    assert [(t.shot, t.number, t.duration_s) for t in known if t.shot == 2] == [(2, 1, 3.0), (2, 2, 4.5)]
    assert all("take" in s for s in cuts.cut_input(exported, known, seed=2)["shots"]), "nothing to film again"


def test_a_take_swapped_in_lasts_as_long_as_it_does_and_unknown_takes_or_shots_are_refused() -> None:
    made, jobs = composite(), {"job_r": render()}
    longer = cuts.exported(
        cuts.edited(made, [CutEdit(shot=1, duration_s=5.0)], cuts.takes(made, jobs), T0), "job_c", [], T0
    )
    jobs["job_c"] = job("job_c", "succeeded", [clip("job_c", "clip_001", 5.0)])
    known = cuts.takes(longer, jobs)
    back = cuts.edited(longer, [CutEdit(shot=1, take=1)], known, T0)
    assert back.timeline == (Cut(shot=1, duration_s=3.0, take=ids.asset_id("job_r", "clip_001", "clip")),)
    assert cuts.fitting(back.timeline[0], known, 24) is not None
    with pytest.raises(TakeNotFound):
        cuts.edited(longer, [CutEdit(shot=1, take=3)], known, T0)
    with pytest.raises(ShotNotFound):
        cuts.edited(longer, [CutEdit(shot=4)], known, T0)


def test_a_take_fits_by_frames_not_by_seconds() -> None:
    made = composite(fps=15)
    frames_short = cuts.takes(made, {"job_r": render(seconds=52 / 15)})  # 3.4667 s: 52 frames
    cut = Cut(shot=1, duration_s=3.5, take=frames_short[0].asset)  # round(52.5) = 52 frames too
    assert cuts.fitting(cut, frames_short, 15) is not None
    assert cuts.fitting(Cut(shot=1, duration_s=3.6, take=frames_short[0].asset), frames_short, 15) is None


def test_the_package_is_the_episode_as_its_newest_finished_export_made_it() -> None:
    made, jobs = composite(), {"job_r": render()}
    episode = Artifact(
        name="episode", kind="video", blob=BlobRef(key="e" * 64, size=1, content_type="video/mp4")
    )
    composited = StepView(
        name="composite", capability="video.composite", status="succeeded", outputs=[episode]
    )
    jobs["job_r"] = job("job_r", "succeeded", [*render().steps.values(), composited])
    edited = cuts.edited(made, [CutEdit(shot=2)], cuts.takes(made, jobs), T0)  # not exported yet
    shown = cuts.newest_video(edited, jobs)
    files = cuts.package_files(edited, cuts.takes(edited, jobs), shown, ("images", "clips", "episode"))
    assert [f["name"] for f in files] == [
        "image_001", "clip_001", "image_002", "clip_002", "image_003", "clip_003", "episode",
    ]  # fmt: skip


def test_a_shot_on_the_timeline_twice_is_refused_before_anything_changes() -> None:
    made = composite()
    with pytest.raises(InputInvalid) as refused:
        cuts.edited(made, [CutEdit(shot=1), CutEdit(shot=2), CutEdit(shot=1)], [], T0)
    assert refused.value.errors == [
        {"loc": ["body", "timeline"], "msg": "1 given twice", "type": "value_error"}
    ]
