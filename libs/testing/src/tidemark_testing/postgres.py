"""Find (or start) a PostgreSQL for tests, and hand out fresh databases on it.

In order: the admin DSN in ``TIDEMARK_TEST_PG_URL``; a server already answering
as ``postgres`` on 127.0.0.1:5432; a private throw-away cluster started with the
``initdb``/``pg_ctl`` found under ``/usr/lib/postgresql/*/bin``. Admin work uses
psycopg (sync): this module is for test set-up, not for a running service.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from tidemark_testing.ports import free_port

ENV_VAR = "TIDEMARK_TEST_PG_URL"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL could be found or started for the tests."""


def _libpq_url(dsn: str) -> URL:
    """The DSN without a SQLAlchemy driver suffix, so psycopg accepts it."""
    return make_url(dsn).set(drivername="postgresql")


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def answers(dsn: str, timeout: int = 3) -> bool:
    try:
        with psycopg.connect(_render(_libpq_url(dsn)), connect_timeout=timeout) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


class PrivateCluster:
    """A PostgreSQL cluster of our own in a temporary directory, on a free loopback port."""

    def __init__(self, bin_dir: Path) -> None:
        self._bin = bin_dir
        self._dir: Path | None = None
        self.port = 0

    @staticmethod
    def find_bin_dir() -> Path | None:
        """The newest installed server's bin directory, if any."""
        candidates = [Path(p) for p in glob.glob(PG_BIN_GLOB) if (Path(p) / "initdb").exists()]
        if not candidates:
            return None
        return max(candidates, key=lambda p: _major(p.parent.name))

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_owner(self) -> list[str]:
        # initdb and postgres refuse to run as root; run them as the `postgres` OS user then.
        if os.geteuid() != 0:
            return []
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PostgresUnavailableError(
                "running as root and there is no `postgres` OS user to run initdb as; "
                f"set {ENV_VAR} to an admin DSN of a running PostgreSQL"
            ) from exc
        runuser = shutil.which("runuser")
        if runuser is None:
            raise PostgresUnavailableError("running as root and `runuser` is missing; cannot start PostgreSQL")
        return [runuser, "-u", "postgres", "--"]

    def start(self) -> None:
        prefix = self._as_owner()
        self._dir = Path(tempfile.mkdtemp(prefix="tidemark-pg-"))
        data, sockets = self._dir / "data", self._dir / "run"
        sockets.mkdir()
        if prefix:
            for path in (self._dir, sockets):
                shutil.chown(path, user="postgres")
        self.port = free_port()
        self._run("initdb", [*prefix, str(self._bin / "initdb"), "-D", str(data), "-U", "postgres",
                   "-A", "trust", "-E", "UTF8", "--no-sync"])
        self._pg_start()

    def _pg_start(self) -> None:
        assert self._dir is not None
        options = (f"-p {self.port} -k {self._dir / 'run'} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run("pg_ctl start", [*self._as_owner(), str(self._bin / "pg_ctl"), "-D", str(self._dir / "data"),
                   "-l", str(self._dir / "pg.log"), "-o", options, "-w", "-t", "30", "start"])

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would; its backends end when they notice it is gone."""
        assert self._dir is not None, "the cluster was not started"
        pid = int((self._dir / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

    def restart(self) -> None:
        """Start the killed (or stopped) cluster again on the same data and port: it recovers from its WAL."""
        deadline = time.monotonic() + 30
        while True:  # until the old backends have noticed and released the shared memory
            try:
                self._pg_start()
                return
            except PostgresUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self._dir is None:
            return
        with contextlib.suppress(PostgresUnavailableError):
            self._run("pg_ctl stop", [*self._as_owner(), str(self._bin / "pg_ctl"), "-D", str(self._dir / "data"),
                       "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def _run(self, what: str, argv: list[str]) -> None:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            log = ""
            if self._dir is not None and (self._dir / "pg.log").exists():
                log = (self._dir / "pg.log").read_text(errors="replace")[-2000:]
            raise PostgresUnavailableError(
                f"{what} failed ({result.returncode}): {result.stderr.strip()[-2000:]}\n{log}".rstrip()
            )


def _major(version: str) -> int:
    return int(version) if version.isdigit() else 0


@contextlib.contextmanager
def admin_dsn() -> Iterator[str]:
    """An admin DSN for the whole test session; a private cluster lives as long as the context."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        if not answers(configured):
            raise PostgresUnavailableError(f"{ENV_VAR} is set but that PostgreSQL does not answer")
        yield configured
        return
    if answers(DEFAULT_DSN):
        yield DEFAULT_DSN
        return
    bin_dir = PrivateCluster.find_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailableError(
            f"no PostgreSQL for tests: {ENV_VAR} is not set, nothing answers at {DEFAULT_DSN}, "
            f"and no server binaries (initdb, pg_ctl) under {PG_BIN_GLOB} to start one"
        )
    cluster = PrivateCluster(bin_dir)
    try:
        cluster.start()
        yield cluster.dsn
    finally:
        cluster.stop()


def create_database(admin: str, prefix: str = "tidemark_test") -> str:
    """Create an empty database; return its SQLAlchemy asyncpg URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}".lower()
    with psycopg.connect(_render(_libpq_url(admin)), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _render(make_url(admin).set(drivername="postgresql+asyncpg", database=name))


def drop_database(admin: str, url: str) -> None:
    """Drop the database ``url`` names, closing anything still connected to it."""
    name = make_url(url).database
    if not name:
        raise ValueError("drop_database: the URL names no database")
    with psycopg.connect(_render(_libpq_url(admin)), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def sync_url(url: str) -> str:
    """The same database for a sync psycopg SQLAlchemy engine (e.g. pyiceberg's SQL catalog)."""
    return _render(make_url(url).set(drivername="postgresql+psycopg"))
