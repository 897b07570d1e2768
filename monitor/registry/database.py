"""Engines and schema migrations for the registry.

:func:`create_engine_for` builds an engine tuned for the backend (SQLite shared by several
processes, or PostgreSQL through psycopg 3); :func:`upgrade_database` brings a database to
the newest Alembic revision, from code, without needing ``alembic.ini`` on disk.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from monitor.errors import RegistryError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Alembic's ``context`` and ``op`` are module-global proxies, so two threads of one process
#: cannot run migrations at the same time (processes can: env.py locks the database).
_ALEMBIC_LOCK = threading.Lock()


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; plain ``postgresql://`` (and ``postgres://``) URLs get the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise RegistryError(f"not a database URL: {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def create_engine_for(url: str | URL) -> Engine:
    """An engine for ``url``, set up for the monitor's several processes.

    SQLite: the database file's directory is created, and every connection gets WAL
    journaling, a 30 s busy timeout and foreign keys. PostgreSQL: the psycopg 3 driver.
    Connections are checked before use (``pool_pre_ping``).
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite":
        try:
            return create_engine(parsed, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError) as exc:
            raise RegistryError(f"cannot use database {parsed.render_as_string()}: {exc}") from exc

    memory = _is_sqlite_memory(parsed)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if memory:
        # One shared connection, or each checkout would see a different empty database.
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    elif not parsed.query.get("uri") and parsed.database:
        try:
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(f"cannot create the directory of {parsed.database}: {exc}") from exc
    try:
        engine = create_engine(parsed, **kwargs)
    except SQLAlchemyError as exc:
        raise RegistryError(f"cannot use database {parsed.render_as_string()}: {exc}") from exc

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                _set_wal(cursor)
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    return engine


def _set_wal(cursor: Any) -> None:
    """Switch to WAL journaling. Changing the journal mode needs the database to itself; a
    connection waiting for that inside SQLite's busy handler keeps its shared lock, so while
    another connection of a fresh database commits its migration, each waits for the other
    until the busy timeout ("database is locked"). So: no waiting inside SQLite; give the lock
    up, sleep, and try again until the usual timeout."""
    import sqlite3
    import time

    cursor.execute("PRAGMA busy_timeout = 0")
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(0.1, delay * 2)


def alembic_config() -> Config:
    """An Alembic configuration built in code, pointing at the installed migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


@functools.cache
def head_revisions() -> frozenset[str]:
    """The head revision(s) of the migration scripts (read once per process)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(engine: Engine) -> frozenset[str]:
    """The revision(s) the database is at; empty before the first migration."""
    try:
        with engine.connect() as connection:
            return frozenset(MigrationContext.configure(connection).get_current_heads())
    except SQLAlchemyError as exc:
        raise RegistryError(f"cannot read the schema version: {exc}") from exc


def upgrade_database(target: Engine | str | URL) -> None:
    """Run ``alembic upgrade head`` on ``target`` (an engine or a URL).

    Returns after one query when the database is already at head. Concurrent callers are
    serialized by a lock in ``env.py`` (an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE``
    on SQLite) and, within a process, by a thread lock, so several processes and threads
    may start on a fresh database at once.
    """
    engine = target if isinstance(target, Engine) else create_engine_for(target)
    try:
        if current_revisions(engine) == head_revisions():
            return
        config = alembic_config()
        with _ALEMBIC_LOCK, engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except (SQLAlchemyError, CommandError) as exc:
        raise RegistryError(f"cannot migrate the database: {exc}") from exc
    finally:
        if engine is not target:
            engine.dispose()
