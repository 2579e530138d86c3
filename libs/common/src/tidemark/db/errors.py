"""Which database errors mean "the database is away right now" (down, restarting, connection lost)."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

# SQLSTATEs of a server that is shutting down, restarting or refusing connections for now.
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03")


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached now, so the same work succeeds later: a
    transient failure, never a reason to drop an event or stop a loop."""
    if isinstance(exc, OSError | TimeoutError):  # the driver's connect raises these unwrapped
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
        return True
    orig = exc.orig
    if isinstance(orig, OSError):
        return True
    # asyncpg, on a connection that broke mid-statement: "cannot switch to state N; another operation
    # is in progress" (its InternalClientError, which SQLAlchemy files under InternalError).
    if type(orig).__name__ == "InternalClientError":
        return True
    state = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    return state.startswith(_UNAVAILABLE_STATES)
