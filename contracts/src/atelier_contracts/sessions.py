"""Sessions: work that lives for many rounds (a product photo refined again and again).

A session holds a context (lighting, perspective, colour tone, logo position and free fields)
and a list of rounds. Each round is a child job of the session's kind that receives the context
as it stood when the round began, and the candidate the user adopted last; the session records
each round's result, the candidates it produced and which one the user adopted. Its log is the
subject ``atelier.session.<id>``; its commands ride ``atelier.sessioncmd.<id>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from atelier_contracts.common import BlobRef

ContextText = Annotated[str, msgspec.Meta(max_length=200)]
FieldName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]

CONTEXT_FIELDS = ("lighting", "perspective", "color_tone", "logo_anchor")
MAX_EXTRA_FIELDS = 32


class SessionContext(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """What the rounds so far settled; each named field is free text (``"soft window light"``)."""

    lighting: ContextText | None = None
    perspective: ContextText | None = None
    color_tone: ContextText | None = None
    logo_anchor: ContextText | None = None
    extra: Annotated[dict[FieldName, ContextText], msgspec.Meta(max_length=MAX_EXTRA_FIELDS)] = {}
    """Free fields (``{"background": "marble"}``)."""

    def changed_by(self, patch: SessionContext) -> SessionContext:
        """This context with ``patch`` laid over it: a field the patch sets wins (``""`` clears
        it), extra fields merge (``""`` removes one)."""
        fields = {f: getattr(self, f) for f in CONTEXT_FIELDS}
        for f in CONTEXT_FIELDS:
            value = getattr(patch, f)
            if value is not None:
                fields[f] = value or None
        extra = {**self.extra, **patch.extra}
        return SessionContext(**fields, extra={k: v for k, v in sorted(extra.items()) if v})

    def differs_in(self, other: SessionContext) -> list[str]:
        names = [f for f in CONTEXT_FIELDS if getattr(self, f) != getattr(other, f)]
        keys = sorted(set(self.extra) | set(other.extra))
        return names + [f"extra.{k}" for k in keys if self.extra.get(k) != other.extra.get(k)]


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """An output of a round's job that the user may adopt."""

    asset_id: str
    step: str
    name: str
    kind: str
    blob: BlobRef
    meta: dict[str, Any] = {}
    """The output's own (a studio candidate's recipe, and the ``context`` adopting it settles)."""
    provider: str = ""
    model: str = ""
    fallbacks: list[str] = []
    """Why earlier providers were passed over for this one (``WorkSucceeded.fallbacks``)."""

    def settles(self) -> SessionContext | None:
        """The context adopting this candidate makes the session's: the one it was made with, if
        its step said so (``meta["context"]``)."""
        raw = self.meta.get("context")
        if not isinstance(raw, dict):
            return None
        try:
            return msgspec.convert(raw, SessionContext)
        except msgspec.ValidationError:
            return None


RoundStatus = Literal["running", "succeeded", "failed", "cancelled"]
SessionStatus = Literal["open", "closed"]


# --- commands -------------------------------------------------------------------------------


class CreateSession(msgspec.Struct, frozen=True, kw_only=True, tag="create_session"):
    kind: str
    """The job kind each round runs."""
    title: str
    context: SessionContext = SessionContext()
    request_hash: str = ""


class UpdateSession(msgspec.Struct, frozen=True, kw_only=True, tag="update_session"):
    """A new title, and/or a change to the context (laid over it: ``SessionContext.changed_by``)."""

    title: str | None = None
    context: SessionContext | None = None


class StartRound(msgspec.Struct, frozen=True, kw_only=True, tag="start_round"):
    """Run one more round: a job of the session's kind with this input (already checked against
    the kind's schema by the sender) plus the session's context."""

    input: dict[str, Any]
    title: str = ""
    priority: int = 0


class AdoptCandidate(msgspec.Struct, frozen=True, kw_only=True, tag="adopt_candidate"):
    round: int
    asset_id: str


class CloseSession(msgspec.Struct, frozen=True, kw_only=True, tag="close_session"):
    """No more rounds; what is recorded stays readable."""


class EndRound(msgspec.Struct, frozen=True, kw_only=True, tag="end_round"):
    """Sent by the orchestrator when a round's job has ended (relayed from the job's log)."""

    round: int
    job_id: str
    status: RoundStatus
    candidates: list[Candidate] = []
    error: str = ""
    error_code: str = ""
    seq: int = 0
    """The job log's sequence of the commit that ended it: an older end never overwrites a newer."""


SessionCommand = CreateSession | UpdateSession | StartRound | AdoptCandidate | CloseSession | EndRound


# --- events ---------------------------------------------------------------------------------


class SessionCreated(msgspec.Struct, frozen=True, kw_only=True, tag="session_created"):
    kind: str
    title: str
    context: SessionContext
    request_hash: str = ""


class SessionRenamed(msgspec.Struct, frozen=True, kw_only=True, tag="session_renamed"):
    title: str


class ContextChanged(msgspec.Struct, frozen=True, kw_only=True, tag="context_changed"):
    """The whole new context, and which fields changed."""

    context: SessionContext
    changed: list[str]


class RoundStarted(msgspec.Struct, frozen=True, kw_only=True, tag="round_started"):
    """A round began: its job (id derived from the session and round), the input it was given,
    and the context and adopted candidate as they stood then."""

    round: int
    job_id: str
    input: dict[str, Any]
    context: SessionContext
    base: Candidate | None = None
    title: str = ""
    priority: int = 0


class RoundEnded(msgspec.Struct, frozen=True, kw_only=True, tag="round_ended"):
    round: int
    status: RoundStatus
    candidates: list[Candidate] = []
    error: str = ""
    error_code: str = ""
    seq: int = 0


class CandidateAdopted(msgspec.Struct, frozen=True, kw_only=True, tag="candidate_adopted"):
    round: int
    candidate: Candidate


class SessionClosed(msgspec.Struct, frozen=True, kw_only=True, tag="session_closed"):
    pass


SessionEvent = (
    SessionCreated
    | SessionRenamed
    | ContextChanged
    | RoundStarted
    | RoundEnded
    | CandidateAdopted
    | SessionClosed
)


# --- the public view ------------------------------------------------------------------------


class Round(msgspec.Struct, frozen=True, kw_only=True):
    round: int
    job_id: str
    status: RoundStatus
    context: SessionContext
    """The context the round's job received."""
    base: Candidate | None = None
    """The candidate adopted when the round began (what it refines)."""
    title: str = ""
    input: dict[str, Any] = {}
    """What the round's job was asked (its files' references left out)."""
    started_at: datetime
    ended_at: datetime | None = None
    candidates: list[Candidate] = []
    adopted: str | None = None
    """The asset id of the candidate adopted from this round, if any."""
    error: str = ""
    error_code: str = ""
    """The failure's stable code (``docs/errors.md``)."""
    end_seq: int = 0
    """Where in the job's log its latest end is."""


class SessionView(msgspec.Struct, frozen=True, kw_only=True):
    """A session as the API shows it (the ``sessions`` read model holds this)."""

    id: str
    tenant: str
    kind: str
    title: str
    status: SessionStatus
    context: SessionContext
    rounds: list[Round]
    adopted: Candidate | None = None
    """The candidate adopted last: the next round's base."""
    created_at: datetime
    updated_at: datetime
    version: int = 0
    """The stream sequence of the session's last commit."""


class SessionList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[SessionView]


class SessionInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a round's job receives beside its own input, as ``input["session"]`` (and every step
    as its ``session`` parameter): the context and the base candidate as the round began."""

    context: SessionContext = SessionContext()
    base: Candidate | None = None


def round_input(context: SessionContext, base: Candidate | None) -> dict[str, Any]:
    return msgspec.to_builtins(SessionInput(context=context, base=base))  # type: ignore[no-any-return]
