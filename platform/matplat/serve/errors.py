"""API errors: what became of a request, as a JSON:API error object (never a traceback)."""

from __future__ import annotations

TITLES = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    553: "Version Not Supported",
}


class ApiError(Exception):
    """An error answer: HTTP status, a title from the status, one line of detail."""

    def __init__(self, status: int, detail: str, parameter: str | None = None):
        super().__init__(detail)
        self.status = status
        self.title = TITLES.get(status, "Error")
        self.detail = detail
        self.parameter = parameter

    def to_json(self) -> dict:
        error: dict = {"status": str(self.status), "title": self.title, "detail": self.detail}
        if self.parameter:
            error["source"] = {"parameter": self.parameter}
        return error


def bad_request(detail: str, parameter: str | None = "filter") -> ApiError:
    return ApiError(400, detail, parameter)


def not_implemented(detail: str, parameter: str | None = "filter") -> ApiError:
    return ApiError(501, detail, parameter)
