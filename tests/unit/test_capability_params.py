"""Each capability's parameter schema: what a kind's plan or a planner binds for a step is checked
before any worker sees it — at the door for a submit, in the orchestrator for a fan-out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from msgspec.structs import replace

from atelier_contracts.capabilities import check_params
from atelier_contracts.commands import SubmitJob
from atelier_contracts.events import StepDispatched, StepFailed, StepSpec
from atelier_contracts.kinds import KINDS, BaseInput, InvalidInput, JobKind, Plan
from tests.unit.story_sim import Sim, succeeded


def test_every_kinds_example_makes_steps_their_capabilities_take() -> None:
    for kind in KINDS.values():
        check_params(kind.example_steps())


def test_a_parameter_a_capability_refuses_is_named_by_step_and_field() -> None:
    steps = [
        StepSpec(name="cover", capability="image.generate", params={"size": 300}),
        StepSpec(name="story", capability="text.generate", params={"seed": "abc"}),
        StepSpec(name="odd", capability="teleport", params={}),
    ]
    with pytest.raises(InvalidInput) as refused:
        check_params(steps)
    assert [i.loc for i in refused.value.issues] == [
        ("steps", "cover", "params", "size"),
        ("steps", "story", "params", "seed"),
        ("steps", "odd", "capability"),
    ]


def _wild(_: BaseInput, data: Mapping[str, Any]) -> Plan:
    """A planner that binds what a model answered, unchecked (a size no image provider draws)."""
    step = StepSpec(
        name="picture", capability="image.generate", needs=("ideas",), params={"size": data["size"]}
    )
    return Plan(steps=(step,), width=1)


def test_a_plan_whose_parameters_do_not_fit_fails_the_attempt_as_plan_invalid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kind = JobKind(
        name="wild",
        description="test only",
        input_type=BaseInput,
        plan=lambda _: (StepSpec(name="ideas", capability="text.generate", planner="wild"),),
        planners={"wild": _wild},
    )
    monkeypatch.setitem(KINDS, "wild", kind)
    sim = Sim()
    [ideas] = [
        e
        for e in sim.send(SubmitJob(kind="wild", title="w", input={"prompt": "p"}))
        if isinstance(e, StepDispatched)
    ]
    events = sim.send(replace(succeeded(ideas), data={"size": 300}))
    [failed] = [e for e in events if isinstance(e, StepFailed)]
    assert failed.error.code == "plan_invalid"
    assert "steps.picture.params.size" in failed.error.message
    assert [e.step for e in events if isinstance(e, StepDispatched)] == ["ideas"], (
        "asked again, nothing planned"
    )
