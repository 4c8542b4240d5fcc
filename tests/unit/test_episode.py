"""The episode kind: a model's shot list read or refused, the fan-out it plans, the style fixed
at the door; the offline storyboard artist's shot list."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from msgspec.structs import replace

from atelier_contracts.commands import ReviewStep, SubmitJob
from atelier_contracts.events import JobEvent, StepDispatched
from atelier_contracts.kinds import KINDS
from atelier_contracts.kinds.base import InvalidInput, PlanInvalid
from atelier_contracts.kinds.episode import (
    EpisodeInput,
    ShotList,
    image_step,
    parse_shots,
    resolve,
    review_step,
    shots,
)
from atelier_contracts.snapshot import JobStatus, StepStatus
from atelier_contracts.styles import STYLES, StyleRegistry, parse_styles, style_prompt
from atelier_provider_router.adapters.offline.text import write_shots
from tests.unit.story_sim import Sim, succeeded

KIND = KINDS["episode"]


def dispatched(events: list[JobEvent]) -> list[StepDispatched]:
    return [e for e in events if isinstance(e, StepDispatched)]


SHOT = {"description": "a whale rises", "duration_s": 2.5, "line": "Look!", "move": "pan_up"}


@pytest.mark.parametrize(
    "answer",
    [
        json.dumps({"shots": [SHOT]}),
        "```json\n" + json.dumps({"shots": [SHOT]}) + "\n```",
        "Here is your shot list:\n" + json.dumps([SHOT]) + "\nEnjoy!",
    ],
    ids=["json", "fenced", "bare list in prose"],
)
def test_a_shot_list_is_read_from_what_models_answer(answer: str) -> None:
    [shot] = parse_shots(answer)
    assert (shot.description, shot.duration_s, shot.line, shot.move) == (
        "a whale rises",
        2.5,
        "Look!",
        "pan_up",
    )


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ("Once upon a time there was a whale.", "no JSON"),
        ('{"shots": [{"description": "x", "duration_s": 2}', "not JSON"),
        ('{"shots": []}', "not a shot list"),
        ('{"shots": [{"description": "x", "duration_s": 99}]}', "not a shot list"),
        ('{"shots": [{"description": "x", "duration_s": 2, "move": "dolly_zoom"}]}', "not a shot list"),
    ],
)
def test_what_is_no_shot_list_is_refused_saying_why(answer: str, said: str) -> None:
    with pytest.raises(PlanInvalid, match=said):
        parse_shots(answer)


def episode(**extra: object) -> EpisodeInput:
    raw = resolve({"script": "A whale. A boat.", "style": "ink-wash", **extra})
    return KIND.parse(raw)


def test_the_door_fixes_the_style_so_a_plan_made_again_is_the_same() -> None:
    fixed = episode()
    assert fixed.look == STYLES.current()["ink-wash"]
    assert resolve({"script": "x", "look": {"label": "mine", "look": "soft"}})["look"]["label"] == "mine"
    with pytest.raises(InvalidInput, match="no style 'oil'"):
        KIND.parse(resolve({"script": "x", "style": "oil"}))


def test_the_shots_plan_an_image_a_clip_and_a_voice_each_then_the_composite() -> None:
    listed = msgspec.to_builtins(ShotList(shots=parse_shots(json.dumps([SHOT] * 3))))
    plan = shots(episode(), listed)
    names = [s.name for s in plan.steps]
    assert names == [
        "image_001", "clip_001", "voice_001",
        "image_002", "clip_002", "voice_002",
        "image_003", "clip_003", "voice_003",
        "composite",
    ]  # fmt: skip
    by_name = {s.name: s for s in plan.steps}
    assert by_name["clip_002"].needs == ("image_002",)
    assert by_name["image_001"].params["prompt"].startswith("East Asian ink wash painting")
    assert by_name["image_001"].params["look"] == "ink"
    assert [e["clip"] for e in by_name["composite"].params["shots"]] == ["clip_001", "clip_002", "clip_003"]
    assert plan.width == 3
    assert plan.needs["package"][-1] == "composite"


def test_with_review_every_shot_has_a_gate_and_its_clip_waits_for_it() -> None:
    listed = {"shots": [SHOT, SHOT]}
    plan = shots(episode(review="manual"), listed)
    by_name = {s.name: s for s in plan.steps}
    assert by_name["clip_001"].needs == ("image_001", "review_001")
    assert by_name["review_002"].needs == ("image_002",)
    assert by_name["review_002"].review is not None
    assert "clip_review_001" not in by_name
    both = {s.name: s for s in shots(episode(review="auto", review_clips=True), listed).steps}
    assert both["clip_review_001"].needs == ("clip_001",)
    assert both["clip_review_001"].capability == "review.auto"
    assert set(both["composite"].needs) >= {"clip_review_001", "clip_review_002", "voice_002"}


def _to_review(sim: Sim, count: int) -> list[StepDispatched]:
    """An episode of ``count`` shots (no lines, so no speech) up to its gates."""
    [shotlist] = dispatched(sim.send(SubmitJob(kind="episode", title="E", input=resolve(
        {"script": "x", "review": "manual"}))))  # fmt: skip
    silent = {**SHOT, "line": ""}
    images = dispatched(sim.send(replace(succeeded(shotlist), data={"shots": [silent] * count})))
    assert [d.step for d in images] == [image_step(i) for i in range(1, count + 1)]
    for d in images:
        sim.send(succeeded(d))
    return images


def verdict(sim: Sim, shot: int, verdict: str, feedback: str = "") -> list[StepDispatched]:
    command = ReviewStep(step=review_step(shot), verdict=verdict, feedback=feedback, reviewer="kai")  # type: ignore[arg-type]
    return dispatched(sim.send(command, f"r-{sim.clock}"))  # type: ignore[arg-type]


def test_a_rejected_shot_alone_is_drawn_again_and_the_approved_ones_are_filmed() -> None:
    sim = Sim()
    _to_review(sim, 3)
    assert sim.state is not None
    assert sim.state.status == JobStatus.AWAITING_REVIEW
    assert [d.step for d in verdict(sim, 1, "approve")] == ["clip_001"], "filmed at once"
    [again] = verdict(sim, 2, "reject", "more fog")
    assert (again.step, again.params["feedback"]) == ("image_002", "more fog")
    assert [d.step for d in verdict(sim, 3, "approve")] == ["clip_003"]
    assert sim.state.steps["image_001"].attempts == sim.state.steps["image_003"].attempts == 1
    sim.send(succeeded(again))
    assert sim.state.steps[review_step(2)].status == StepStatus.AWAITING_REVIEW, "back for review"
    assert [d.step for d in verdict(sim, 2, "approve")] == ["clip_002"]
    assert [(r.step, r.round, r.verdict, r.feedback) for r in sim.state.reviews] == [
        ("review_001", 1, "approve", ""),
        ("review_002", 1, "reject", "more fog"),
        ("review_003", 1, "approve", ""),
        ("review_002", 2, "approve", ""),
    ]
    clips = [d for d in sim.state.steps.values() if d.name.startswith("clip_")]
    assert all(c.status == StepStatus.DISPATCHED and c.attempts == 1 for c in clips), "each filmed once"


def test_a_shot_list_that_is_not_one_is_plan_invalid() -> None:
    with pytest.raises(PlanInvalid):
        shots(episode(), {"shots": "twelve"})


def test_the_offline_storyboard_is_one_shot_per_sentence_the_same_every_time() -> None:
    script = 'Mika wakes. "Hurry," says Grandpa. The boat sails at dawn!'
    first = write_shots(script, seed=1)
    assert first == write_shots(script, seed=1)
    listed = parse_shots(first)
    assert [s.line for s in listed] == ["Mika wakes.", "Hurry", "The boat sails at dawn!"]
    assert len({s.move for s in listed}) == 3
    assert all(2.0 <= s.duration_s <= 8.0 and s.duration_s * 2 == int(s.duration_s * 2) for s in listed)
    with pytest.raises(ValueError, match="no sentence"):
        write_shots("   ...  ")


def test_a_styles_file_is_checked() -> None:
    assert {"anime", "3d", "hand-drawn", "ink-wash"} <= set(STYLES.current())
    with pytest.raises(ValueError, match="invalid"):
        parse_styles('{"Anime!": {"label": "x"}}')
    with pytest.raises(ValueError, match="no style"):
        parse_styles("{}")


def noir_styles() -> dict[str, dict[str, str]]:
    """A style another package registers (``atelier.styles``): see the test below."""
    return {"noir": {"label": "Film noir", "prefix": "black and white film noir still,", "look": "ink"}}


def test_a_new_style_is_a_file_and_another_package_s_style_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = tmp_path / "site" / "atelier_noir-1.0.dist-info"
    plugin.mkdir(parents=True)
    (plugin / "METADATA").write_text("Metadata-Version: 2.1\nName: atelier-noir\nVersion: 1.0\n")
    (plugin / "entry_points.txt").write_text("[atelier.styles]\nnoir = tests.unit.test_episode:noir_styles\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    styles = tmp_path / "styles.json"
    styles.write_text(json.dumps({"watercolour": {"label": "Watercolour", "prefix": "a watercolour of"}}))
    known = StyleRegistry(styles).current()
    assert {"watercolour", "noir"} <= set(known), "the file's style and the plugged-in one"
    assert "anime" not in known, "a styles file of one's own replaces the shipped one"
    assert (
        style_prompt(known["noir"], "a harbour at night")
        == "black and white film noir still, a harbour at night"
    )
    assert known["noir"].look == "ink"


def test_a_shot_template_frames_every_shots_prompt() -> None:
    plan = shots(episode(shot_template="{description}, in Harbourside"), {"shots": [SHOT]})
    prompt = plan.steps[0].params["prompt"]
    assert prompt.startswith("East Asian ink wash painting")
    assert "a whale rises, in Harbourside" in prompt
    for bad in ("no placeholder", "{description} at {time}"):
        with pytest.raises(InvalidInput, match="shot template"):
            episode(shot_template=bad)
