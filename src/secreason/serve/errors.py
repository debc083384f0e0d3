"""The client error that the server's parts raise (the reward server's too).

A module of its own so that the chat wire format (``serve.protocol``) and the strict
JSON reader (``serve.strict_json``) can both raise it without importing each other.
"""

from __future__ import annotations


class RequestError(Exception):
    """A client error, rendered as OpenAI's ``{"error": {...}}`` body."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code or {
            400: "invalid_request",
            401: "invalid_api_key",
            404: "not_found",
            413: "request_too_large",
            429: "too_many_requests",
            504: "timeout",
        }.get(status, "error")
