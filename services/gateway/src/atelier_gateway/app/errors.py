"""Failures the use cases report; each carries a stable code from ``atelier_contracts.errors``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from atelier_contracts.errors import ERROR_CODES


class AppError(Exception):
    code: ClassVar[str]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # Clients branch on codes, so an unregistered one is a bug caught at import, not in production.
        if cls.code not in ERROR_CODES:
            raise TypeError(f"{cls.__name__}.code {cls.code!r} is not in atelier_contracts ERROR_CODES")

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or ERROR_CODES[self.code]
        self.close_connection = False
        """Set where the request's body was left unread: the answer closes the connection."""
        super().__init__(self.detail)

    @property
    def extensions(self) -> dict[str, object]:
        """Members the problem document carries besides the standard ones."""
        return {}


class JobNotFound(AppError):
    code = "job_not_found"


class FileNotFound(AppError):
    code = "file_not_found"


class UnknownJobKind(AppError):
    code = "unknown_job_kind"

    def __init__(self, detail: str | None = None, errors: Sequence[dict[str, object]] = ()) -> None:
        super().__init__(detail)
        self.errors = list(errors)

    @property
    def extensions(self) -> dict[str, object]:
        return {"errors": self.errors} if self.errors else {}


class InputInvalid(AppError):
    """A job's input does not fit its kind's schema; ``errors`` names each field (loc, msg, type)."""

    code = "validation_failed"

    def __init__(self, errors: Sequence[dict[str, object]], detail: str | None = None) -> None:
        super().__init__(detail or f"{len(errors)} problem(s) with the job's input; see errors.")
        self.errors = list(errors)

    @property
    def extensions(self) -> dict[str, object]:
        return {"errors": self.errors}


def once_each(values: Sequence[object], loc: Sequence[str], detail: str) -> None:
    """``validation_failed`` at ``loc`` naming every value given more than once."""
    twice = sorted({str(v) for v in values if values.count(v) > 1})
    if twice:
        raise InputInvalid(
            [{"loc": list(loc), "msg": f"{', '.join(twice)} given twice", "type": "value_error"}], detail
        )


class UnknownCapability(InputInvalid):
    code = "unknown_capability"


class SimulateDisabled(AppError):
    code = "simulate_disabled"


class Unavailable(AppError):
    """NATS or SQL did not answer in time; the request may be retried."""

    code = "service_unavailable"


class OutcomeUnknown(AppError):
    """The command went out but its storage was not confirmed in time: it may still take effect."""

    code = "outcome_unknown"

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"The command for {job_id!r} was sent, but NATS did not confirm it in time: it may "
            "or may not take effect. Look it up, or retry with the same Idempotency-Key."
        )
        self.job_id = job_id

    @property
    def extensions(self) -> dict[str, object]:
        return {"job_id": self.job_id}


class InvalidRequest(AppError):
    """The request is well-formed JSON but asks for something impossible (a tampered cursor, ...)."""

    code = "validation_failed"


class StepNotFound(AppError):
    code = "step_not_found"


class IllegalTransition(AppError):
    code = "illegal_transition"


class AssetAlreadyRunning(AppError):
    code = "asset_already_running"


class JobDeleted(AppError):
    code = "job_deleted"


class TagNotFound(AppError):
    code = "tag_not_found"


class TagExists(AppError):
    code = "tag_exists"


class BudgetNotFound(AppError):
    code = "budget_not_found"


class IdempotencyKeyInvalid(AppError):
    code = "idempotency_key_invalid"


class IdempotencyKeyReused(AppError):
    code = "idempotency_key_reused"


class IdempotencyInProgress(AppError):
    code = "idempotency_request_in_progress"


class SessionNotFound(AppError):
    code = "session_not_found"


class ScheduleNotFound(AppError):
    code = "schedule_not_found"


class RoundNotFound(AppError):
    code = "round_not_found"


class CandidateNotFound(AppError):
    code = "candidate_not_found"


class SessionClosed(AppError):
    code = "session_closed"


class LimitExceeded(AppError):
    code = "limit_exceeded"


class UnsupportedMedia(AppError):
    code = "unsupported_media"


class UploadEmpty(AppError):
    code = "upload_empty"


class MediaInvalid(AppError):
    code = "media_invalid"


class ImageTooLarge(AppError):
    code = "image_too_large"


class InputTooLarge(AppError):
    code = "input_too_large"


class UploadNotFound(AppError):
    code = "upload_not_found"


class CacheEntryNotFound(AppError):
    code = "cache_entry_not_found"


class PresetNotFound(InputInvalid):
    code = "preset_not_found"


class WebhookNotFound(AppError):
    code = "webhook_not_found"


class UrlExpired(AppError):
    code = "url_expired"


class UrlInvalid(AppError):
    code = "url_invalid"


UPLOAD_REFUSALS: dict[str, type[AppError]] = {
    cls.code: cls
    for cls in (UnsupportedMedia, UploadEmpty, MediaInvalid, ImageTooLarge, InputTooLarge, Unavailable)
}
"""The media service's ingest refusal codes (``IngestRefused.code``) and the errors they become."""


REFUSALS: dict[str, type[AppError]] = {
    cls.code: cls
    for cls in (
        JobNotFound,
        StepNotFound,
        IllegalTransition,
        AssetAlreadyRunning,
        SessionNotFound,
        ScheduleNotFound,
        RoundNotFound,
        CandidateNotFound,
        SessionClosed,
        LimitExceeded,
        IdempotencyKeyReused,
    )
}
"""The orchestrator's refusal codes (``CommandOutcome.code``) and the errors they become."""


class ChipNotFound(AppError):
    code = "chip_not_found"


class PlatformNotFound(AppError):
    code = "platform_not_found"


class NothingAdopted(AppError):
    code = "nothing_adopted"


class RefineNotUnderstood(AppError):
    code = "refine_not_understood"


class RefineOneChange(AppError):
    code = "refine_one_change"


class TemplateNotFound(AppError):
    code = "template_not_found"


class ProjectNotFound(AppError):
    code = "project_not_found"


class EpisodeNotFound(AppError):
    code = "episode_not_found"


class EpisodeNotRendered(AppError):
    code = "episode_not_rendered"


class ShotNotFound(AppError):
    code = "shot_not_found"


class TakeNotFound(AppError):
    code = "take_not_found"


class CompositeExporting(AppError):
    code = "composite_exporting"


class NothingMarked(AppError):
    code = "nothing_marked"


class CompositeChanged(AppError):
    code = "composite_changed"
