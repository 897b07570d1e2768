from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.registry import SqlWorkRegistry, create_engine_for, upgrade_database
from tests.fixtures.services import fresh_postgres_database

# --- registry fixtures ---

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_ADMIN_URL = f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/test"


def _postgres_answers() -> bool:
    try:
        with socket.create_connection((POSTGRES_HOST, POSTGRES_PORT), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_database_url() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database, dropped afterwards."""
    if not _postgres_answers():
        message = f"PostgreSQL is not answering on {POSTGRES_HOST}:{POSTGRES_PORT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with fresh_postgres_database(POSTGRES_ADMIN_URL) as url:
        yield url


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend: a SQLite file under ``tmp_path``, or PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'monitor.db'}"
    url: str = request.getfixturevalue("postgres_database_url")
    return url


@pytest.fixture
def registry(database_url: str) -> Iterator[SqlWorkRegistry]:
    """A :class:`SqlWorkRegistry` on a database migrated to head."""
    engine = create_engine_for(database_url)
    upgrade_database(engine)
    try:
        yield SqlWorkRegistry(engine)
    finally:
        engine.dispose()


# --- end of registry fixtures ---
