from __future__ import annotations

import io
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from PIL import Image
from sqlalchemy import Engine, event, inspect, text

import monitor.registry
from monitor.errors import RegistryError, WorkNotFound
from monitor.fingerprints import WorkFingerprint, fingerprint_work
from monitor.images import decode_image
from monitor.registry import Base, SqlWorkRegistry, create_engine_for, upgrade_database
from monitor.registry.database import current_revisions, head_revisions
from monitor.works import NewWork, Work


@pytest.fixture(scope="module")
def png_bytes() -> bytes:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def fingerprint(png_bytes: bytes) -> WorkFingerprint:
    return fingerprint_work(decode_image(png_bytes))


def new_work(n: int, **overrides: Any) -> NewWork:
    fields: dict[str, Any] = {
        "sha256": f"{n:064x}",
        "pixel_sha256": f"{n % 3:064x}",
        "format": "PNG",
        "width": 64,
        "height": 48,
        "frames": 1,
        "size_bytes": 1000 + n,
        "title": f"work {n}",
        "owner": "studio",
        "source_path": f"/art/{n}.png",
    }
    fields.update(overrides)
    return NewWork(**fields)


def assert_same_fingerprint(got: WorkFingerprint, want: WorkFingerprint) -> None:
    assert (got.width, got.height, got.is_grayscale) == (want.width, want.height, want.is_grayscale)
    assert got.hashes.pdq == want.hashes.pdq
    assert got.hashes.pdq_quality == want.hashes.pdq_quality
    assert got.hashes.phash == want.hashes.phash
    for part in ("features", "mirrored"):
        g, w = getattr(got, part), getattr(want, part)
        assert np.array_equal(g.points, w.points)
        assert np.array_equal(g.descriptors, w.descriptors)
    assert np.array_equal(got.thumb, want.thumb)


def add_many(registry: SqlWorkRegistry, fingerprint: WorkFingerprint, n: int) -> list[Work]:
    return [registry.add(new_work(i), fingerprint)[0] for i in range(1, n + 1)]


def count_statements(engine: Engine, action: Callable[[], None]) -> list[str]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return statements


# ---------------------------------------------------------------- public API and engine


def test_public_api_is_pinned() -> None:
    assert sorted(monitor.registry.__all__) == [
        "Base",
        "FingerprintRow",
        "SqlAccountStore",
        "SqlAlertStore",
        "SqlCopyRegistry",
        "SqlDiscoveryStore",
        "SqlDossierStore",
        "SqlWorkRegistry",
        "WorkRow",
        "create_engine_for",
        "upgrade_database",
    ]


def test_plain_postgresql_urls_use_psycopg3() -> None:
    engine = create_engine_for("postgresql://user@db.invalid:5432/monitor")
    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()


def test_sqlite_engine_creates_the_directory_and_sets_pragmas(tmp_path: Any) -> None:
    path = tmp_path / "nested" / "dir" / "monitor.db"
    engine = create_engine_for(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert path.is_file()
    finally:
        engine.dispose()


def test_sqlite_memory_database_keeps_its_schema() -> None:
    engine = create_engine_for("sqlite://")
    try:
        upgrade_database(engine)
        assert SqlWorkRegistry(engine).count() == 0
    finally:
        engine.dispose()


# ---------------------------------------------------------------- migrations


def test_upgrade_to_head_then_again_is_a_cheap_no_op(database_url: str) -> None:
    engine = create_engine_for(database_url)
    try:
        assert current_revisions(engine) == frozenset()
        upgrade_database(engine)
        assert current_revisions(engine) == head_revisions()
        assert len(head_revisions()) == 1  # one linear chain of revisions
        assert {"works", "fingerprints", "alembic_version"} <= set(inspect(engine).get_table_names())

        again = count_statements(engine, lambda: upgrade_database(engine))
        assert not [s for s in again if s.lstrip().upper().startswith(("CREATE", "ALTER", "INSERT", "DROP"))]
        assert len(again) <= 3
        upgrade_database(database_url)  # by URL as well
        assert current_revisions(engine) == head_revisions()
    finally:
        engine.dispose()


def test_concurrent_upgrades_of_a_fresh_database_all_succeed(database_url: str) -> None:
    threads = 4
    barrier = threading.Barrier(threads)

    def upgrade(_: int) -> None:
        barrier.wait()
        upgrade_database(database_url)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(upgrade, range(threads)))
    engine = create_engine_for(database_url)
    try:
        assert current_revisions(engine) == head_revisions()
    finally:
        engine.dispose()


def test_concurrent_upgrades_from_several_processes_all_succeed(database_url: str) -> None:
    script = "import sys; from monitor.registry import upgrade_database; upgrade_database(sys.argv[1])"
    processes = [
        subprocess.Popen([sys.executable, "-c", script, database_url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [process.communicate(timeout=120)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], errors
    engine = create_engine_for(database_url)
    try:
        assert current_revisions(engine) == head_revisions()
    finally:
        engine.dispose()


def test_models_and_migrations_do_not_drift(registry: SqlWorkRegistry) -> None:
    with registry.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_sqlite_foreign_keys_cascade(tmp_path: Any, fingerprint: WorkFingerprint) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'fk.db'}")
    try:
        upgrade_database(engine)
        registry = SqlWorkRegistry(engine)
        work, _ = registry.add(new_work(1), fingerprint)
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM works WHERE id = :id"), {"id": work.id})
        assert registry.fingerprints([work.id]) == {}
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM fingerprints")).scalar() == 0
    finally:
        engine.dispose()


def test_an_unmigrated_database_raises_registry_error(database_url: str) -> None:
    engine = create_engine_for(database_url)
    try:
        with pytest.raises(RegistryError):
            SqlWorkRegistry(engine).count()
    finally:
        engine.dispose()


# ---------------------------------------------------------------- add / get


def test_add_then_get_round_trips_every_field(
    registry: SqlWorkRegistry, fingerprint: WorkFingerprint
) -> None:
    before = datetime.now(UTC)
    new = new_work(1, title="Sunset — 夕日", owner=None, source_path=None, size_bytes=5 * 2**32, frames=3)
    added, created = registry.add(new, fingerprint)
    assert created is True
    assert len(added.id) == 16 and int(added.id, 16) >= 0
    assert added.seq == 1

    got = registry.get(added.id)
    assert got == added
    for name in ("sha256", "pixel_sha256", "format", "width", "height", "frames", "size_bytes"):
        assert getattr(got, name) == getattr(new, name), name
    assert (got.title, got.owner, got.source_path) == ("Sunset — 夕日", None, None)
    assert got.size_bytes == 5 * 2**32
    assert got.created_at.tzinfo is not None and got.created_at.utcoffset() == timedelta(0)
    assert before <= got.created_at <= datetime.now(UTC)
    assert registry.find_by_sha256(new.sha256) == got
    assert registry.find_by_sha256("f" * 64) is None

    stored = registry.fingerprints([added.id])
    assert list(stored) == [added.id]
    assert_same_fingerprint(stored[added.id], fingerprint)


def test_same_sha256_twice_returns_the_existing_work(
    registry: SqlWorkRegistry, fingerprint: WorkFingerprint
) -> None:
    first, created_first = registry.add(new_work(1), fingerprint)
    second, created_second = registry.add(new_work(1, title="another title"), fingerprint)
    assert (created_first, created_second) == (True, False)
    assert second == first
    assert second.title == "work 1"
    assert registry.count() == 1


def test_concurrent_adds_of_one_sha256_store_one_work(
    registry: SqlWorkRegistry, fingerprint: WorkFingerprint
) -> None:
    threads = 8
    barrier = threading.Barrier(threads)

    def add(_: int) -> tuple[Work, bool]:
        barrier.wait()
        return registry.add(new_work(42), fingerprint)

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(add, range(threads)))
    assert len({work.id for work, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert registry.count() == 1
    assert registry.max_seq() == 1


def test_concurrent_adds_of_different_works_get_distinct_consecutive_seqs(
    registry: SqlWorkRegistry, fingerprint: WorkFingerprint
) -> None:
    threads, per_thread = 6, 4
    barrier = threading.Barrier(threads)

    def add(t: int) -> list[int]:
        barrier.wait()
        return [registry.add(new_work(t * 100 + i), fingerprint)[0].seq for i in range(per_thread)]

    with ThreadPoolExecutor(threads) as pool:
        seqs = [seq for chunk in pool.map(add, range(threads)) for seq in chunk]
    assert sorted(seqs) == list(range(1, threads * per_thread + 1))
    assert registry.count() == threads * per_thread


def test_get_unknown_id_raises_work_not_found(registry: SqlWorkRegistry) -> None:
    with pytest.raises(WorkNotFound) as caught:
        registry.get("0123456789abcdef")
    assert caught.value.code == "work_not_found"
    assert isinstance(caught.value, RegistryError)


# ---------------------------------------------------------------- listing


def test_list_in_registration_order_with_limit_and_offset(
    registry: SqlWorkRegistry, fingerprint: WorkFingerprint
) -> None:
    works = add_many(registry, fingerprint, 5)
    assert registry.list() == works
    assert [w.seq for w in registry.list()] == [1, 2, 3, 4, 5]
    assert registry.list(limit=2) == works[:2]
    assert registry.list(limit=2, offset=2) == works[2:4]
    assert registry.list(offset=4) == works[4:]
    assert registry.list(offset=10) == []
    assert registry.list(limit=0) == []
    with pytest.raises(ValueError):
        registry.list(offset=-1)


def test_count_and_max_seq(registry: SqlWorkRegistry, fingerprint: WorkFingerprint) -> None:
    assert (registry.count(), registry.max_seq()) == (0, 0)
    add_many(registry, fingerprint, 3)
    assert (registry.count(), registry.max_seq()) == (3, 3)
    registry.add(new_work(2), fingerprint)  # a duplicate changes nothing
    assert (registry.count(), registry.max_seq()) == (3, 3)


def test_iter_fingerprints_after_seq_in_small_batches(
    registry: SqlWorkRegistry, fingerprint: WorkFingerprint
) -> None:
    works = add_many(registry, fingerprint, 7)
    later = list(registry.iter_fingerprints(after_seq=2, batch=2))
    assert [work for work, _ in later] == works[2:]
    for _, fp in later:
        assert_same_fingerprint(fp, fingerprint)
    assert [w.seq for w, _ in registry.iter_fingerprints(batch=3)] == [1, 2, 3, 4, 5, 6, 7]
    assert [w.seq for w, _ in registry.iter_fingerprints(after_seq=6, batch=1)] == [7]
    assert list(registry.iter_fingerprints(after_seq=7)) == []
    with pytest.raises(ValueError):
        list(registry.iter_fingerprints(batch=0))


def test_find_by_pixel_sha256(registry: SqlWorkRegistry, fingerprint: WorkFingerprint) -> None:
    works = add_many(registry, fingerprint, 6)  # pixel_sha256 is n % 3
    assert registry.find_by_pixel_sha256(f"{1:064x}") == [works[0], works[3]]
    assert registry.find_by_pixel_sha256(f"{0:064x}") == [works[2], works[5]]
    assert registry.find_by_pixel_sha256("e" * 64) == []


def test_fingerprints_for_a_subset_ignores_unknown_ids(
    registry: SqlWorkRegistry, fingerprint: WorkFingerprint
) -> None:
    works = add_many(registry, fingerprint, 4)
    wanted = [works[1].id, "ffffffffffffffff", works[3].id, works[1].id]
    got = registry.fingerprints(wanted)
    assert set(got) == {works[1].id, works[3].id}
    for fp in got.values():
        assert_same_fingerprint(fp, fingerprint)
    assert registry.fingerprints([]) == {}
    assert registry.fingerprints(["nope"]) == {}
