"""PostgreSQL driver errors (psycopg and ADBC) → :class:`SourceError` a user can act on."""

from __future__ import annotations

from tidemark.connectors.boundary import scrub, secret_values
from tidemark.connectors.sql.config import SqlConfig
from tidemark.connectors.sql.errors import ErrorRule, classify
from tidemark.errors import FailureKind, SourceError

CONFIG, TRANSIENT = FailureKind.CONFIG, FailureKind.TRANSIENT

# Connection failures carry no SQLSTATE in libpq, so the server's (English) text decides.
RULES = (
    ErrorRule(("password authentication failed", "role \"", "authentication failed"), CONFIG,
              "authentication failed for user {user!r}: check the user name and password", "password"),
    ErrorRule(("no pg_hba.conf entry",), CONFIG,
              "the server refuses connections from this host for user {user!r} and database {database!r} "
              "(pg_hba.conf); ask its administrator, or try another tls_mode"),
    ErrorRule(("permission denied",), CONFIG,
              "user {user!r} lacks a privilege: {detail}; grant it, e.g. GRANT SELECT ON <table> TO <user>"),
    ErrorRule(("database \"",), CONFIG, "database {database!r} does not exist on {host}:{port}", "database"),
    ErrorRule(("could not translate host name", "failed to resolve host", "name or service not known",
               "nodename nor servname"), CONFIG, "host {host!r} could not be resolved: check the host name", "host"),
    ErrorRule(("server does not support ssl", "ssl negotiation", "ssl error", "certificate", "sslmode"), CONFIG,
              "TLS to {host}:{port} failed with tls_mode {tls_mode!r}: {detail}", "tls_mode"),
    ErrorRule(("connection refused",), TRANSIENT,
              "nothing accepts connections at {host}:{port}: is the server running, and is the port right?"),
    ErrorRule(("timeout expired", "timed out", "no route to host", "network is unreachable"), TRANSIENT,
              "{host}:{port} did not answer within {timeout} s: is the host reachable from here?"),
    ErrorRule(("statement timeout",), TRANSIENT,
              "the server at {host}:{port} cancelled the read at its statement_timeout (set for user {user!r} or "
              "database {database!r}); raise it for this user, e.g. ALTER ROLE <user> SET statement_timeout = "
              "'1h', or read when the server is less busy"),
    ErrorRule(("too many connections", "the database system is starting up", "shutting down",
               "server closed the connection", "terminating connection", "connection reset"), TRANSIENT,
              "the server at {host}:{port} is unavailable right now: {detail}"),
)

# SQLSTATE classes that mean "try again later" once connected.
TRANSIENT_STATES = ("08", "53", "57", "40001", "40P01", "55P03")
CONFIG_STATES = ("42501", "42P01", "42703", "3D000", "28", "3F000")


def translate(exc: BaseException, config: SqlConfig, action: str) -> SourceError:
    """``exc`` from a driver while ``action`` (e.g. "connecting") as a classified SourceError."""
    detail = scrub(" ".join(str(exc).split()), secret_values(config), limit=None)
    for prefix in ("connection failed: ", "[libpq] "):
        detail = detail.removeprefix(prefix)
    fmt = {"user": config.user, "database": config.database, "host": config.host, "port": config.port,
           "tls_mode": config.tls_mode, "timeout": config.connect_timeout_seconds, "detail": detail}
    found = classify(detail, RULES, fmt)
    if found is not None:
        message, kind, field = found
        extra = {"field": field} if field else {}
        return SourceError(message, kind, **extra)
    sqlstate = str(getattr(exc, "sqlstate", None) or "")
    if sqlstate.startswith(TRANSIENT_STATES):
        return SourceError(f"{action} failed, worth retrying: {detail}", TRANSIENT, sqlstate=sqlstate)
    if sqlstate.startswith(CONFIG_STATES):
        return SourceError(f"{action} failed: {detail}", CONFIG, sqlstate=sqlstate)
    extra = {"sqlstate": sqlstate} if sqlstate else {}
    return SourceError(f"{action} failed: {detail}", FailureKind.TERMINAL, **extra)
