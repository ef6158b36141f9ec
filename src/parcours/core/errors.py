"""Domain errors raised by services; rendered as problem+json or as a page by web handlers."""


class DomainError(Exception):
    status = 400
    title = "Bad request"
    type_ = "about:blank"

    def __init__(self, detail: str = "", *, field: str | None = None, errors=None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = list(errors or [])
        if field:
            self.errors.append({"field": field, "message": self.detail})


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class Unauthorized(DomainError):
    status = 401
    title = "Authentication required"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class Invalid(DomainError):
    status = 422
    title = "Invalid input"


class TooMany(DomainError):
    status = 429
    title = "Too many attempts"
