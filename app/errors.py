"""Domain errors raised anywhere below the routes and mapped to HTTP in one middleware."""

from __future__ import annotations


class AppError(Exception):
    """An error a client caused or must know about; carries its HTTP status and code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.headers = headers or {}


class BadRequest(AppError):
    status = 400
    code = "bad_request"


class Invalid(AppError):
    status = 422
    code = "validation_failed"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"

    def __init__(self, message: str = "a valid bearer token is required", **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Bearer realm="photos"')


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Conflict(AppError):
    status = 409
    code = "conflict"


class RequestTimeout(AppError):
    """The client stopped sending its request body (or took too long over it): the answer closes the
    connection, whose unread rest is abandoned."""

    status = 408
    code = "request_timeout"


class TooLarge(AppError):
    status = 413
    code = "payload_too_large"


class UnsupportedMedia(AppError):
    status = 415
    code = "unsupported_media_type"


class RateLimited(AppError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after_s))})


class Unavailable(AppError):
    """A dependency needed to make this request durable is down; the client should retry."""

    status = 503
    code = "service_unavailable"

    def __init__(self, message: str, retry_after_s: int = 2) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})
