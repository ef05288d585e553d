"""Error bodies, one shape per API family, and the exception that carries a rejection to them.

- Front door of dedicated, serverless and ``/models`` routes (401/404/405/429/5xx): the flat
  model-inference schema ``{"error", "message", "status"}`` (wire-formats.md 4.3).
- Request validation on serverless and ``/models`` routes (400): the foundation-model-serve
  container's ``{"error": {"code", "message", "status"}}`` (wire-formats.md 4.2).
- Everything on ``/openai/v1``: OpenAI's ``{"error": {"message", "type", "param", "code"}}``,
  which the official ``openai`` SDK reads (``_make_status_error`` maps the status to the
  exception class and keeps ``body["error"]``).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Literal

from azml_client.emulator._http import Response, json_response

__all__ = [
    "Api",
    "Rejected",
    "front_door_error",
    "openai_error",
    "platform_error",
    "validation_error",
]

#: The four API families the emulator speaks: ``/score``, the serverless ``/v1`` and root routes,
#: the model-inference ``/models`` routes and the OpenAI ``/openai/v1`` routes.
Api = Literal["dedicated", "serverless", "models", "openai"]


def front_door_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """Platform error body, flat model-inference schema ``{"error", "message", "status"}``.

    The managed-online front door's own bodies are not documented (wire-formats.md 6); the
    model-inference reference gives this schema for 401/404/429 (4.3), so both APIs use it.
    """
    payload = {"error": HTTPStatus(status).phrase, "message": message, "status": status}
    return json_response(status, payload, headers)


def validation_error(status: int, message: str) -> Response:
    """FMS / model-inference validation error: ``{"error": {"code", "message", "status"}}``."""
    code = HTTPStatus(status).phrase
    return json_response(status, {"error": {"code": code, "message": message, "status": status}})


def _openai_type(status: int) -> str:
    # OpenAI's error "type" values: invalid_request_error for client errors, "requests" for
    # request-rate 429s, server_error for 5xx. The SDK maps on the status alone.
    if status == 429:
        return "requests"
    return "server_error" if status >= 500 else "invalid_request_error"


def openai_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """OpenAI's error body ``{"error": {"message", "type", "param", "code"}}``."""
    error = {"message": message, "type": _openai_type(status), "param": param, "code": code}
    return json_response(status, {"error": error}, headers)


_OPENAI_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}


def platform_error(
    api: Api, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """A front-door error in the shape of ``api`` (OpenAI's on ``/openai/v1``, else flat)."""
    if api == "openai":
        return openai_error(status, message, code=_OPENAI_CODES.get(status), headers=headers)
    return front_door_error(status, message, headers)


class Rejected(Exception):  # a request the route refuses; rendered per API family
    """A 400 (or other client error) with what it was about.

    Attributes:
        message: Text for the caller.
        param: The request field at fault (OpenAI's ``param``), if any.
        code: OpenAI's machine-readable ``code``, if any.
        status: HTTP status, 400 unless said otherwise.
    """

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status

    def response(self, api: Api) -> Response:
        """The error answer in the shape ``api`` uses for validation errors."""
        if api == "openai":
            return openai_error(self.status, self.message, param=self.param, code=self.code)
        return validation_error(self.status, self.message)
