"""MLMD's error classes, with the same names and status codes as ``ml_metadata.errors``.

Every failure a caller can see is one of these, so code written against
``ml_metadata`` catches the same exceptions from mlmd-log.
"""
from __future__ import annotations

OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
ABORTED = 10
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
DATA_LOSS = 15
UNAUTHENTICATED = 16


class StatusError(Exception):
    """Base of all MLMD errors: a message plus a canonical status code."""

    code: int = UNKNOWN

    def __init__(self, message: str, error_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.error_code = self.code if error_code is None else error_code


def _error_class(name: str, code: int, doc: str) -> type:
    def __init__(self, message: str):
        StatusError.__init__(self, message, code)

    return type(name, (StatusError,), {"__doc__": doc, "code": code, "__init__": __init__})


CancelledError = _error_class("CancelledError", CANCELLED, "The operation was cancelled.")
InvalidArgumentError = _error_class("InvalidArgumentError", INVALID_ARGUMENT, "An argument is malformed or inconsistent.")
DeadlineExceededError = _error_class("DeadlineExceededError", DEADLINE_EXCEEDED, "A deadline expired first.")
NotFoundError = _error_class("NotFoundError", NOT_FOUND, "A requested entity does not exist.")
AlreadyExistsError = _error_class("AlreadyExistsError", ALREADY_EXISTS, "The entity to create already exists.")
PermissionDeniedError = _error_class("PermissionDeniedError", PERMISSION_DENIED, "The caller may not do this.")
ResourceExhaustedError = _error_class("ResourceExhaustedError", RESOURCE_EXHAUSTED, "A resource ran out.")
FailedPreconditionError = _error_class("FailedPreconditionError", FAILED_PRECONDITION, "The system is not in a state for this.")
AbortedError = _error_class("AbortedError", ABORTED, "Aborted, typically by a concurrent change.")
OutOfRangeError = _error_class("OutOfRangeError", OUT_OF_RANGE, "Past the valid range.")
UnimplementedError = _error_class("UnimplementedError", UNIMPLEMENTED, "Not implemented.")
InternalError = _error_class("InternalError", INTERNAL, "An internal invariant broke.")
UnavailableError = _error_class("UnavailableError", UNAVAILABLE, "The service is unavailable; retrying may help.")
DataLossError = _error_class("DataLossError", DATA_LOSS, "Unrecoverable data loss or corruption.")
UnauthenticatedError = _error_class("UnauthenticatedError", UNAUTHENTICATED, "No valid credentials.")


class UnknownError(StatusError):
    """The cause of the failure is unknown."""

    code = UNKNOWN

    def __init__(self, message: str, error_code: int = UNKNOWN):
        super().__init__(message, error_code)


_BY_CODE = {
    cls.code: cls
    for cls in (
        CancelledError, UnknownError, InvalidArgumentError, DeadlineExceededError, NotFoundError,
        AlreadyExistsError, PermissionDeniedError, ResourceExhaustedError, FailedPreconditionError,
        AbortedError, OutOfRangeError, UnimplementedError, InternalError, UnavailableError,
        DataLossError, UnauthenticatedError,
    )
}


def exception_type_from_error_code(error_code: int) -> type:
    """The error class for a canonical status code (UnknownError for unknown codes)."""
    return _BY_CODE.get(error_code, UnknownError)


def make_exception(message: str, error_code: int) -> StatusError:
    """An instance of the error class that matches ``error_code``."""
    cls = exception_type_from_error_code(error_code)
    if cls is UnknownError:
        return UnknownError(message, error_code)
    return cls(message)


def as_construction_error(exc: StatusError) -> StatusError:
    """The same MLMD error, also a RuntimeError: what ml-metadata raises when a store cannot be
    created, so ``except RuntimeError`` written for ml-metadata keeps working."""
    cls = type(exc).__name__
    combined = _CONSTRUCTION_CLASSES.get(cls)
    if combined is None:
        combined = _CONSTRUCTION_CLASSES[cls] = type(cls, (type(exc), RuntimeError), {})
    out = combined.__new__(combined)
    StatusError.__init__(out, exc.message, exc.error_code)
    return out


_CONSTRUCTION_CLASSES: dict[str, type] = {}
