"""Stable error codes: the ``code`` member of every problem+json answer and ErrorInfo.

Clients may branch on these strings; they never change meaning. Add, never rename.
"""

from __future__ import annotations

ERROR_CODES: dict[str, str] = {
    # API errors
    "job_not_found": "No job with this id is visible to the caller.",
    "session_not_found": "No session with this id is visible to the caller.",
    "schedule_not_found": "No schedule with this id is visible to the caller (or it was deleted).",
    "round_not_found": "The session has no round of that number (rounds count from 1).",
    "candidate_not_found": "The round produced no candidate with that asset id.",
    "session_closed": "The session is closed: it takes no more rounds or changes.",
    "project_not_found": "No project with this id is visible to the caller.",
    "episode_not_found": "The project has no episode with this id.",
    "episode_not_rendered": "The episode has no finished render yet (POST …/render, then wait for it).",
    "shot_not_found": "The episode's render has no shot with this number.",
    "take_not_found": "The shot has no take with this number (its takes are on the composite).",
    "nothing_marked": "No rendered episode of the project is marked for its batch (PATCH an episode).",
    "composite_changed": "The composite changed while this request was decided: read it and try again.",
    "composite_exporting": "The composite is exporting: edit or export it once the export has ended.",
    "template_not_found": "No saved studio template of that name (GET /v1/studio/templates).",
    "chip_not_found": "No prompt chip of that name for this operation (GET /v1/studio/chips).",
    "platform_not_found": "No marketplace platform of that name (GET /v1/studio/platforms).",
    "nothing_adopted": "Adopt a candidate first: refinements and exports start from the one you chose.",
    "refine_not_understood": "We could not tell what to change; try 'warmer light' or 'logo a little lower'.",
    "refine_one_change": "One change per refine round, please.",
    "image_unreadable": "The photo could not be read as an image.",
    "limit_exceeded": "A configured limit would be exceeded (e.g. rounds per session).",
    "file_not_found": "No file with this id, or the link expired or was tampered with.",
    "validation_failed": "The request body or parameters do not match the schema.",
    "unknown_job_kind": "The job kind is not one Atelier knows.",
    "unknown_capability": "The job names a capability its kind cannot run (e.g. a task's input.capability).",
    "simulate_disabled": "This deployment does not allow fault injection (input.simulate); "
    "it is switched on with ATELIER_ALLOW_SIMULATE=1.",
    "not_found": "No such route.",
    "method_not_allowed": "The route exists but not for this method.",
    "unsupported_media_type": "Request bodies must be JSON (Content-Type: application/json).",
    "illegal_transition": "The job's state does not allow this request (e.g. requeue a running job).",
    "step_not_found": "The job has no step of that name.",
    "asset_already_running": "That step or asset is already being produced; wait for it.",
    "idempotency_key_reused": "This Idempotency-Key was used with a different request body.",
    "idempotency_request_in_progress": "A request with this Idempotency-Key is still being processed.",
    "idempotency_key_invalid": "The Idempotency-Key header is empty or longer than 255 characters.",
    "tag_not_found": "No tag with this name.",
    "tag_exists": "A tag with this name exists already.",
    "budget_not_found": "No budget is set for this tenant or project.",
    "job_deleted": "The job was deleted.",
    "service_unavailable": "A dependency (NATS or SQL) is unreachable; nothing was done, try again.",
    "outcome_unknown": "The command was sent but not confirmed in time: it may or may not take "
    "effect. Look the job up (or retry with the same Idempotency-Key).",
    "internal_error": "An unexpected error; the request id identifies it in the logs.",
    "input_too_large": "The request body is larger than the limit (ATELIER_MAX_BODY_BYTES).",
    "request_timeout": "The client sent its request too slowly; the connection was closed.",
    "unsupported_media": "The upload's content is not an allowed image or audio type (what the bytes "
    "are decides, never the file name or the declared type).",
    "upload_empty": "The upload has no file part, or the file has no bytes.",
    "media_invalid": "The upload claims an allowed type but cannot be decoded as it (cut short or corrupt).",
    "image_too_large": "The image has more pixels than ATELIER_UPLOAD_MAX_PIXELS (read from its header, "
    "before decoding).",
    "upload_not_found": "No upload with this id is visible to the caller.",
    "cache_entry_not_found": "No narration cache entry with this key.",
    "preset_not_found": "No export preset of that name (GET /v1/presets lists them).",
    "url_expired": "The signed link has expired: ask the API for a fresh one.",
    "url_invalid": "The signed link was altered or is not a link this deployment made.",
    "webhook_not_found": "No webhook endpoint (or delivery of it) with this id.",
    "webhook_url_refused": "The webhook URL is not http(s), carries credentials, or points at an internal "
    "address that ATELIER_WEBHOOK_ALLOW_HOSTS does not name.",
    "stream_position_invalid": "Last-Event-ID or ?after is not a position in the log (<seq>.<index>, "
    "as a stream's event ids and the events' ``position`` give it).",
    # Step and job failures (ErrorInfo.code)
    "provider_error": "A provider failed in a way worth retrying.",
    "providers_unavailable": "Every provider of the capability is cooling down or at its limits.",
    "no_provider": "No provider is configured for the capability.",
    "prompt_invalid": "The provider refused the input; retrying will not help.",
    "budget_exceeded": "The call could cost more than the tenant's or project's budget has left.",
    "input_missing": "A step's input artifact is missing from the blob store.",
    "storage_unavailable": "The blob store could not be written or read; the step waits (without "
    "using up its attempts) and resumes when the store answers again.",
    "input_invalid": "A step's input could not be read as what it claims to be.",
    "step_failed": "A step failed after its last attempt.",
    "step_timeout": "A step did not finish before its deadline.",
    "plan_invalid": "A step's result could not be planned from (e.g. a model answered no list).",
    "plan_too_large": "A step's result planned more items than ATELIER_MAX_FAN_OUT allows.",
    "review_invalid": "The automatic reviewer of a gate gave no verdict.",
    "review_rejected": "A review gate was rejected as often as it allows.",
    "review_timeout": "Nobody reviewed the gate in time and its policy is to fail.",
    "job_deadline_exceeded": "The job did not finish before its deadline.",
    "worker_lost": "The work was delivered to workers as often as allowed and never finished.",
    "job_cancelled": "The job was cancelled.",
    "worker_error": "The worker raised an unexpected error.",
}


def describe(code: str) -> str:
    return ERROR_CODES[code]
