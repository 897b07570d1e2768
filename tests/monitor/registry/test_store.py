"""What the SQL stores share (``monitor/registry/_store.py``), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from monitor.registry import create_engine_for, upgrade_database
from monitor.registry._store import SqlStore
from monitor.registry.models import SourceRow


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine_for(database_url)
    upgrade_database(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def _source(n: int, url: str | None = None) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": f"s{n:015d}",
        "url": url or f"https://site{n}.example/",
        "spider": "site",
        "every_seconds": 3600,
        "depth": None,
        "max_pages": None,
        "enabled": True,
        "created_at": now,
        "next_crawl_at": now,
        "last_crawl_at": None,
        "last_crawl_id": None,
    }


def _inserts(engine: Engine, run: Any) -> tuple[Any, list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        return run(), seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_insert_many_ignore_returns_exactly_the_rows_it_inserted(engine: Engine) -> None:
    store = SqlStore(engine)
    with store._tx() as session:
        assert SqlStore._insert_many_ignore(session, SourceRow, [_source(1), _source(2)]) != []
    rows = [
        _source(1),  # the same primary key as a stored row
        _source(3, url="https://site2.example/"),  # the same (url, spider) as a stored row
        _source(4),
        _source(5),
        _source(6, url="https://site4.example/"),  # the same (url, spider) as a row before it
        _source(5, url="https://other.example/"),  # the same primary key as a row before it
    ]
    with store._tx() as session:
        new, inserts = _inserts(engine, lambda: SqlStore._insert_many_ignore(session, SourceRow, rows))
    assert len(inserts) == 1 and "ON CONFLICT DO NOTHING" in inserts[0] and "RETURNING" in inserts[0]
    assert sorted(row.id for row in new) == [_source(4)["id"], _source(5)["id"]]
    assert {row.url for row in new} == {"https://site4.example/", "https://site5.example/"}
    assert all(row.enabled is True and row.every_seconds == 3600 for row in new)  # every column, typed
    with store._tx() as session:
        assert session.scalar(select(func.count()).select_from(SourceRow)) == 4
        assert SqlStore._insert_many_ignore(session, SourceRow, []) == []


def test_insert_many_ignore_returns_the_new_rows_of_every_chunk(engine: Engine) -> None:
    store = SqlStore(engine)
    with store._tx() as session:
        SqlStore._insert_many_ignore(session, SourceRow, [_source(n) for n in range(0, 2500, 2)])
    everything = [_source(n) for n in range(2500)]
    with store._tx() as session:
        new, inserts = _inserts(engine, lambda: SqlStore._insert_many_ignore(session, SourceRow, everything))
    assert len(inserts) > 1  # more rows than one statement takes: several chunks
    assert sorted(row.id for row in new) == [_source(n)["id"] for n in range(1, 2500, 2)]
    with store._tx() as session:
        assert session.scalar(select(func.count()).select_from(SourceRow)) == 2500
