"""Stable error codes: the ``code`` member of every problem+json answer and ErrorInfo.

Clients may branch on these strings; they never change meaning. Add, never rename.
"""

from __future__ import annotations

ERROR_CODES: dict[str, str] = {
    # API errors
    "job_not_found": "No job with this id is visible to the caller.",
    "file_not_found": "No file with this id, or the link expired or was tampered with.",
    "validation_failed": "The request body or parameters do not match the schema.",
    "unknown_job_kind": "The job kind is not one Atelier knows.",
    "not_found": "No such route.",
    "method_not_allowed": "The route exists but not for this method.",
    "service_unavailable": "A dependency (NATS or SQL) is unreachable; try again.",
    "internal_error": "An unexpected error; the request id identifies it in the logs.",
    # Step and job failures (ErrorInfo.code)
    "provider_error": "A provider failed in a way worth retrying.",
    "prompt_invalid": "The provider refused the input; retrying will not help.",
    "input_missing": "A step's input artifact is missing from the blob store.",
    "input_invalid": "A step's input could not be read as what it claims to be.",
    "step_failed": "A step failed after its last attempt.",
    "worker_error": "The worker raised an unexpected error.",
}


def describe(code: str) -> str:
    return ERROR_CODES[code]
