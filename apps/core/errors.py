"""One domain error hierarchy, mapped once to HTTP answers in opscenter.api."""


class OpscenterError(Exception):
    status_code = 400

    def __init__(self, detail: str, errors: list[dict] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class ValidationFailed(OpscenterError):
    """Input was refused; `errors` names every field that was wrong."""

    status_code = 422


class NotFound(OpscenterError):
    status_code = 404


class NotAuthenticated(OpscenterError):
    """Credentials that open nothing: an expired or revoked API token."""

    status_code = 401


class PermissionDenied(OpscenterError):
    status_code = 403


class Conflict(OpscenterError):
    """The object is in a state where the operation makes no sense."""

    status_code = 409
