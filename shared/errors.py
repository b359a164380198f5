"""Domain and HTTP errors in the one JSON error format of the public API."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error that becomes `{"error": {"code", "message", "details"}}` with `status`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def bad_request(message: str, details: list[Any] | None = None, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message, details)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def season_archived(season: int) -> ApiError:
    """410: the season's rows are in cold storage (shared/lifecycle.py), with the command that brings them back."""
    return ApiError(
        410, "season_archived",
        f"season {season} is archived in cold storage; `snapline restore {season}` brings it back",
        [{"field": "season", "season": season, "restore": f"snapline restore {season}"}],
    )  # fmt: skip
