"""Driver failures become messages a user can act on, with the right kind and no password."""

from __future__ import annotations

import ssl
from urllib.parse import quote, unquote

import psycopg
import pymssql
import pymysql  # type: ignore[import-untyped]
import pytest

from tidemark.connectors.sql.mssql.source import MssqlConfig, MssqlSource
from tidemark.connectors.sql.mssql.source import translate as mssql_translate
from tidemark.connectors.sql.mysql.columnar import url as columnar_url
from tidemark.connectors.sql.mysql.config import MySQLConfig, tls_context
from tidemark.connectors.sql.mysql.source import translate as mysql_translate
from tidemark.connectors.sql.postgres.config import PostgresConfig, libpq_params, libpq_uri
from tidemark.connectors.sql.postgres.errors import translate as pg_translate
from tidemark.errors import FailureKind, SourceError

pytestmark = pytest.mark.unit

SECRET = "pa:ss/w@rd%"
PG = PostgresConfig(host="db.example", database="shop", user="ana", password=SECRET)
MY = MySQLConfig(host="db.example", database="shop", user="ana", password=SECRET)
MS = MssqlConfig(host="localhost", database="shop", user="ana", password=SECRET)


@pytest.mark.parametrize(("text", "kind", "message"), [
    ('connection failed: connection to server at "10.0.0.1", port 5432 failed: FATAL:  password authentication '
     'failed for user "ana"', FailureKind.CONFIG, "authentication failed for user 'ana': check the user name and "
     "password"),
    ('connection failed: ... FATAL:  database "shop" does not exist', FailureKind.CONFIG,
     "database 'shop' does not exist on db.example:5432"),
    ("failed to resolve host 'db.example': [Errno -2] Name or service not known", FailureKind.CONFIG,
     "host 'db.example' could not be resolved: check the host name"),
    ("connection failed: ... failed: Connection refused", FailureKind.TRANSIENT,
     "nothing accepts connections at db.example:5432: is the server running, and is the port right?"),
    ("connection failed: timeout expired", FailureKind.TRANSIENT,
     "db.example:5432 did not answer within 10 s: is the host reachable from here?"),
    ("permission denied for table orders", FailureKind.CONFIG,
     "user 'ana' lacks a privilege: permission denied for table orders; grant it, e.g. GRANT SELECT ON <table> "
     "TO <user>"),
])
def test_postgres_errors(text: str, kind: FailureKind, message: str) -> None:
    err = pg_translate(psycopg.OperationalError(text), PG, "connecting")
    assert (err.kind, err.message) == (kind, message)


def test_postgres_unknown_errors_keep_the_driver_text_without_the_password() -> None:
    err = pg_translate(psycopg.OperationalError(f"weird failure mentioning {SECRET}"), PG, "reading x")
    assert err.kind is FailureKind.TERMINAL
    assert err.message == "reading x failed: weird failure mentioning **********"


@pytest.mark.parametrize(("args", "kind", "needle"), [
    ((1045, "Access denied for user 'ana'@'1.2.3.4' (using password: YES)"), FailureKind.CONFIG,
     "authentication failed for user 'ana'"),
    ((1044, "Access denied for user 'ana'@'%' to database 'shop'"), FailureKind.CONFIG,
     "user 'ana' has no privileges on database 'shop'"),
    ((1049, "Unknown database 'shop'"), FailureKind.CONFIG, "database 'shop' does not exist on db.example:3306"),
    ((1142, "SELECT command denied to user 'ana'@'%' for table `shop`.`t`"), FailureKind.CONFIG,
     "user 'ana' lacks a privilege: (1142, \"SELECT command denied"),
    ((2003, "Can't connect to MySQL server on 'db.example' ([Errno 111] Connection refused)"),
     FailureKind.TRANSIENT, "nothing accepts connections at db.example:3306"),
    ((2003, "Can't connect to MySQL server on 'db.example' ([Errno -2] Name or service not known)"),
     FailureKind.CONFIG, "host 'db.example' could not be resolved"),
    ((2013, "Lost connection to MySQL server during query"), FailureKind.TRANSIENT, "unavailable right now"),
])
def test_mysql_errors(args: tuple[int, str], kind: FailureKind, needle: str) -> None:
    err = mysql_translate(pymysql.err.OperationalError(*args), MY, "connecting")
    assert err.kind is kind
    assert needle in err.message


@pytest.mark.parametrize(("text", "kind", "needle"), [
    ("timed out waiting for connection: MySqlError { ERROR 1045 (28000): Access denied for user 'ana'@'1.2.3.4' "
     "(using password: YES) }", FailureKind.CONFIG, "authentication failed for user 'ana'"),
    ("MySqlError { ERROR 1142 (42000): SELECT command denied to user 'ana'@'%' for table `shop`.`t` }",
     FailureKind.CONFIG, "user 'ana' lacks a privilege"),
    ("MySqlError { ERROR 2013 (HY000): Lost connection to server during query }", FailureKind.TRANSIENT,
     "unavailable right now"),
])
def test_connectorx_errors_read_like_pymysql_ones(text: str, kind: FailureKind, needle: str) -> None:
    err = mysql_translate(RuntimeError(text), MY, "reading")
    assert err.kind is kind
    assert needle in err.message


def test_connectorx_errors_never_show_the_url_password() -> None:
    """connectorx takes the password inside its URL: an error quoting the URL must not leak it."""
    url = columnar_url(MY)
    assert quote(SECRET, safe="") in url
    err = mysql_translate(RuntimeError(f"bad connection url {url}: {SECRET}"), MY, "reading")
    assert SECRET not in err.message
    assert quote(SECRET, safe="") not in err.message
    assert "mysql://ana:**********@db.example:3306/shop" in err.message


@pytest.mark.parametrize(("args", "kind", "needle"), [
    ((18456, b"Login failed for user 'ana'.DB-Lib error message 20018"), FailureKind.CONFIG,
     "authentication failed for user 'ana'"),
    ((4060, b"Cannot open database \"shop\" requested by the login. The login failed."), FailureKind.CONFIG,
     "database 'shop' does not exist on localhost:1433"),
    ((229, b"The SELECT permission was denied on the object 'orders'"), FailureKind.CONFIG, "lacks a privilege"),
    ((20009, b"Unable to connect: TDS server is unavailable or does not exist (localhost)\nNet-Lib error during "
             b"Connection refused (111)"), FailureKind.TRANSIENT, "nothing accepts connections at localhost:1433"),
])
def test_mssql_errors(args: tuple[int, bytes], kind: FailureKind, needle: str) -> None:
    err = mssql_translate(pymssql.OperationalError(*args), MS, "connecting")
    assert err.kind is kind
    assert needle in err.message


def test_mssql_unresolvable_host_is_named() -> None:
    config = MssqlConfig(host="no-such-host.invalid", database="shop", user="ana", password=SECRET)
    err = mssql_translate(pymssql.OperationalError(
        20009, b"Unable to connect: TDS server is unavailable or does not exist (no-such-host.invalid)\n"),
        config, "connecting")
    assert (err.kind, err.message) == (FailureKind.CONFIG,
                                      "host 'no-such-host.invalid' could not be resolved: check the host name")


def test_mssql_refuses_certificate_verification_it_cannot_do() -> None:
    src = MssqlSource(MssqlConfig(host="h", database="d", user="u", tls_mode="verify-full"))
    with pytest.raises(SourceError) as caught:
        src.connect_args()
    assert caught.value.kind is FailureKind.CONFIG
    assert MssqlSource(MssqlConfig(host="h", database="d", user="u")).connect_args()["encryption"] == "request"


def test_libpq_parameters_escape_the_password_and_clean_up_the_ca_file() -> None:
    config = PostgresConfig(host="db.example", database="my db", user="ana", password=SECRET, tls_mode="verify-full",
                            tls_ca="-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    with libpq_params(config) as params:
        uri = libpq_uri(params)
        ca_path = params["sslrootcert"]
        with open(ca_path) as handle:
            assert handle.read().startswith("-----BEGIN CERTIFICATE-----")
    assert uri.startswith("postgresql://ana:")
    assert unquote(uri.split("@db.example")[0].split(":", 2)[2]) == SECRET
    assert "/my%20db?" in uri
    assert "sslmode=verify-full" in uri
    import os

    assert not os.path.exists(ca_path)


def test_mysql_tls_modes() -> None:
    assert tls_context(MY.model_copy(update={"tls_mode": "disable"})) is None
    prefer = tls_context(MY)
    assert prefer is not None
    assert prefer.verify_mode is ssl.CERT_NONE
    full = tls_context(MY.model_copy(update={"tls_mode": "verify-full"}))
    assert full is not None
    assert full.verify_mode is ssl.CERT_REQUIRED
    assert full.check_hostname


def test_configs_keep_the_password_secret() -> None:
    for config in (PG, MY, MS):
        assert "password" in type(config).secret_fields()
        assert SECRET not in repr(config)
        assert config.reveal()["password"] == SECRET
