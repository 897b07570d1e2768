"""``SqlDossierStore`` on SQLite and PostgreSQL: chain, tamper detection, races, attribution."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from monitor.attribution import Attribution, VisibleMark
from monitor.dossier import DossierEntry, Timestamp, append_entry, verify_chain
from monitor.errors import DossierConflict
from monitor.fingerprints import WorkFingerprint
from monitor.registry import SqlDossierStore, SqlWorkRegistry
from monitor.works import NewWork

from .test_repository import fingerprint, new_work, png_bytes  # noqa: F401 - fixtures


@pytest.fixture
def store(registry: SqlWorkRegistry) -> SqlDossierStore:
    return SqlDossierStore(registry.engine)


@pytest.fixture
def work_id(registry: SqlWorkRegistry, fingerprint: WorkFingerprint) -> str:  # noqa: F811
    work, _ = registry.add(new_work(1), fingerprint)
    return work.id


def test_entries_round_trip_with_their_timestamp(store: SqlDossierStore, work_id: str) -> None:
    first, _ = append_entry(store, work_id, "registered", {"sha256": "a" * 64, "ratio": 0.25, "ünï": "cödé"})
    entry = DossierEntry(
        work_id,
        2,
        "note",
        {"n": [1, 2, {"deep": None}]},
        "c" * 64,
        datetime.now(UTC) - timedelta(seconds=1),
        first.entry_hash,
        "d" * 64,
        Timestamp(
            "http://tsa.example/", token=b"\x30\x03\x02\x01\x01", time=datetime(2026, 1, 2, tzinfo=UTC)
        ),
    )
    store.insert_entry(entry)
    got = store.entries(work_id)
    assert got[0] == first
    assert got[1].timestamp == entry.timestamp and got[1].payload == entry.payload
    assert got[1].created_at == entry.created_at  # microseconds and the zone survive
    assert store.last_entry(work_id) == got[1]
    assert store.find_entry(work_id, "registered", first.content_hash) == first
    assert store.find_entry(work_id, "registered", "0" * 64) is None
    assert store.entries("nobody") == [] and store.last_entry("nobody") is None


def test_tampering_in_the_database_is_detected(store: SqlDossierStore, work_id: str) -> None:
    for n in range(4):
        append_entry(store, work_id, "note", {"iteration": n, "prompt": f"a harbour, take {n}"})
    assert verify_chain(work_id, store.entries(work_id)).ok
    with store._engine.begin() as conn:
        conn.execute(
            text("UPDATE dossier_entries SET created_at = :t WHERE work_id = :w AND seq = 2"),
            {"t": datetime(2020, 1, 1), "w": work_id},
        )
    report = verify_chain(work_id, store.entries(work_id))
    assert not report.ok and [p["seq"] for p in report.problems] == [2]
    with store._engine.begin() as conn:
        conn.execute(text("DELETE FROM dossier_entries WHERE work_id = :w AND seq = 3"), {"w": work_id})
    problems = verify_chain(work_id, store.entries(work_id)).problems
    assert {p["seq"] for p in problems} == {2, 4}


def test_a_taken_seq_or_content_is_a_conflict(store: SqlDossierStore, work_id: str) -> None:
    entry, _ = append_entry(store, work_id, "note", {"x": 1})
    with pytest.raises(DossierConflict):
        store.insert_entry(entry)  # same seq
    clash = DossierEntry(
        work_id, 2, "note", {"x": 1}, entry.content_hash, entry.created_at, entry.entry_hash, "e" * 64
    )
    with pytest.raises(DossierConflict):
        store.insert_entry(clash)  # same (kind, content_hash)


def test_concurrent_appends_keep_one_chain(store: SqlDossierStore, work_id: str) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for k in range(4):
                append_entry(store, work_id, "note", {"writer": n, "k": k})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    entries = store.entries(work_id)
    assert len(entries) == 16 and verify_chain(work_id, entries).ok


def test_attribution_is_stored_and_replaced(store: SqlDossierStore, work_id: str) -> None:
    assert store.get_attribution(work_id) is None
    mark = VisibleMark((10, 20, 30, 8), "stamped", (0, 5, 60, 40), "f" * 64, text="@ada", corner="br")
    store.put_attribution(Attribution(work_id, "a" * 64, 100, 80, mark, {"EXIF:Copyright": "(c) Ada"}))
    got = store.get_attribution(work_id)
    assert got is not None and got.mark == mark and got.cmi == {"EXIF:Copyright": "(c) Ada"}
    assert got.updated_at is not None and got.updated_at.tzinfo is not None
    store.put_attribution(Attribution(work_id, "b" * 64, 100, 80, None, {}))
    again = store.get_attribution(work_id)
    assert again is not None and again.mark is None and again.published_sha256 == "b" * 64


def test_entries_go_with_their_work(registry: SqlWorkRegistry, store: SqlDossierStore, work_id: str) -> None:
    append_entry(store, work_id, "note", {"x": 1})
    with registry.engine.begin() as conn:
        conn.execute(text("DELETE FROM works WHERE id = :w"), {"w": work_id})
    assert store.entries(work_id) == []


def _unused(_: Any, __: NewWork) -> None:  # keeps the imported fixtures' names referenced
    pass
