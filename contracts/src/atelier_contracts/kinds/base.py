"""What a job kind is: its input schema, the steps an input makes, its deadline.

A kind's input is a msgspec Struct. The gateway parses every submitted input with it (strictly:
``"seed": "abc"`` is refused, not coerced) and refuses what does not fit with the field's path;
the orchestrator parses it again to plan the steps, so a command that came some other way is
held to the same schema. Nothing downstream receives an input its kind does not describe.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

import msgspec

from atelier_contracts.common import Artifact, BlobRef
from atelier_contracts.events import StepSpec
from atelier_contracts.faults import Simulate
from atelier_contracts.sessions import SessionInput

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Issue:
    """One thing wrong with an input: where (a path into it), what, and a machine-readable type."""

    loc: Loc
    msg: str
    type: str


class InvalidInput(Exception):
    """An input its kind cannot take. ``code`` is an error code (``validation_failed``,
    ``unknown_capability``)."""

    def __init__(self, code: str, issues: list[Issue]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, i.loc)) or 'input'}: {i.msg}" for i in issues))
        self.code = code
        self.issues = issues


Prompt = Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
Seed = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
Project = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class BaseInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Fields every kind takes."""

    prompt: Prompt
    seed: Seed = 0
    """Offline providers are deterministic in (prompt, seed)."""
    project: Project | None = None
    """The project the job's usage and cost count toward (and whose budget applies)."""
    simulate: Simulate | None = None
    """Fault injection on the offline providers, where the deployment allows it."""
    session: SessionInput | None = None
    """Set by the orchestrator on a session round's job: the session's context and base."""
    attached: dict[str, Artifact] | None = None
    """Set by the gateway: the uploads the input names (``JobKind.uploads``), by upload id, as
    the files they are. A client cannot set it."""


AssetId = Annotated[str, msgspec.Meta(pattern=r"^ast_[0-9a-f]{24}$")]
"""A file an earlier job of the tenant made (``ids.asset_id``), named by a kind's ``uploads`` as an
upload is: the gateway resolves it into ``attached``."""


def shared(job_input: BaseInput) -> dict[str, Any]:
    """The fields of ``BaseInput`` every step of a job takes: its seed, the project its usage
    counts toward, any fault injection and a session round's context. A kind adds each step's
    own fields to these."""
    out: dict[str, Any] = {"seed": job_input.seed}
    if job_input.session is not None:
        out["session"] = msgspec.to_builtins(job_input.session)
    if job_input.project is not None:
        out["project"] = job_input.project
    if job_input.simulate is not None:
        out["simulate"] = msgspec.to_builtins(job_input.simulate)
    return out


def attached_upload(job_input: BaseInput, upload_id: str, field: str = "upload") -> Artifact:
    """The file of an upload the input names, as the gateway resolved it (``attached``); an
    input that did not come through a submit has none: ``upload_not_found``."""
    found = (job_input.attached or {}).get(upload_id)
    if found is None:
        message = f"upload {upload_id} was not resolved to its file"
        raise InvalidInput("upload_not_found", [Issue(loc=(field,), msg=message, type="not_found")])
    return found


@dataclass(frozen=True)
class Plan:
    """What a step's result planned: new steps, and existing steps that now need them."""

    steps: tuple[StepSpec, ...]
    needs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    width: int = 0
    """How many items the plan fans out over (shots, pictures): bounded by the deployment's
    ``max_fan_out``."""


class PlanInvalid(Exception):
    """The result cannot be planned from (a model answered something that is not a list)."""


In = TypeVar("In", bound=BaseInput)


@dataclass(frozen=True)
class JobKind(Generic[In]):
    name: str
    description: str
    input_type: type[In]
    plan: Callable[[In], tuple[StepSpec, ...]]
    """The steps an (already valid) input makes, each with the parameters it is given: its
    share of the input (never the whole of it) — the outputs of the steps it needs reach it as
    blob references (``WorkItem.inputs``)."""
    partial_ready_after: str | None = None
    """The step whose success makes the job ``partial_ready``."""
    deadline_s: float = 3600.0
    """How long a job of this kind may take from submission (or requeue) to its end."""
    check: Callable[[In], None] | None = None
    """Rules the schema cannot say (raises ``InvalidInput``)."""
    example: Mapping[str, Any] = field(default_factory=lambda: {"prompt": "a fox"})
    """An input that fits, shown by ``GET /v1/kinds`` with the steps it makes."""
    planners: Mapping[str, Callable[[In, Mapping[str, Any]], Plan]] = field(default_factory=dict)
    """By name (``StepSpec.planner``): the steps a step's result (``WorkSucceeded.data``) plans,
    given the job's input. Pure and deterministic: a plan cut short by a crash is made again."""
    resolve: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    """What the gateway fills into an input before it is checked, from what only it reads (a style
    preset's look): the recorded input then plans the same after any crash."""
    uploads: Callable[[In], tuple[str, ...]] | None = None
    """The upload ids an input names: the gateway resolves each (or refuses the job with
    ``upload_not_found``) and hands the files to the plan as ``input.attached``."""

    def parse(self, raw: Mapping[str, Any]) -> In:
        try:
            parsed = msgspec.convert(raw, self.input_type, strict=True)
        except msgspec.ValidationError as exc:
            raise InvalidInput("validation_failed", [issue_of(exc)]) from None
        if self.check is not None:
            self.check(parsed)
        return parsed

    def steps(self, raw: Mapping[str, Any]) -> tuple[StepSpec, ...]:
        """The steps an input makes, each one's parameters checked against its capability's
        schema (``atelier_contracts.capabilities``)."""
        from atelier_contracts.capabilities import check_params  # it builds on this module

        steps = self.plan(self.parse(raw))
        check_params(steps)
        return steps

    def example_steps(self) -> tuple[StepSpec, ...]:
        """The steps ``example`` makes, the uploads it names stood in for by an empty file."""
        raw = dict(self.example)
        if self.uploads is not None:
            stand_in = Artifact(
                name="original", kind="image", blob=BlobRef(key="0" * 64, size=0, content_type="image/png")
            )
            named = self.uploads(self.parse(raw))
            raw["attached"] = {u: msgspec.to_builtins(stand_in) for u in named}
        return self.steps(raw)

    def schema(self) -> dict[str, Any]:
        """The input's JSON Schema (as served by ``GET /v1/kinds``)."""
        return msgspec.json.schema(self.input_type)


_AT = re.compile(r"^(?P<msg>.*) - at `(?:(?P<key>[^`]*)` in `)?\$(?P<path>[^`]*)`$", re.DOTALL)
_PART = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `([^`]+)`")


def issue_of(exc: msgspec.ValidationError) -> Issue:
    """msgspec says ``Expected `int`, got `str` - at `$.seed```: the path becomes ``("seed",)``."""
    msg, loc = str(exc), list[str | int]()
    found = _AT.match(msg)
    if found is not None:
        msg = found["msg"]
        for name, index in _PART.findall(found["path"]):
            loc.append(name if name else (int(index) if index.isdigit() else index))
        if found["key"] is not None:  # a bad key of a map: "... - at `key` in `$.fail`"
            loc.append(found["key"])
    field = _FIELD.match(msg)
    if field is not None:  # missing or unknown: the path names the object, the message the field
        loc.append(field[1])
    return Issue(loc=tuple(loc), msg=msg, type=_type_of(msg))


def _type_of(msg: str) -> str:
    if msg.startswith("Object missing required field"):
        return "missing"
    if msg.startswith("Object contains unknown field"):
        return "extra_forbidden"
    if msg.startswith("Expected `") and ", got `" in msg:
        return "type_error"
    if msg.startswith("Expected `"):
        return "out_of_range"  # a constraint: ``Expected `int` <= 20``
    if msg.startswith("Invalid enum value"):
        return "enum"
    return "value_error"
